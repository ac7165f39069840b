//! How a run fails: the step that failed, why, and what the rollback managed.
//!
//! Messages are complete on their own (what, where, what to do); the typed cause is also
//! reachable through `source()` for code that needs to tell failures apart.

use crate::bdf::Bdf;
use crate::host::pci::WriteError;
use crate::plan::Step;
use crate::record;
use crate::wait::Timeout;
use std::time::Duration;

/// Why one step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The kernel refused a sysfs write.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// What the step waited for did not happen in time.
    #[error(transparent)]
    Wait(#[from] Timeout),
    /// Another driver holds the function.
    #[error("{bdf} is bound to {current}, not free for {driver}")]
    NotFree {
        /// The function.
        bdf: Bdf,
        /// The driver it is bound to.
        current: String,
        /// The driver it was to go to.
        driver: String,
    },
    /// The probe did not bind the function to the driver it was meant for.
    #[error("{source} (it is on {now}; the kernel log, `journalctl -k`, may say why)")]
    NotBound {
        /// The wait that gave up.
        source: Timeout,
        /// The driver it is on instead, or "no driver".
        now: String,
    },
    /// The kernel refused a resize the config requires.
    #[error(
        "BAR{bar} of {bdf} stays at {now}: {reason}. The config requires {wanted} \
         (rebar_required = true), so the lend stops; set rebar_required = false to lend the \
         card at its current size"
    )]
    Resize {
        /// The function.
        bdf: Bdf,
        /// The BAR's index.
        bar: usize,
        /// Its size now.
        now: String,
        /// The size asked for.
        wanted: String,
        /// Why the kernel refused.
        reason: String,
    },
    /// The driver a function goes back to is not registered.
    #[error(
        "{bdf} stays unbound: its driver {driver} is not registered (its module is not loaded); \
         load it with modprobe and run the reattach again"
    )]
    DriverMissing {
        /// The function.
        bdf: Bdf,
        /// The driver it had.
        driver: String,
    },
    /// Opening, signalling or waiting for a holder failed.
    #[error("{action} process {pid} ({comm}): {source}")]
    Process {
        /// What was tried ("cannot signal").
        action: &'static str,
        /// The holder's pid.
        pid: u32,
        /// The holder's name.
        comm: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A holder survived SIGKILL.
    #[error(
        "process {pid} ({comm}) did not exit {grace:?} after SIGKILL: it is stuck in the kernel \
         (see its stack in /proc/{pid}/stack)"
    )]
    Unkillable {
        /// The holder's pid.
        pid: u32,
        /// The holder's name.
        comm: String,
        /// How long it had.
        grace: Duration,
    },
    /// A broker still holds the card for a login session.
    #[error(
        "{comm} (pid {pid}) still holds {nodes} for a login session after {waited:?}: a session \
         on this card is still running. Log it out (`loginctl list-sessions`), or keep the \
         desktop off the card with `pitcrew keep-off`; pitcrew never signals {comm}"
    )]
    SessionHolds {
        /// The broker's pid.
        pid: u32,
        /// The broker's name.
        comm: String,
        /// The nodes it holds.
        nodes: String,
        /// How long pitcrew waited.
        waited: Duration,
    },
    /// /proc/modules could not be read.
    #[error("cannot read /proc/modules: {0}")]
    Modules(#[source] std::io::Error),
    /// A command (modprobe, systemctl, openrc-run) could not be run.
    #[error("{command}: {source}{}", hint_text(.hint))]
    CommandRun {
        /// The command line.
        command: String,
        /// Where to look next, if anywhere.
        hint: Option<String>,
        /// Why it could not run.
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("{command} failed: {}{}", .stderr.trim_end_matches('.'), hint_text(.hint))]
    CommandFailed {
        /// The command line.
        command: String,
        /// Where to look next, if anywhere.
        hint: Option<String>,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The kernel did not return from a write or a modprobe: `devices` (and `module`) may
    /// still be locked by it, so nothing touches them again in this run.
    #[error("{message}")]
    Stuck {
        /// What was written, where the writer waits and who holds the device.
        message: String,
        /// The functions the kernel is busy with.
        devices: Vec<Bdf>,
        /// The module being unloaded, for a stuck modprobe -r.
        module: Option<String>,
        /// The write helper still waiting, recorded so later runs leave the device alone
        /// until it is gone.
        helper: Option<u32>,
    },
    /// /proc could not be read to look for holders.
    #[error("cannot read /proc to find holders: {0}")]
    Holders(#[source] std::io::Error),
    /// A VM opened the group's /dev/vfio node since the plan.
    #[error("{holder} opened {what} since the plan: a VM uses it; stop it first")]
    VmHolds {
        /// The process, as `pid N (comm) holding ...`.
        holder: String,
        /// What it opened.
        what: String,
    },
    /// A holder that appeared since the plan could not be ended.
    #[error("{holder} opened {what} since the plan: {source}")]
    LateHolder {
        /// The process, as `pid N (comm) holding ...`.
        holder: String,
        /// What it opened.
        what: String,
        /// Why ending it failed.
        source: Box<StepError>,
    },
    /// A sysfs attribute could not be read.
    #[error("cannot read {path}: {cause}", cause = crate::untrusted::cause(std::path::Path::new(.path), .source))]
    Read {
        /// The attribute.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The kernel did not take a vtconsole's new binding.
    #[error("{path} still reads {now} after writing {wanted}")]
    NotTaken {
        /// The vtconsole's `bind`.
        path: String,
        /// What was written.
        wanted: &'static str,
        /// What it reads now.
        now: String,
    },
    /// The sleep inhibitor's holder outlived SIGTERM.
    #[error("systemd-inhibit {pid} (\"{why}\") did not exit {waited:?} after SIGTERM")]
    InhibitorStuck {
        /// The holder.
        pid: u32,
        /// Its reason, as `systemd-inhibit --list` shows it.
        why: String,
        /// How long it had.
        waited: Duration,
    },
    /// SIGTERM arrived before the step started.
    #[error("cancelled by SIGTERM before it started")]
    Cancelled,
}

fn hint_text(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default()
}

/// A failed run: which step, why, and how the rollback went.
#[derive(Debug, thiserror::Error)]
#[error("step {number} of {total} ({step}) failed: {cause}. {}{rollback}", left_alone(.stuck))]
pub struct ExecError {
    /// 1-based position of the failed step.
    pub number: usize,
    /// Steps in the plan.
    pub total: usize,
    /// The step that failed.
    pub step: Step,
    /// Why it failed.
    #[source]
    pub cause: StepError,
    /// Functions the kernel was still busy with: not touched again, still in the record.
    pub stuck: Vec<Bdf>,
    /// What the rollback did.
    pub rollback: Rollback,
}

fn left_alone(stuck: &[Bdf]) -> String {
    let Some(first) = stuck.first() else {
        return String::new();
    };
    let shown: Vec<String> = stuck.iter().map(Bdf::to_string).collect();
    format!(
        "pitcrew does not touch {} again: the kernel may still be writing to it, and another \
         write would wait behind it. Once nothing holds it, `pitcrew reattach {first}` gives it \
         back. ",
        shown.join(", ")
    )
}

/// The outcome of undoing the steps done before a failure.
#[derive(Debug)]
pub enum Rollback {
    /// Every undo succeeded: the host is as it was.
    Done,
    /// Every undo succeeded but those of what the kernel is stuck on.
    Partly,
    /// These undos failed.
    Failed(Vec<(Step, StepError)>),
}

impl std::fmt::Display for Rollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rollback::Done => write!(f, "Rolled back: the host is as it was before"),
            Rollback::Partly => write!(f, "Rolled back everything else"),
            Rollback::Failed(errors) => {
                let errors: Vec<String> = errors
                    .iter()
                    .map(|(undo, cause)| format!("{undo}: {cause}"))
                    .collect();
                write!(
                    f,
                    "Rolling back failed too ({}); what was done is in {}/state.json, and \
                     running the same command again, or `pitcrew reattach` with the same \
                     devices, continues from there",
                    errors.join("; "),
                    record::DIR
                )
            }
        }
    }
}

/// Why [`super::Executor::run`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A step failed; the run rolled back.
    #[error(transparent)]
    Failed(Box<ExecError>),
    /// Fault injection stopped the run dead after this step, as a kill -9 would.
    #[cfg(feature = "fault-injection")]
    #[error("stopped after step {after} by fault injection, without rolling back")]
    Interrupted {
        /// The last step that completed.
        after: usize,
    },
}
