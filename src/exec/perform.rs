//! Carrying out one step on the host.

use super::error::StepError;
use crate::bdf::Bdf;
use crate::host::pci::{self, VFIO_DRIVER};
use crate::host::{holders, modules, Host, Signal};
use crate::plan::Step;
use crate::policy::Policy;
use crate::wait;
use std::collections::BTreeSet;
use std::time::Duration;

/// How long a process gets to vanish after SIGKILL before we call it stuck in the kernel.
pub(super) const KILL_GRACE: Duration = Duration::from_secs(5);

pub fn perform(host: &Host, step: &Step, policy: &Policy) -> Result<(), StepError> {
    match step {
        Step::StopUnit { unit, .. } => systemctl(host, "stop", unit, policy),
        Step::StartUnit { unit } => systemctl(host, "start", unit, policy),
        Step::EndProcess { pid, comm, nodes } => end_process(host, *pid, comm, nodes, policy),
        Step::UnloadModule { module } => {
            if !loaded(host, module)? {
                return Ok(());
            }
            let hint = "`lsof /dev/dri/* /dev/nvidia*` shows what still uses it";
            command(host, "modprobe", &["-r", module], policy, Some(hint.into()))
        }
        Step::LoadModule { module } => command(host, "modprobe", &[module], policy, None),
        Step::Release { bdf, unbind, .. } => {
            pci::set_override(host, *bdf)?;
            match pci::driver(host, *bdf) {
                Some(driver) if *unbind && driver != VFIO_DRIVER => {
                    unbind_from(host, *bdf, &driver, policy)
                }
                _ => Ok(()),
            }
        }
        Step::BindVfio { bdf } => probe_into(host, *bdf, VFIO_DRIVER, policy),
        Step::LeaveVfio { bdf } => {
            pci::clear_override(host, *bdf)?;
            match pci::driver(host, *bdf) {
                Some(driver) if driver == VFIO_DRIVER => unbind_from(host, *bdf, &driver, policy),
                _ => Ok(()),
            }
        }
        Step::Restore { bdf, driver } => restore(host, *bdf, driver.as_deref(), policy),
    }
}

fn unbind_from(host: &Host, bdf: Bdf, driver: &str, policy: &Policy) -> Result<(), StepError> {
    pci::unbind(host, bdf, driver)?;
    wait::until(
        &format!("{bdf} to leave {driver}"),
        policy.step_timeout,
        || pci::driver(host, bdf).is_none(),
    )?;
    Ok(())
}

/// drivers_probe honours driver_override, so this binds to `driver` only if it may claim the
/// function; the wait tells whether it did.
fn probe_into(host: &Host, bdf: Bdf, driver: &str, policy: &Policy) -> Result<(), StepError> {
    match pci::driver(host, bdf) {
        Some(current) if current == driver => return Ok(()),
        Some(current) => {
            return Err(StepError::NotFree {
                bdf,
                current,
                driver: driver.to_string(),
            })
        }
        None => {}
    }
    pci::probe(host, bdf)?;
    wait::until(
        &format!("{bdf} to bind to {driver}"),
        policy.step_timeout,
        || pci::driver(host, bdf).as_deref() == Some(driver),
    )
    .map_err(|source| StepError::NotBound {
        source,
        now: pci::driver(host, bdf).unwrap_or_else(|| "no driver".into()),
    })
}

/// Written to be safe on a function in any state, since it also undoes a half-done Release.
fn restore(host: &Host, bdf: Bdf, wanted: Option<&str>, policy: &Policy) -> Result<(), StepError> {
    if pci::driver_override(host, bdf).is_some() {
        pci::clear_override(host, bdf)?;
    }
    let current = pci::driver(host, bdf);
    if current.is_some() && current.as_deref() == wanted {
        return Ok(());
    }
    if let Some(current) = &current {
        unbind_from(host, bdf, current, policy)?;
    }
    let Some(wanted) = wanted else {
        // The driver it had is unknown: let the kernel choose, as at boot.
        return Ok(pci::probe(host, bdf)?);
    };
    if let Err(e) = pci::probe(host, bdf) {
        tracing::debug!("{e}; binding {bdf} to {wanted} by name instead");
    }
    if pci::driver(host, bdf).is_none() {
        if !pci::driver_registered(host, wanted) {
            return Err(StepError::DriverMissing {
                bdf,
                driver: wanted.to_string(),
            });
        }
        // Another driver may also match the ids; name the one it had.
        pci::bind(host, bdf, wanted)?;
    }
    wait::until(
        &format!("{bdf} to bind to {wanted}"),
        policy.step_timeout,
        || pci::driver(host, bdf).as_deref() == Some(wanted),
    )?;
    Ok(())
}

fn end_process(
    host: &Host,
    pid: u32,
    comm: &str,
    nodes: &BTreeSet<String>,
    policy: &Policy,
) -> Result<(), StepError> {
    let failed = |action: &'static str| {
        move |source| StepError::Process {
            action,
            pid,
            comm: comm.to_string(),
            source,
        }
    };
    let process = match host.effects().process(pid) {
        Ok(process) => process,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => return Ok(()),
        Err(e) => return Err(failed("cannot open")(e)),
    };
    // The pidfd pins the process; checking its fds after opening it makes sure it is still the
    // holder we planned for and not a new process that reused the pid.
    if holders::held_nodes(host, pid).is_disjoint(nodes) {
        return Ok(());
    }
    process
        .signal(Signal::Term)
        .map_err(failed("cannot signal"))?;
    if process
        .wait_exit(policy.term_timeout)
        .map_err(failed("cannot wait for"))?
    {
        return Ok(());
    }
    tracing::warn!(
        "process {pid} ({comm}) still holds the card {:?} after SIGTERM: sending SIGKILL",
        policy.term_timeout
    );
    process
        .signal(Signal::Kill)
        .map_err(failed("cannot kill"))?;
    if process
        .wait_exit(KILL_GRACE)
        .map_err(failed("cannot wait for"))?
    {
        Ok(())
    } else {
        Err(StepError::Unkillable {
            pid,
            comm: comm.to_string(),
            grace: KILL_GRACE,
        })
    }
}

fn loaded(host: &Host, module: &str) -> Result<bool, StepError> {
    modules::loaded(host)
        .map(|all| all.contains_key(&modules::canonical(module)))
        .map_err(StepError::Modules)
}

fn systemctl(host: &Host, verb: &str, unit: &str, policy: &Policy) -> Result<(), StepError> {
    let hint = format!("`journalctl -u {unit}` tells more");
    command(host, "systemctl", &[verb, unit], policy, Some(hint))
}

fn command(
    host: &Host,
    program: &str,
    args: &[&str],
    policy: &Policy,
    hint: Option<String>,
) -> Result<(), StepError> {
    let command = format!("{program} {}", args.join(" "));
    match host.effects().run(program, args, policy.step_timeout) {
        Ok(out) if out.success => Ok(()),
        Ok(out) => Err(StepError::CommandFailed {
            command,
            hint,
            stderr: out.stderr.trim().to_string(),
        }),
        Err(source) => Err(StepError::CommandRun {
            command,
            hint,
            source,
        }),
    }
}
