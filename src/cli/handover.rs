//! `pitcrew detach` / `pitcrew reattach`: the request from the command line (or the VM's
//! config and the hook's request), the handover, and on stdout its plan (a dry run) or the line
//! that sums it up (the steps are logged as they run).

use super::args::HandoverArgs;
use super::print_out;
use crate::config::{self, Config};
use crate::error::{Error, Failed, Input};
use crate::handover::{self, Request};
use crate::hook::{outcome, request};
use crate::host::init::openrc;
use crate::host::Host;
use crate::plan::Direction;
use crate::vm::VmName;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn run(host: &Host, direction: Direction, mut args: HandoverArgs) -> Result<(), Error> {
    if let Some(service) = args.service.take() {
        let vm = service
            .strip_prefix(openrc::INSTANCE_PREFIX)
            .and_then(openrc::unescape)
            .ok_or(Input::Service(service))?;
        args.vm = Some(vm);
    }
    // The unit's detach tells the hook waiting on it why it failed (see hook::outcome).
    let starting = match &args.vm {
        Some(name) if direction == Direction::Detach && !args.dry_run && !host.is_staged() => {
            VmName::parse(name).ok()
        }
        _ => None,
    };
    let result = handover(host, direction, args);
    if let (Err(e), Some(vm)) = (&result, starting) {
        if let Err(not_left) = outcome::record(host, &vm, &e.to_string()) {
            tracing::warn!("the hook will show no reason for VM '{vm}': {not_left}");
        }
    }
    result
}

fn handover(host: &Host, direction: Direction, args: HandoverArgs) -> Result<(), Error> {
    if host.is_staged() && !args.dry_run {
        return Err(Input::StagedRoot(host.root().to_path_buf()).into());
    }
    if args.force && direction == Direction::Detach {
        return Err(Input::ForceDetach.into());
    }
    let config = Config::load(host).map_err(Input::from)?.unwrap_or_default();
    let (devices, mut policy) = match &args.vm {
        // The unit's stop gives back what the record says was lent to the VM, nothing else.
        Some(name) if direction == Direction::Reattach => {
            let vm = VmName::parse(name).map_err(Input::from)?;
            (Vec::new(), config::policy_for_vm(&config, &vm))
        }
        Some(name) => {
            let vm = VmName::parse(name).map_err(Input::from)?;
            let devices = request::devices_for_vm(host, &config, name).map_err(Input::from)?;
            (devices, config::policy_for_vm(&config, &vm))
        }
        None => (args.devices, config.defaults.policy.clone()),
    };
    if let Some(seconds) = args.term_timeout {
        policy.term_timeout =
            Duration::try_from_secs_f64(seconds).map_err(|_| Input::TermTimeout(seconds))?;
    }
    // systemd stops a start job it gives up on with SIGTERM: finish the step, then roll back.
    let cancel = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, cancel.clone()).map_err(Failed::Signals)?;
    }
    // A detach run from a terminal of the desktop it stops loses that terminal half-way: the
    // hangup must not end it between two steps, so it runs to its end (display manager back).
    signal_hook::flag::register(
        signal_hook::consts::SIGHUP,
        Arc::new(AtomicBool::new(false)),
    )
    .map_err(Failed::Signals)?;
    let request = Request {
        direction,
        devices,
        policy,
        lent_only: args.vm.is_some() && direction == Direction::Reattach,
        force: args.force,
        owner: args.vm,
        dry_run: args.dry_run,
        #[cfg(feature = "fault-injection")]
        crash_after: crate::fault::crash_after(),
        cancel: Some(cancel),
    };
    let outcome = match handover::run(host, &request) {
        #[cfg(feature = "fault-injection")]
        Err(handover::HandoverError::Interrupted { .. }) => crate::fault::die(),
        other => other?,
    };
    print_out(&outcome.to_string())
}
