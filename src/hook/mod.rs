//! libvirt's QEMU hook: `<domain> <op> <subop> [extra]` with the domain XML on stdin.
//!
//! The hook runs inside libvirtd for every operation of every VM, so it decides as early as it
//! can, never calls libvirt (that can deadlock libvirtd), never writes to stdout (for `migrate`
//! and `restore` libvirt would take stdout as replacement XML) and only waits, boundedly, for
//! the VM's instance (`pitcrew@<vm>.service` under systemd, `pitcrew.<vm>` under OpenRC) that
//! does the actual work.

pub mod instance;
pub mod outcome;
pub mod request;

use crate::config::{Config, HOOK_MARGIN};
use crate::host::init::{Init, Verb};
use crate::host::Host;
use crate::text::shown;
use crate::vm::{self, VmName};
use instance::InstanceError;
use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

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
    if action == Action::Migrate {
        return Reply::fail(format!(
            "VM '{vm}' passes a host GPU through (managed by pitcrew); migration is refused"
        ));
    }
    // A release the VM's config keeps the GPU through needs no service manager at all.
    if let Action::Reattach { failed: false } = action {
        if !settings.reattach {
            return Reply::ok();
        }
    }
    let init = match Init::detect(host) {
        Ok(init) => init,
        Err(e) => return Reply::fail(format!("{e}; VM '{vm}' is not handled")),
    };
    if let Action::Reattach { .. } = action {
        return reattach(host, init, &vm, settings.unit_timeout);
    }
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
    detach(host, init, &vm, settings.unit_timeout)
}

/// Starts the VM's instance and waits for it, within the VM's timeout and the hook's margin
/// (see [`instance::start_instance`]): a oneshot's start returns when the detach has finished.
fn detach(host: &Host, init: Init, vm: &VmName, timeout: Duration) -> Reply {
    let service = instance::service(init, vm);
    let see = format!("see {}", init.log_where(&service));
    outcome::clear(host, vm);
    match instance::start_instance(host, init, vm, timeout, HOOK_MARGIN) {
        Ok(()) => Reply::ok(),
        // A staged root: say what was not run (the tree is not this machine).
        Err(InstanceError::Staged(what)) => Reply::note(what),
        // The log hint comes before the reason: a long reason is what the cut shortens.
        Err(InstanceError::Failed { .. }) => Reply::fail(match outcome::read(host, vm) {
            Some(reason) => format!(
                "{service} failed: the GPU stays with the host and VM '{vm}' is not started ({see}): {reason}"
            ),
            None => format!(
                "{service} failed: the GPU stays with the host and VM '{vm}' is not started; {see}"
            ),
        }),
        Err(e @ InstanceError::TimedOut { .. }) => {
            Reply::fail(format!("{e}; VM '{vm}' is not started; {see}"))
        }
        Err(e @ InstanceError::NameTooLong { .. }) => Reply::fail(e.to_string()),
        Err(e) => Reply::fail(format!("{e}; VM '{vm}' is not started")),
    }
}

/// Stops the VM's instance, whose stop reattaches the card.
fn reattach(host: &Host, init: Init, vm: &VmName, timeout: Duration) -> Reply {
    let service = instance::service(init, vm);
    match instance::stop_instance(host, init, vm, timeout, HOOK_MARGIN) {
        Ok(()) => Reply::ok(),
        Err(InstanceError::Staged(what)) => Reply::note(what),
        Err(e @ (InstanceError::Failed { .. } | InstanceError::TimedOut { .. })) => {
            let (program, args) = init.command(Verb::Stop, &service);
            let what = match e {
                // systemctl only queued the stop: the queueing is what failed.
                InstanceError::Failed { stderr, .. } if init == Init::Systemd => {
                    format!("cannot queue the stop of {service}: {stderr}")
                }
                e => e.to_string(),
            };
            Reply::fail(format!(
                "{what}; the GPU stays on vfio-pci, run `{program} {}`",
                args.iter()
                    .map(|a| crate::text::shell_word(a))
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
        }
        Err(e) => Reply::fail(e.to_string()),
    }
}
