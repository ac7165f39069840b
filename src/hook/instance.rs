//! Running a VM's instance (`pitcrew@<vm>.service`, `pitcrew.<vm>`) from libvirt's hook, within
//! a deadline, whatever the service manager does about deadlines itself.
//!
//! systemd enforces the unit's timeout and ends a cancelled job's processes. OpenRC has no start
//! timeout, and a process that stops waiting for openrc-run leaves the service's shell and the
//! detach running; so past the deadline the hook ends the instance's cgroup itself: SIGTERM
//! first (the detach then finishes its step and rolls back), SIGKILL once the margin is over.

use crate::host::init::openrc::{self, OPENRC_RUN};
use crate::host::init::Init;
use crate::host::{CmdOutput, Host, Signal};
use crate::vm::VmName;
use std::io;
use std::path::Path;
use std::time::Duration;

/// How long the release hook gives systemctl to queue the stop job (it does not wait for it).
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
/// Why a VM's instance did not start or stop.
pub enum InstanceError {
    /// A staged root: nothing was run (the text says what).
    #[error("{0}")]
    Staged(String),
    /// The service manager ran it and it failed.
    #[error("{service} failed: {stderr}")]
    Failed {
        /// The instance.
        service: String,
        /// The first line of what the command said.
        stderr: String,
    },
    /// It did not finish in time and was cancelled (its processes ended).
    #[error("{service} did not finish within {}s and was cancelled", waited.as_secs())]
    TimedOut {
        /// The instance.
        service: String,
        /// How long it was waited for.
        waited: Duration,
    },
    /// The VM's name, escaped, makes a service name longer than a file name may be.
    #[error(
        "VM '{vm}' escapes to an OpenRC service name of {length} bytes (at most {} fit a file \
         name): rename the VM to pass its GPU through",
        crate::atomic::NAME_MAX
    )]
    NameTooLong {
        /// The VM.
        vm: String,
        /// The length of `pitcrew.<escaped>`.
        length: usize,
    },
    /// The command could not be run, or the instance could not be made.
    #[error("cannot run {command}: {source}")]
    Run {
        /// The command line.
        command: String,
        /// Why.
        source: io::Error,
    },
}

/// The service that holds a VM's GPU while it runs.
pub fn service(init: Init, vm: &VmName) -> String {
    match init {
        Init::Systemd => vm.unit_name(),
        Init::OpenRc => openrc::instance(vm.as_str()),
    }
}

/// Starts a VM's instance and waits for it, `timeout` and then `margin` at most.
pub fn start_instance(
    host: &Host,
    init: Init,
    vm: &VmName,
    timeout: Duration,
    margin: Duration,
) -> Result<(), InstanceError> {
    let service = service(init, vm);
    match init {
        Init::Systemd => {
            let args = ["start", "--", service.as_str()];
            let result = run(host, "systemctl", &args, &service, timeout + margin);
            if matches!(result, Err(InstanceError::TimedOut { .. })) {
                // A queued stop replaces the start job; systemd ends the detach, which rolls back.
                let stop = ["stop", "--no-block", "--", service.as_str()];
                let _ = host.effects().run("systemctl", &stop, QUEUE_TIMEOUT);
            }
            result
        }
        Init::OpenRc => {
            // Every byte but letters, digits and '-' takes three: systemd's limit on the VM
            // name (src/vm/name.rs) does not bound this one.
            if service.len() > crate::atomic::NAME_MAX {
                return Err(InstanceError::NameTooLong {
                    vm: vm.to_string(),
                    length: service.len(),
                });
            }
            link(host, &service)?;
            let result = openrc_run(host, &service, "start", timeout, margin);
            if matches!(result, Err(InstanceError::TimedOut { .. })) {
                // openrc-run was ended mid-start: mark the instance stopped, not `starting`.
                let script = openrc::script(&service);
                let _ = host
                    .effects()
                    .run(OPENRC_RUN, &[&script, "zap"], QUEUE_TIMEOUT);
            }
            result
        }
    }
}

