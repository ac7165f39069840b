//! Carrying out one step on the host.

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

pub fn perform(host: &Host, step: &Step, policy: &Policy) -> Result<(), String> {
    match step {
        Step::StopUnit { unit, .. } => systemctl(host, "stop", unit, policy),
        Step::StartUnit { unit } => systemctl(host, "start", unit, policy),
        Step::EndProcess { pid, comm, nodes } => end_process(host, *pid, comm, nodes, policy),
        Step::UnloadModule { module } => {
            if !loaded(host, module)? {
                return Ok(());
            }
            modprobe(host, &["-r", module], policy).map_err(|e| {
                format!("{e}; `lsof /dev/dri/* /dev/nvidia*` shows what still uses it")
            })
        }
        Step::LoadModule { module } => modprobe(host, &[module], policy),
        Step::Release { bdf, unbind, .. } => {
            write(
                host,
                &format!("{}/{bdf}/driver_override", pci::DEVICES),
                VFIO_DRIVER,
            )?;
            match pci::driver(host, *bdf) {
                Some(driver) if *unbind && driver != VFIO_DRIVER => {
                    unbind_from(host, *bdf, &driver, policy)
                }
                _ => Ok(()),
            }
        }
        Step::BindVfio { bdf } => probe_into(host, *bdf, VFIO_DRIVER, policy),
        Step::LeaveVfio { bdf } => {
            write(
                host,
                &format!("{}/{bdf}/driver_override", pci::DEVICES),
                "\n",
            )?;
            match pci::driver(host, *bdf) {
                Some(driver) if driver == VFIO_DRIVER => unbind_from(host, *bdf, &driver, policy),
                _ => Ok(()),
            }
        }
        Step::Restore { bdf, driver } => restore(host, *bdf, driver.as_deref(), policy),
    }
}

fn write(host: &Host, path: &str, value: &str) -> Result<(), String> {
    host.write(path, value).map_err(|e| {
        format!(
            "writing {:?} to {}: {e}",
            value.trim_end(),
            host.path(path).display()
        )
    })
}

fn unbind_from(host: &Host, bdf: Bdf, driver: &str, policy: &Policy) -> Result<(), String> {
    write(
        host,
        &format!("/sys/bus/pci/drivers/{driver}/unbind"),
        &bdf.to_string(),
    )?;
    wait::until(
        &format!("{bdf} to leave {driver}"),
        policy.step_timeout,
        || pci::driver(host, bdf).is_none(),
    )
    .map_err(|e| e.to_string())
}

/// drivers_probe honours driver_override, so this binds to `driver` only if it may claim the
/// function; the wait tells whether it did.
fn probe_into(host: &Host, bdf: Bdf, driver: &str, policy: &Policy) -> Result<(), String> {
    match pci::driver(host, bdf) {
        Some(current) if current == driver => return Ok(()),
        Some(current) => {
            return Err(format!(
                "{bdf} is bound to {current}, not free for {driver}"
            ))
        }
        None => {}
    }
    write(host, "/sys/bus/pci/drivers_probe", &bdf.to_string())?;
    wait::until(
        &format!("{bdf} to bind to {driver}"),
        policy.step_timeout,
        || pci::driver(host, bdf).as_deref() == Some(driver),
    )
    .map_err(|e| {
        let now = pci::driver(host, bdf).unwrap_or_else(|| "no driver".into());
        format!("{e} (it is on {now}; the kernel log, `journalctl -k`, may say why)")
    })
}

/// Written to be safe on a function in any state, since it also undoes a half-done Release.
fn restore(host: &Host, bdf: Bdf, wanted: Option<&str>, policy: &Policy) -> Result<(), String> {
    let override_path = format!("{}/{bdf}/driver_override", pci::DEVICES);
    if host
        .read(&override_path)
        .is_ok_and(|v| v != "(null)" && !v.is_empty())
    {
        write(host, &override_path, "\n")?;
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
        return write(host, "/sys/bus/pci/drivers_probe", &bdf.to_string());
    };
    if let Err(e) = write(host, "/sys/bus/pci/drivers_probe", &bdf.to_string()) {
        tracing::debug!("{e}; binding {bdf} to {wanted} by name instead");
    }
    if pci::driver(host, bdf).is_none() {
        if !modules::driver_present(host, wanted) {
            return Err(format!(
                "{bdf} stays unbound: its driver {wanted} is not registered (its module is not \
                 loaded); load it with modprobe and run the reattach again"
            ));
        }
        // Another driver may also match the ids; name the one it had.
        write(
            host,
            &format!("/sys/bus/pci/drivers/{wanted}/bind"),
            &bdf.to_string(),
        )?;
    }
    wait::until(
        &format!("{bdf} to bind to {wanted}"),
        policy.step_timeout,
        || pci::driver(host, bdf).as_deref() == Some(wanted),
    )
    .map_err(|e| e.to_string())
}

fn end_process(
    host: &Host,
    pid: u32,
    comm: &str,
    nodes: &BTreeSet<String>,
    policy: &Policy,
) -> Result<(), String> {
    let process = match host.effects().process(pid) {
        Ok(process) => process,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => return Ok(()),
        Err(e) => return Err(format!("cannot open process {pid} ({comm}): {e}")),
    };
    // The pidfd pins the process; checking its fds after opening it makes sure it is still the
    // holder we planned for and not a new process that reused the pid.
    if holders::held_nodes(host, pid).is_disjoint(nodes) {
        return Ok(());
    }
    let failed = |what: &str, e: std::io::Error| format!("{what} process {pid} ({comm}): {e}");
    process
        .signal(Signal::Term)
        .map_err(|e| failed("cannot signal", e))?;
    if process
        .wait_exit(policy.term_timeout)
        .map_err(|e| failed("cannot wait for", e))?
    {
        return Ok(());
    }
    tracing::warn!(
        "process {pid} ({comm}) still holds the card {:?} after SIGTERM: sending SIGKILL",
        policy.term_timeout
    );
    process
        .signal(Signal::Kill)
        .map_err(|e| failed("cannot kill", e))?;
    if process
        .wait_exit(KILL_GRACE)
        .map_err(|e| failed("cannot wait for", e))?
    {
        Ok(())
    } else {
        Err(format!(
            "process {pid} ({comm}) did not exit {KILL_GRACE:?} after SIGKILL: it is stuck in the \
             kernel (see its stack in /proc/{pid}/stack)"
        ))
    }
}

fn loaded(host: &Host, module: &str) -> Result<bool, String> {
    modules::loaded(host)
        .map(|all| all.contains_key(&modules::canonical(module)))
        .map_err(|e| format!("cannot read /proc/modules: {e}"))
}

fn modprobe(host: &Host, args: &[&str], policy: &Policy) -> Result<(), String> {
    command(host, "modprobe", args, policy)
}

fn systemctl(host: &Host, verb: &str, unit: &str, policy: &Policy) -> Result<(), String> {
    command(host, "systemctl", &[verb, unit], policy)
        .map_err(|e| format!("{e}; `journalctl -u {unit}` tells more"))
}

fn command(host: &Host, program: &str, args: &[&str], policy: &Policy) -> Result<(), String> {
    let shown = format!("{program} {}", args.join(" "));
    let out = host
        .effects()
        .run(program, args, policy.step_timeout)
        .map_err(|e| format!("{shown}: {e}"))?;
    if out.success {
        Ok(())
    } else {
        Err(format!("{shown} failed: {}", out.stderr.trim()))
    }
}
