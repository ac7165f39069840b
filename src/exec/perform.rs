//! Carrying out one step on the host.

use super::console;
use super::error::StepError;
use super::guard;
use crate::bdf::Bdf;
use crate::host::init::{Init, Verb};
use crate::host::pci::{self, WriteError, VFIO_DRIVER};
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
        Step::StopUnit { unit, .. } => service(host, Verb::Stop, unit, policy),
        Step::StartUnit { unit } => service(host, Verb::Start, unit, policy),
        Step::EndProcess {
            pid, comm, nodes, ..
        } => end_process(host, *pid, comm, nodes, policy),
        Step::AwaitRelease { pid, comm, nodes } => await_release(host, *pid, comm, nodes, policy),
        Step::ReleaseSound { bdf, card, .. } => {
            crate::reserve::release(host, *bdf, *card, policy);
            Ok(())
        }
        Step::UnloadModule { module, nodes } => {
            if !loaded(host, module)? {
                return Ok(());
            }
            let bound = pci::bound_to_module(host, module);
            let mut watched = nodes.clone();
            watched.extend(
                bound
                    .iter()
                    .flat_map(|bdf| guard::function_nodes(host, *bdf)),
            );
            guard::clear_new_holders(host, &format!("module {module}"), &bound, &watched, policy)?;
            let hint = "`pitcrew status` lists what holds the card's nodes";
            let unloaded = command(host, "modprobe", &["-r", module], policy, Some(hint.into()));
            match unloaded {
                // kmod goes on to the module's pre-softdeps once it is unloaded, and exits 1 on
                // one in use (vfio-pci held by a running VM, or loading beside this step): the
                // step asked only for `module` to be gone. (Unsure whether it is: modprobe's
                // own error stands.)
                Err(StepError::CommandFailed { stderr, .. })
                    if matches!(loaded(host, module), Ok(false)) =>
                {
                    tracing::warn!("{module} is unloaded, but modprobe -r {module} said: {stderr}");
                    Ok(())
                }
                // A modprobe the kernel does not return from is stuck like a write.
                Err(e) if timed_out(&e) => Err(StepError::Stuck {
                    message: e.to_string(),
                    devices: bound,
                    module: Some(module.clone()),
                    helper: None,
                }),
                other => other,
            }
        }
        Step::LoadModule { module } => command(host, "modprobe", &[module], policy, None),
        Step::Release { bdf, unbind, .. } => {
            written(
                host,
                *bdf,
                pci::set_override(host, *bdf, policy.step_timeout),
            )?;
            match pci::driver(host, *bdf) {
                Some(driver) if *unbind && driver != VFIO_DRIVER => {
                    unbind_from(host, *bdf, &driver, policy)
                }
                _ => Ok(()),
            }
        }
        Step::BindVfio { bdf } => {
            // `modprobe -r` of a host driver also removes the module's pre-softdeps once unused,
            // and `softdep <driver> pre: vfio-pci` is a common setting: an unload in this run
            // may have taken vfio-pci away, loaded beside it or before the run (with the
            // bindings of idle lent functions, which the load gives back: their driver_override
            // names vfio-pci).
            if !pci::driver_registered(host, VFIO_DRIVER) {
                tracing::info!(
                    "{VFIO_DRIVER} is gone (removed with a module unloaded in this run?): \
                     loading {} again",
                    pci::VFIO_MODULE
                );
                command(host, "modprobe", &[pci::VFIO_MODULE], policy, None)?;
            }
            probe_into(host, *bdf, VFIO_DRIVER, policy)
        }
        Step::LeaveVfio { bdf } => {
            // A VM that started since the plan is found before anything about it changes.
            guard::clear_new_holders(
                host,
                &bdf.to_string(),
                &[*bdf],
                &guard::function_nodes(host, *bdf),
                policy,
            )?;
            written(
                host,
                *bdf,
                pci::clear_override(host, *bdf, policy.step_timeout),
            )?;
            match pci::driver(host, *bdf) {
                Some(driver) if driver == VFIO_DRIVER => unbind_from(host, *bdf, &driver, policy),
                _ => Ok(()),
            }
        }
        Step::Restore { bdf, driver } => restore(host, *bdf, driver.as_deref(), policy),
        Step::UnbindConsole { vtcon, .. } => console::set_console(host, vtcon, false, policy),
        Step::BindConsole { vtcon, name } => console::bind_console(host, vtcon, name, policy),
        Step::ReleaseFramebuffer { device, driver, .. } => {
            console::release_framebuffer(host, device, driver, policy)
        }
        Step::RestoreFramebuffer { device, driver, .. } => {
            console::restore_framebuffer(host, device, driver, policy)
        }
        Step::InhibitSleep { why } => console::inhibit_sleep(host, why, policy),
        Step::ReleaseInhibitor { why } => console::end(host, why, policy),
        Step::ResizeBar { .. } | Step::RestoreBar { .. } | Step::SetResetMethod { .. } => {
            super::tuning::perform(host, step, policy)
        }
    }
}