/// Stops a VM's instance (its stop reattaches the card). systemd only queues the stop: at
/// shutdown it orders pitcrew's stop after libvirtd's, so waiting inside libvirtd could
/// deadlock. OpenRC runs it now, within the same deadline as the start.
pub fn stop_instance(
    host: &Host,
    init: Init,
    vm: &VmName,
    timeout: Duration,
    margin: Duration,
) -> Result<(), InstanceError> {
    let service = service(init, vm);
    match init {
        Init::Systemd => {
            let args = ["stop", "--no-block", "--", service.as_str()];
            run(host, "systemctl", &args, &service, QUEUE_TIMEOUT)
        }
        Init::OpenRc => openrc_run(host, &service, "stop", timeout, margin),
    }
}

/// `/etc/init.d/pitcrew.<vm>` -> `pitcrew`, made under a temp name and renamed into place, so
/// two hooks racing never see a half-made link.
fn link(host: &Host, service: &str) -> Result<(), InstanceError> {
    let path = host.path(openrc::script(service));
    if std::fs::read_link(&path).is_ok_and(|t| t == Path::new("pitcrew")) {
        return Ok(());
    }
    crate::atomic::symlink(&path, Path::new("pitcrew")).map_err(|e| InstanceError::Run {
        command: format!("{OPENRC_RUN} {}", openrc::script(service)),
        source: io::Error::new(e.source.kind(), e.to_string()),
    })
}

fn openrc_run(
    host: &Host,
    service: &str,
    verb: &str,
    timeout: Duration,
    margin: Duration,
) -> Result<(), InstanceError> {
    let script = openrc::script(service);
    let result = run(host, OPENRC_RUN, &[&script, verb], service, timeout);
    if matches!(result, Err(InstanceError::TimedOut { .. })) {
        end_cgroup(host, service, margin);
        return Err(InstanceError::TimedOut {
            service: service.to_string(),
            waited: timeout + margin,
        });
    }
    result
}

fn run(
    host: &Host,
    program: &str,
    args: &[&str],
    service: &str,
    wait: Duration,
) -> Result<(), InstanceError> {
    match host.effects().run(program, args, wait) {
        Ok(CmdOutput { success: true, .. }) => Ok(()),
        Ok(out) => Err(InstanceError::Failed {
            service: service.to_string(),
            stderr: out
                .stderr
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .trim()
                .to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            Err(InstanceError::Staged(e.to_string()))
        }
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(InstanceError::TimedOut {
            service: service.to_string(),
            waited: wait,
        }),
        Err(source) => Err(InstanceError::Run {
            command: format!("{program} {}", args.join(" ")),
            source,
        }),
    }
}

/// SIGTERM to every process of the instance, a wait of `margin` for the cgroup to empty, then
/// SIGKILL to what is left (`cgroup.kill` where the kernel has it, which also catches a fork in
/// between). A process waiting in the kernel (a write helper in D state) outlives even that.
fn end_cgroup(host: &Host, service: &str, margin: Duration) {
    let signal_all = |signal: Signal| {
        for pid in openrc::pids(host, service) {
            if let Ok(process) = host.effects().process(pid) {
                let _ = process.signal(signal);
            }
        }
    };
    signal_all(Signal::Term);
    let what = format!("the processes of {service} to exit");
    if crate::wait::until(&what, margin, || openrc::pids(host, service).is_empty()).is_ok() {
        return;
    }
    let kill = openrc::cgroup_dirs(service)
        .into_iter()
        .map(|dir| format!("{dir}/cgroup.kill"))
        .find(|file| host.path(file).is_file());
    let killed = kill.is_some_and(|file| host.write(&file, "1", QUEUE_TIMEOUT).is_ok());
    if !killed {
        signal_all(Signal::Kill);
    }
}
