//! libvirt's QEMU hook: `<domain> <op> <subop> [extra]` with the domain XML on stdin.
//!
//! The hook runs inside libvirtd for every operation of every VM, so it decides as early as it
//! can, never calls libvirt (that can deadlock libvirtd), never writes to stdout (for `migrate`
//! and `restore` libvirt would take stdout as replacement XML) and only waits, boundedly, for
//! the `pitcrew@<vm>.service` unit that does the actual work under systemd.

pub mod outcome;
pub mod request;

use crate::config::{Config, HOOK_MARGIN};
use crate::host::Host;
use crate::text::shown;
use crate::vm::{self, VmName};
use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// How long the release hook gives systemctl to queue the stop job (it does not wait for it).
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
/// The arguments libvirt passes its QEMU hook.
pub struct HookArgs {
    /// The VM (libvirt domain) name, untrusted until parsed.
    pub vm: String,
    /// The operation: prepare, start, release, migrate...
    pub op: String,
    /// The sub-operation: begin or end.
    pub subop: String,
    /// The extra argument (`failed` on a release after a failed start).
    pub extra: Option<String>,
}

/// The most the hook writes to stderr: libvirt puts it into the error of `virsh start`.
pub const MAX_MESSAGE: usize = 512;

/// What the hook ends with: the exit code and at most one line for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The hook's exit code: non-zero makes libvirt refuse the operation.
    pub code: i32,
    /// The line for stderr, which libvirt shows in its error.
    pub message: Option<String>,
}

impl Reply {
    fn ok() -> Reply {
        Reply {
            code: 0,
            message: None,
        }
    }
    fn note(message: String) -> Reply {
        Reply {
            code: 0,
            message: Some(format!("pitcrew: {message}")),
        }
    }
    fn fail(message: String) -> Reply {
        Reply {
            code: 1,
            message: Some(format!("pitcrew: {message}")),
        }
    }
    /// Bad input (the config): nothing was changed.
    fn refuse(message: String) -> Reply {
        Reply {
            code: 2,
            message: Some(format!("pitcrew: {message}")),
        }
    }
}

/// True when the binary was started by libvirt as a hook rather than as `pitcrew ...`: `argv[0]`
/// is libvirt's `qemu` hook name, the drop-in's name, or any name inside a `qemu.d` directory.
pub fn invoked_as_hook(argv0: &OsStr) -> bool {
    let path = Path::new(argv0);
    let in_dropin_dir = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|dir| dir == "qemu.d");
    in_dropin_dir || path.file_name().is_some_and(|name| name == "qemu")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// prepare/begin: detach the GPU before libvirt touches it.
    Detach,
    /// release/end: reattach it; `failed` when libvirt reports the start failed.
    Reattach { failed: bool },
    /// migrate/begin: a VM holding a host GPU cannot move.
    Migrate,
}

fn action(args: &HookArgs) -> Option<Action> {
    match (args.op.as_str(), args.subop.as_str()) {
        ("prepare", "begin") => Some(Action::Detach),
        ("release", "end") => Some(Action::Reattach {
            failed: args.extra.as_deref() == Some("failed"),
        }),
        ("migrate", "begin") => Some(Action::Migrate),
        // start, started, stopped, restore, reconnect, attach, ...: nothing to do.
        _ => None,
    }
}

/// Runs the hook. `stdin` is read only when the decision needs the XML. The message is one line
/// of at most [`MAX_MESSAGE`] bytes, whatever the XML, the names or the config hold.
pub fn run(host: &Host, args: &HookArgs, stdin: &mut dyn Read) -> Reply {
    let mut reply = decide(host, args, stdin);
    reply.message = reply
        .message
        .map(|message| crate::text::one_line(&message, MAX_MESSAGE));
    reply
}

