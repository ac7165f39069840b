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
    /// /proc/modules could not be read.
    #[error("cannot read /proc/modules: {0}")]
    Modules(#[source] std::io::Error),
    /// A command (modprobe, systemctl) could not be run.
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
    #[error("{command} failed: {stderr}{}", hint_text(.hint))]
    CommandFailed {
        /// The command line.
        command: String,
        /// Where to look next, if anywhere.
        hint: Option<String>,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The step's thread did not come back: a write or command blocked in the kernel.
    #[error(
        "it did not finish within {limit:?} (blocked in the kernel; `cat \
         /proc/{pid}/task/*/stack` shows where)"
    )]
    Blocked {
        /// The deadline it missed.
        limit: Duration,
        /// This process, whose stuck thread the stack shows.
        pid: u32,
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
#[error("step {number} of {total} ({step}) failed: {cause}. {rollback}")]
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
    /// What the rollback did.
    pub rollback: Rollback,
}

/// The outcome of undoing the steps done before a failure.
#[derive(Debug)]
pub enum Rollback {
    /// Every undo succeeded: the host is as it was.
    Done,
    /// These undos failed.
    Failed(Vec<(Step, StepError)>),
}

impl std::fmt::Display for Rollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rollback::Done => write!(f, "Rolled back: the host is as it was before"),
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
