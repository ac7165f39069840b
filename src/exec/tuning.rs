//! Carrying out the steps that change a function itself (its BAR size, its reset methods), and
//! what they leave in the record so the reattach can put them back.

use super::error::StepError;
use super::perform::unbind_from;
use crate::bdf::Bdf;
use crate::host::pci::{self, WriteError, VFIO_DRIVER};
use crate::host::{rebar, Host};
use crate::plan::Step;
use crate::policy::Policy;
use crate::record::Lent;
use crate::tuning::size_text;

/// Linux's ENOTSUPP (not ENOTSUP): what a resize answers when the bridge's setup is fixed.
const ENOTSUPP: i32 = 524;

pub(super) fn perform(host: &Host, step: &Step, policy: &Policy) -> Result<(), StepError> {
    match step {
        Step::ResizeBar {
            bdf,
            bar,
            from,
            to,
            required,
        } => match resize(host, *bdf, *bar, *to, policy) {
            Ok(()) => Ok(()),
            Err(reason) if *required => Err(StepError::Resize {
                bdf: *bdf,
                bar: *bar,
                now: size_text(rebar::size(host, *bdf, *bar).unwrap_or(*from)),
                wanted: size_text(*to),
                reason,
            }),
            Err(reason) => {
                tracing::warn!(
                    "BAR{bar} of {bdf} stays at {}: {reason}; the lend goes on at that size",
                    size_text(rebar::size(host, *bdf, *bar).unwrap_or(*from))
                );
                Ok(())
            }
        },
        Step::RestoreBar { bdf, bar, from, to } => {
            // A rollback after vfio-pci bound: the kernel resizes only a function without a
            // driver, and the override keeps any other driver off it meanwhile.
            let at = rebar::size(host, *bdf, *bar);
            if at != Some(*to) && pci::driver(host, *bdf).as_deref() == Some(VFIO_DRIVER) {
                unbind_from(host, *bdf, VFIO_DRIVER, policy)?;
            }
            if let Err(reason) = resize(host, *bdf, *bar, *to, policy) {
                tracing::warn!(
                    "BAR{bar} of {bdf} stays at {}, not the {} it had before the lend: {reason}; \
                     {bdf} goes back to its driver all the same",
                    size_text(rebar::size(host, *bdf, *bar).unwrap_or(*from)),
                    size_text(*to)
                );
            }
            Ok(())
        }
        Step::SetResetMethod { bdf, to, .. } => {
            let written = rebar::set_reset_methods(host, *bdf, to, policy.step_timeout)
                .map_err(|e| refusal(&e, "one of those methods on this function"));
            let now = rebar::reset_methods(host, *bdf).unwrap_or_default();
            let outcome = written.and_then(|()| {
                (now == *to)
                    .then_some(())
                    .ok_or_else(|| "the kernel took the write but lists other methods".into())
            });
            if let Err(reason) = outcome {
                tracing::warn!("{bdf} keeps reset_method \"{now}\", not \"{to}\": {reason}");
            }
            Ok(())
        }
        _ => unreachable!("not a tuning step: {step}"),
    }
}

/// Writes the size and reads it back: the kernel answers ENOSPC, or even success, and keeps the
/// old size when the bridge window above cannot take the new one. A BAR already at that size
/// (a rollback of a resize the kernel refused) is left alone.
fn resize(host: &Host, bdf: Bdf, bar: usize, to: u64, policy: &Policy) -> Result<(), String> {
    if rebar::size(host, bdf, bar) == Some(to) {
        return Ok(());
    }
    rebar::resize(host, bdf, bar, to, policy.step_timeout)
        .map_err(|e| refusal(&e, "that size for this BAR"))?;
    match rebar::size(host, bdf, bar) {
        Some(now) if now == to => Ok(()),
        Some(now) => Err(format!(
            "the kernel took the write but the BAR is {}",
            size_text(now)
        )),
        None => Err("its size is no longer in resource".into()),
    }
}

/// Why the kernel refused a write, in words; `what` is what EINVAL says it does not support.
fn refusal(e: &WriteError, what: &str) -> String {
    match e.errno() {
        Some(16) => "the kernel refused it (EBUSY): a driver holds the function, or it has \
                     virtual functions"
            .into(),
        Some(22) => format!("the kernel refused it (EINVAL): the card does not support {what}"),
        Some(28) => "the bridge window above the card cannot fit it (ENOSPC); the kernel kept \
                     the old size"
            .into(),
        Some(ENOTSUPP) => "the firmware fixed the bridge's setup, so the kernel cannot resize \
                           (ENOTSUPP)"
            .into(),
        Some(1) => "the kernel wants CAP_SYS_ADMIN for it (EPERM)".into(),
        _ => e.to_string(),
    }
}

/// What a completed tuning step leaves in the function's record: the first value it replaced,
/// kept until a step puts that value back (the reattach, or a rollback).
pub(super) fn note(lent: &mut Lent, step: &Step) {
    match step {
        Step::ResizeBar { bar, from, to, .. } | Step::RestoreBar { bar, from, to, .. } => {
            if lent.bars.get(bar) == Some(to) {
                lent.bars.remove(bar);
            } else {
                lent.bars.entry(*bar).or_insert(*from);
            }
        }
        Step::SetResetMethod { from, to, .. } => {
            if lent.reset_method.as_ref() == Some(to) {
                lent.reset_method = None;
            } else {
                lent.reset_method.get_or_insert_with(|| from.clone());
            }
        }
        _ => {}
    }
}