/// A write about `bdf`; one the kernel did not return from marks the device as stuck.
fn written(host: &Host, bdf: Bdf, result: Result<(), WriteError>) -> Result<(), StepError> {
    result.map_err(|e| match e.stuck() {
        Some(stuck) => guard::stuck(host, bdf, e.to_string(), stuck.pid),
        None => StepError::Write(e),
    })
}

/// Nothing may hold the function's nodes when it leaves its driver: the kernel would wait for
/// every one of them to close.
pub(super) fn unbind_from(
    host: &Host,
    bdf: Bdf,
    driver: &str,
    policy: &Policy,
) -> Result<(), StepError> {
    let nodes = guard::function_nodes(host, bdf);
    guard::clear_new_holders(host, &bdf.to_string(), &[bdf], &nodes, policy)?;
    written(
        host,
        bdf,
        pci::unbind(host, bdf, driver, policy.step_timeout),
    )?;
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
    written(host, bdf, pci::probe(host, bdf, policy.step_timeout))?;
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
    let limit = policy.step_timeout;
    if pci::driver_override(host, bdf).is_some() {
        written(host, bdf, pci::clear_override(host, bdf, limit))?;
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
        return written(host, bdf, pci::probe(host, bdf, limit));
    };
    match written(host, bdf, pci::probe(host, bdf, limit)) {
        Err(stuck @ StepError::Stuck { .. }) => return Err(stuck),
        Err(e) => tracing::debug!("{e}; binding {bdf} to {wanted} by name instead"),
        Ok(()) => {}
    }
    if pci::driver(host, bdf).is_none() {
        if !pci::driver_registered(host, wanted) {
            return Err(StepError::DriverMissing {
                bdf,
                driver: wanted.to_string(),
            });
        }
        // Another driver may also match the ids; name the one it had.
        written(host, bdf, pci::bind(host, bdf, wanted, limit))?;
    }
    wait::until(
        &format!("{bdf} to bind to {wanted}"),
        policy.step_timeout,
        || pci::driver(host, bdf).as_deref() == Some(wanted),
    )?;
    Ok(())
}

pub(super) fn end_process(
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
        // A sound server that released the card through its reservation lands here.
        tracing::info!("process {pid} ({comm}) let go of the card by itself: nothing to end");
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

/// Waits for a broker (logind, seatd) to close `nodes`. It closes a session's devices when the
/// session's compositor releases them or goes, so this never signals anything: a session still
/// using the card past the step timeout fails the step, naming what to do.
pub(super) fn await_release(
    host: &Host,
    pid: u32,
    comm: &str,
    nodes: &BTreeSet<String>,
    policy: &Policy,
) -> Result<(), StepError> {
    let what = format!("{comm} ({pid}) closing {}", holders::listed(nodes));
    crate::wait::until(&what, policy.step_timeout, || {
        holders::held_nodes(host, pid).is_disjoint(nodes)
    })
    .map_err(|_| StepError::SessionHolds {
        pid,
        comm: comm.to_string(),
        nodes: holders::listed(nodes),
        waited: policy.step_timeout,
    })
}

fn timed_out(e: &StepError) -> bool {
    matches!(e, StepError::CommandRun { source, .. } if source.kind() == std::io::ErrorKind::TimedOut)
}

fn loaded(host: &Host, module: &str) -> Result<bool, StepError> {
    modules::loaded(host)
        .map(|all| all.contains_key(&modules::canonical(module)))
        .map_err(StepError::Modules)
}

/// Stops or starts a service through the host's service manager.
fn service(host: &Host, verb: Verb, unit: &str, policy: &Policy) -> Result<(), StepError> {
    let init = Init::detect(host).map_err(|e| StepError::CommandRun {
        command: format!("{} {unit}", verb.word()),
        hint: None,
        source: std::io::Error::other(e.to_string()),
    })?;
    let (program, args) = init.command(verb, unit);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    command(host, program, &args, policy, Some(init.log_hint(unit)))
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
