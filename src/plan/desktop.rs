//! The desktop among a card's holders: which processes draw it, and what a lend does when all
//! it holds of the card is a render node.
//!
//! A compositor that renders with a card without drawing on it holds only the card's render
//! node: KWin's GpuManager opens every render node it may, a headless mutter every one not
//! tagged `mutter-device-ignore`. Neither lets go of one while it exists: KWin drops a render
//! device on udev's `remove` event only (src/core/gpumanager.cpp, `handleUdevEvent`), mutter
//! a DRM device likewise (src/backends/meta-udev.c, `on_drm_uevent`: a `change` only rescans
//! outputs), and neither offers a D-Bus call to release one. Ending the whole session for a
//! node it does not draw with is not a lend's price: the plan fails, saying how to keep the
//! desktop off the card, unless the config says to stop the display manager always.

use super::PlanError;
use crate::bdf::Bdf;
use crate::host::holders::Holder;
use crate::snapshot::Snapshot;
use std::collections::BTreeSet;

/// Processes whose names say they draw the desktop: with a display manager, they are its.
const DISPLAY_SERVERS: &[&str] = &[
    "Xorg",
    "X",
    "Xwayland",
    "gnome-shell",
    "kwin_wayland",
    "kwin_x11",
    "sway",
    "weston",
    "Hyprland",
    "gamescope",
    "cage",
    "labwc",
    "wayfire",
    "mutter",
    "cosmic-comp",
];

/// Whether `h` draws the desktop: a display server by name, or anything of the display
/// manager's own (system) unit.
pub(super) fn is_desktop(h: &Holder, display_manager: Option<&str>) -> bool {
    display_manager.is_some_and(|dm| h.in_system_unit(dm))
        || DISPLAY_SERVERS.contains(&h.comm.as_str())
}

fn is_card(node: &str) -> bool {
    node.starts_with("/dev/dri/card")
}

fn is_render(node: &str) -> bool {
    node.starts_with("/dev/dri/renderD")
}

/// Fails when the desktop holds render nodes among `nodes` (those of the functions moving) and
/// none of their card nodes, naming each such process, its nodes and the fix.
pub(super) fn refuse_render_only(
    s: &Snapshot,
    holders: &[&Holder],
    nodes: &BTreeSet<String>,
    moving: &[Bdf],
) -> Result<(), PlanError> {
    let desktop: Vec<&Holder> = desktop_among(s, holders).collect();
    let held = |h: &Holder| -> Vec<String> { h.nodes.intersection(nodes).cloned().collect() };
    if desktop.iter().any(|h| held(h).iter().any(|n| is_card(n))) {
        return Ok(());
    }
    let rendering: Vec<String> = desktop
        .iter()
        .filter_map(|h| {
            let render: BTreeSet<String> = held(h).into_iter().filter(|n| is_render(n)).collect();
            (!render.is_empty()).then(|| describe(h, &render))
        })
        .collect();
    if rendering.is_empty() {
        return Ok(());
    }
    let gpu = first_or_any(moving, |bdf| {
        s.own_nodes(bdf)
            .iter()
            .any(|n| is_render(n) && nodes.contains(n))
    });
    Err(PlanError::DesktopRenders {
        gpu,
        holders: rendering.join(", "),
        fix: fix(s, gpu),
    })
}

/// With `display_manager = "never"`, fails when a process of the desktop holds any of `nodes`:
/// ending Xorg or the compositor ends the session as surely as stopping the display manager.
pub(super) fn refuse_never(
    s: &Snapshot,
    holders: &[&Holder],
    nodes: &BTreeSet<String>,
    moving: &[Bdf],
) -> Result<(), PlanError> {
    let desktop: Vec<String> = desktop_among(s, holders)
        .map(|h| describe(h, &h.nodes.intersection(nodes).cloned().collect()))
        .collect();
    if desktop.is_empty() {
        return Ok(());
    }
    let gpu = first_or_any(moving, |bdf| s.devices[&bdf].is_display());
    Err(PlanError::DesktopKept {
        gpu,
        holders: desktop.join(", "),
    })
}

fn desktop_among<'a>(
    s: &'a Snapshot,
    holders: &'a [&'a Holder],
) -> impl Iterator<Item = &'a Holder> {
    holders
        .iter()
        .copied()
        .filter(|h| is_desktop(h, s.display_manager.as_deref()))
}

/// The function an error names: the first moving one that `fits`, else the first moving one.
fn first_or_any(moving: &[Bdf], fits: impl Fn(Bdf) -> bool) -> Bdf {
    moving
        .iter()
        .copied()
        .find(|bdf| fits(*bdf))
        .or_else(|| moving.first().copied())
        .expect("a held node of the moving functions")
}

/// `Xorg (pid 1200) holding /dev/dri/card1`: a holder and the nodes it has of the card.
fn describe(h: &Holder, held: &BTreeSet<String>) -> String {
    let mapped: BTreeSet<String> = h.mapped.intersection(held).cloned().collect();
    format!(
        "{} (pid {}) {}",
        h.comm,
        h.pid,
        crate::host::holders::how_held(held, &mapped)
    )
}

/// What makes the compositor leave the card alone from its next start.
fn fix(s: &Snapshot, gpu: Bdf) -> String {
    const NEXT_START: &str = "then log out and in again (or restart the compositor)";
    const STRICT_WHEN: &str = "render nodes open to everyone (mode 0666) or a user in the \
                               `render` group need `--strict`";
    match s.keep_off.get(&gpu) {
        None => format!("run `pitcrew keep-off {gpu}` ({STRICT_WHEN}), {NEXT_START}"),
        Some(kept) if !kept.entry.strict => format!(
            "it opened the node before `pitcrew keep-off` took it from the session (access is \
             checked at open): log out and in again (or restart the compositor); if it opens \
             it again, {STRICT_WHEN}: run `pitcrew keep-off --strict {gpu}`"
        ),
        Some(_) => "it opened the node before `pitcrew keep-off --strict` made it root's \
                    (access is checked at open): log out and in again (or restart the compositor)"
            .to_string(),
    }
}