fn decide(host: &Host, args: &HookArgs, stdin: &mut dyn Read) -> Reply {
    let Some(action) = action(args) else {
        return Reply::ok();
    };
    let config = match Config::load(host) {
        Ok(Some(config)) => config,
        Ok(None) => return Reply::ok(),
        Err(e) => return Reply::refuse(format!("{e} (VM '{}' not handled)", shown(&args.vm))),
    };
    let name = VmName::parse(&args.vm);
    let listed = name.as_ref().ok().and_then(|vm| config.listed(vm));
    let needs_xml = match listed {
        Some(vm) => vm.devices.is_empty() && action == Action::Detach,
        None => config.auto,
    };
    if listed.is_none() && !needs_xml {
        return Reply::ok();
    }
    let gpus = if needs_xml {
        match vm::read_xml(stdin).and_then(|xml| vm::gpu_hostdevs(host, &xml)) {
            Ok(gpus) => gpus,
            Err(e) => return Reply::fail(format!("VM '{}': {e}", shown(&args.vm))),
        }
    } else {
        Vec::new()
    };
    if listed.is_none() && gpus.is_empty() {
        return Reply::ok();
    }
    let vm = match name {
        Ok(vm) => vm,
        Err(e) => return Reply::fail(format!("{e}: rename the VM to pass its GPU through")),
    };
    let settings = config.for_vm(&vm);
    match action {
        Action::Migrate => Reply::fail(format!(
            "VM '{vm}' passes a host GPU through (managed by pitcrew); migration is refused"
        )),
        Action::Detach => {
            if settings.devices.is_empty() {
                if gpus.is_empty() {
                    return Reply::note(format!(
                        "VM '{vm}' is configured but passes no GPU through and the config names no devices; nothing to do"
                    ));
                }
                if let Err(e) = request::write(host, &vm, &gpus) {
                    return Reply::fail(format!("VM '{vm}' not started: {e}"));
                }
            }
            detach(host, &vm, settings.unit_timeout + HOOK_MARGIN)
        }
        Action::Reattach { failed } => {
            if failed || settings.reattach {
                reattach(host, &vm)
            } else {
                Reply::ok()
            }
        }
    }
}

/// Starts the VM's unit and waits for it: a oneshot's `systemctl start` returns when ExecStart
/// has finished. The wait is bounded; on timeout the start job is cancelled (a queued stop
/// replaces it, and systemd ends the detach, which rolls back).
fn detach(host: &Host, vm: &VmName, wait: Duration) -> Reply {
    let unit = vm.unit_name();
    let effects = host.effects();
    // An escaped name (`gpu\x2dvm`) is quoted, so the command pastes into a shell as shown.
    let see = format!("see `journalctl -u {}`", crate::text::shell_word(&unit));
    outcome::clear(host, vm);
    match effects.run("systemctl", &["start", "--", &unit], wait) {
        Ok(out) if out.success => Reply::ok(),
        // A staged root: say what was not run (the tree is not this machine).
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Reply::note(e.to_string()),
        // The journal hint comes before the reason: a long reason is what the cut shortens.
        Ok(_) => Reply::fail(match outcome::read(host, vm) {
            Some(reason) => format!(
                "{unit} failed: the GPU stays with the host and VM '{vm}' is not started ({see}): {reason}"
            ),
            None => format!(
                "{unit} failed: the GPU stays with the host and VM '{vm}' is not started; {see}"
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            let _ = effects.run(
                "systemctl",
                &["stop", "--no-block", "--", &unit],
                QUEUE_TIMEOUT,
            );
            Reply::fail(format!(
                "{unit} did not finish within {}s and was cancelled; VM '{vm}' is not started; {see}",
                wait.as_secs()
            ))
        }
        Err(e) => Reply::fail(format!(
            "cannot run systemctl start {unit}: {e}; VM '{vm}' is not started"
        )),
    }
}

/// Queues the unit's stop (ExecStop reattaches) without waiting: at shutdown systemd orders
/// pitcrew's stop after libvirtd's, so waiting here, inside libvirtd, could deadlock.
fn reattach(host: &Host, vm: &VmName) -> Reply {
    let unit = vm.unit_name();
    match host
        .effects()
        .run("systemctl", &["stop", "--no-block", "--", &unit], QUEUE_TIMEOUT)
    {
        Ok(out) if out.success => Reply::ok(),
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Reply::note(e.to_string()),
        Ok(out) => Reply::fail(format!(
            "cannot queue the stop of {unit}: {}; the GPU stays on vfio-pci, run `systemctl stop {}`",
            out.stderr.lines().next().unwrap_or("systemctl failed"),
            crate::text::shell_word(&unit)
        )),
        Err(e) => Reply::fail(format!("cannot run systemctl stop {unit}: {e}")),
    }
}
