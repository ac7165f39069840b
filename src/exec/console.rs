//! Carrying out the console, frame buffer and inhibitor steps.

use super::error::StepError;
use crate::host::console::{self, Console};
use crate::host::{inhibit, Host, Signal};
use crate::policy::Policy;
use crate::wait;
use std::time::Duration;

fn read(host: &Host, path: &str) -> Result<String, StepError> {
    host.read(path).map_err(|source| StepError::Read {
        path: host.path(path).display().to_string(),
        source,
    })
}

/// Writes the vtconsole's `bind` and checks the kernel took it: binding fbcon fails quietly
/// when no frame buffer is registered.
pub(super) fn set_console(
    host: &Host,
    vtcon: &str,
    bind: bool,
    policy: &Policy,
) -> Result<(), StepError> {
    let path = console::bind_path(vtcon);
    let wanted = if bind { "1" } else { "0" };
    if read(host, &path)? == wanted {
        return Ok(());
    }
    console::set_bound(host, vtcon, bind, policy.step_timeout)?;
    match read(host, &path)? {
        now if now == wanted => Ok(()),
        now => Err(StepError::NotTaken {
            path: host.path(&path).display().to_string(),
            wanted,
            now,
        }),
    }
}

/// Binding the console again is worth a warning, not a failed reattach: the card is home either
/// way, and a driver without a frame buffer of its own (NVIDIA without nvidia-drm's fbdev)
/// leaves nothing for the console to draw on. The console is looked up by its name: fbcon
/// unregisters itself when the last frame buffer goes and takes over the next one registered on
/// its own, so by now it may be back already, under another number.
pub(super) fn bind_console(
    host: &Host,
    vtcon: &str,
    name: &str,
    policy: &Policy,
) -> Result<(), StepError> {
    let now = Console::read(host).map_err(|source| StepError::Read {
        path: host.path(console::VTCONSOLES).display().to_string(),
        source,
    })?;
    let found = now
        .vtconsoles
        .iter()
        .find(|c| c.name == name)
        .or_else(|| now.vtconsoles.iter().find(|c| c.id == vtcon));
    match found {
        Some(c) if c.bound => {}
        Some(c) if now.has_framebuffer() => {
            if let Err(e) = set_console(host, &c.id, true, policy) {
                tracing::warn!("the text console did not come back: {e}");
            }
        }
        _ => tracing::warn!(
            "the text console ({name}) stays off: no frame buffer is registered (the card's \
             driver brings none); it comes back by itself when one is"
        ),
    }
    Ok(())
}

pub(super) fn release_framebuffer(
    host: &Host,
    device: &str,
    driver: &str,
    policy: &Policy,
) -> Result<(), StepError> {
    if console::platform_driver(host, device).as_deref() != Some(driver) {
        return Ok(());
    }
    console::bind_platform(host, "unbind", device, driver, policy.step_timeout)?;
    wait::until(
        &format!("{device} to leave {driver}"),
        policy.step_timeout,
        || console::platform_driver(host, device).is_none(),
    )?;
    Ok(())
}

/// Like [`bind_console`], a frame buffer that does not come back is a warning: the kernel
/// refuses it (ENODEV) once a real driver has had the card.
pub(super) fn restore_framebuffer(
    host: &Host,
    device: &str,
    driver: &str,
    policy: &Policy,
) -> Result<(), StepError> {
    if console::platform_driver(host, device).is_some() {
        return Ok(());
    }
    if !console::platform_exists(host, device) {
        tracing::warn!("the firmware frame buffer {device} is gone: nothing to bind again");
        return Ok(());
    }
    if let Err(e) = console::bind_platform(host, "bind", device, driver, policy.step_timeout) {
        tracing::warn!("the firmware frame buffer did not come back: {e}");
    }
    Ok(())
}

/// Starts the holder and waits until logind lists it. A host where it cannot be taken (no
/// logind, systemd-inhibit missing, a refusal) still lends the card, with a warning: the
/// inhibitor protects the guest, it is not what makes the handover work.
pub(super) fn inhibit_sleep(host: &Host, why: &str, policy: &Policy) -> Result<(), StepError> {
    if inhibit::holders(host).contains_key(why) {
        return Ok(());
    }
    let args = inhibit::args(why);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let program = inhibit::program(host);
    let pid = match host.effects().spawn(program, &args) {
        Ok(pid) => pid,
        Err(e) => {
            tracing::warn!("cannot start {program}: {e}; sleep stays allowed");
            return Ok(());
        }
    };
    // Its pidfd says when it exits; its cmdline would not: until exec has set up the new
    // program (which runs on after spawn returns), /proc/<pid>/cmdline reads empty.
    let holder = host.effects().process(pid).ok();
    let mut gone = false;
    let listed = wait::until(
        &format!("logind to list the inhibitor \"{why}\""),
        policy.step_timeout,
        || {
            gone = holder
                .as_ref()
                .is_none_or(|p| p.wait_exit(Duration::ZERO).unwrap_or(false));
            gone || listed(host, why, policy)
        },
    );
    match (listed, gone) {
        (Ok(()), false) => Ok(()),
        (Ok(()), true) => {
            tracing::warn!(
                "{} (pid {pid}) exited at once (logind refused the inhibitor, or is not \
                 running; its message is in the journal above): sleep stays allowed",
                program
            );
            Ok(())
        }
        (Err(timeout), _) => {
            end(host, why, policy)?;
            Err(timeout.into())
        }
    }
}

fn listed(host: &Host, why: &str, policy: &Policy) -> bool {
    host.effects()
        .run(
            inhibit::program(host),
            &["--list", "--no-pager", "--no-legend"],
            policy.step_timeout,
        )
        .is_ok_and(|out| out.success && out.stdout.contains(why))
}

/// Ends every holder giving `why`; one that is already gone is fine.
pub(super) fn end(host: &Host, why: &str, policy: &Policy) -> Result<(), StepError> {
    for pid in inhibit::holders(host).remove(why).unwrap_or_default() {
        let Ok(process) = host.effects().process(pid) else {
            continue;
        };
        // The pidfd pins the process: check it is still our holder, not a recycled pid.
        if !inhibit::holders(host)
            .get(why)
            .is_some_and(|p| p.contains(&pid))
        {
            continue;
        }
        let failed = |action: &'static str| {
            move |source| StepError::Process {
                action,
                pid,
                comm: inhibit::program(host).to_string(),
                source,
            }
        };
        process
            .signal(Signal::Term)
            .map_err(failed("cannot signal"))?;
        if !process
            .wait_exit(policy.step_timeout)
            .map_err(failed("cannot wait for"))?
        {
            return Err(StepError::InhibitorStuck {
                pid,
                why: why.to_string(),
                waited: policy.step_timeout,
            });
        }
    }
    Ok(())
}
