//! The steps for a card that carries the kernel console or the firmware's frame buffer, and the
//! sleep inhibitor held while a card is lent.

use super::Step;
use crate::bdf::Bdf;
use crate::host::console::FirmwareFb;
use crate::host::inhibit;
use crate::snapshot::Snapshot;
use std::collections::{BTreeMap, BTreeSet};

/// A bound firmware frame buffer whose memory lies in a BAR of one of `functions`.
fn firmware_on<'a>(s: &'a Snapshot, functions: &BTreeSet<Bdf>) -> Vec<(&'a FirmwareFb, Bdf)> {
    s.console
        .firmware
        .iter()
        .filter(|fb| fb.driver.is_some())
        .filter_map(|fb| {
            let bdf = functions.iter().find(|bdf| {
                s.devices[bdf]
                    .bars
                    .iter()
                    .any(|bar| fb.claims.iter().any(|claim| claim.overlaps(bar)))
            })?;
            Some((fb, *bdf))
        })
        .collect()
}

/// The frame buffer devices (`fb0`) on the card: its driver's own and the firmware's.
pub(super) fn framebuffer_nodes(s: &Snapshot, functions: &BTreeSet<Bdf>) -> BTreeSet<String> {
    let firmware: Vec<&str> = firmware_on(s, functions)
        .into_iter()
        .map(|(fb, _)| fb.device.as_str())
        .collect();
    let addresses: Vec<String> = functions.iter().map(Bdf::to_string).collect();
    s.console
        .framebuffers
        .iter()
        .filter(|fb| {
            fb.device
                .as_deref()
                .is_some_and(|d| firmware.contains(&d) || addresses.iter().any(|a| a == d))
        })
        .map(|fb| format!("/dev/{}", fb.node))
        .collect()
}

/// Whether the text console is drawn on the card: fbcon puts it on the primary display's frame
/// buffer (the firmware's, or that of the boot VGA device), else on the first one registered.
fn carries_console(s: &Snapshot, functions: &BTreeSet<Bdf>) -> bool {
    if !firmware_on(s, functions).is_empty() {
        return true;
    }
    let first = s
        .console
        .framebuffers
        .iter()
        .min_by_key(|fb| fb.node[2..].parse::<u32>().unwrap_or(u32::MAX));
    s.console.framebuffers.iter().any(|fb| {
        let card = functions
            .iter()
            .find(|bdf| fb.device.as_deref() == Some(bdf.to_string().as_str()));
        card.is_some_and(|bdf| s.devices[bdf].boot_vga || Some(fb) == first)
    })
}

/// Before the card leaves its driver: when the console is on it, the console leaves every frame
/// buffer (fbcon is one driver for all of them); then a firmware frame buffer in its memory lets
/// go of it. A card without the console gets none of this.
pub(super) fn release(s: &Snapshot, functions: &BTreeSet<Bdf>) -> Vec<Step> {
    let firmware = firmware_on(s, functions);
    let console = carries_console(s, functions);
    let consoles = s
        .console
        .vtconsoles
        .iter()
        .filter(|c| console && c.bound && c.is_framebuffer())
        .map(|c| Step::UnbindConsole {
            vtcon: c.id.clone(),
            name: c.name.clone(),
        });
    let framebuffers = firmware
        .into_iter()
        .map(|(fb, bdf)| Step::ReleaseFramebuffer {
            device: fb.device.clone(),
            driver: fb.driver.clone().expect("only bound ones"),
            bdf,
        });
    consoles.chain(framebuffers).collect()
}

/// After the card is home: what the detach unbound, in reverse. The firmware frame buffer only
/// when no driver of the card's own took it back (drivers remove it for good when they load, and
/// binding it then fails); the console always, since only the run can tell whether the kernel
/// put it back itself (fbcon takes over a frame buffer registered while it has none).
pub(super) fn restore(
    s: &Snapshot,
    functions: &BTreeSet<Bdf>,
    originals: &BTreeMap<Bdf, Option<String>>,
) -> Vec<Step> {
    let ours = |covered: &[Bdf]| covered.iter().any(|f| functions.contains(f));
    let framebuffers = s
        .record
        .released_framebuffers
        .iter()
        .rev()
        .filter(|r| ours(&r.functions))
        .filter(|r| originals.get(&r.bdf).is_some_and(Option::is_none))
        .filter(|r| {
            s.console
                .firmware
                .iter()
                .any(|fb| fb.device == r.device && fb.driver.is_none())
        })
        .map(|r| Step::RestoreFramebuffer {
            device: r.device.clone(),
            driver: r.driver.clone(),
            bdf: r.bdf,
        });
    let consoles = s
        .record
        .unbound_consoles
        .iter()
        .rev()
        .filter(|r| ours(&r.functions))
        .filter(|r| {
            !s.console
                .vtconsoles
                .iter()
                .any(|c| c.name == r.name && c.bound)
        })
        .map(|r| Step::BindConsole {
            vtcon: r.vtcon.clone(),
            name: r.name.clone(),
        });
    framebuffers.chain(consoles).collect()
}

/// The detach's first step: the inhibitor for the VM the card goes to, unless one is held.
pub(super) fn inhibit(s: &Snapshot, owner: Option<&str>, wanted: bool) -> Option<Step> {
    let why = inhibit::why(owner);
    (wanted && s.logind && !s.inhibitors.contains_key(&why)).then_some(Step::InhibitSleep { why })
}

/// The reattach's last steps: the inhibitors of the VMs left with no lent function.
pub(super) fn uninhibit(s: &Snapshot, functions: &BTreeSet<Bdf>) -> Vec<Step> {
    let owners: BTreeSet<Option<&str>> = functions
        .iter()
        .filter_map(|bdf| s.record.lent.get(bdf))
        .map(|lent| lent.owner.as_deref())
        .collect();
    owners
        .into_iter()
        .filter(|owner| {
            !s.record
                .lent
                .iter()
                .any(|(bdf, lent)| !functions.contains(bdf) && lent.owner.as_deref() == *owner)
        })
        .map(inhibit::why)
        .filter(|why| s.inhibitors.contains_key(why))
        .map(|why| Step::ReleaseInhibitor { why })
        .collect()
}
