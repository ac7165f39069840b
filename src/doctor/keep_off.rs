//! Whether `pitcrew keep-off` keeps the desktop off a card, node by node (seat, ACL, who still
//! has it), and Plasma's powerdevil on the card's DDC buses.

use super::Check;
use crate::host::keepoff::{self, Effect, KeptNode, NodeKind, RULES};
use crate::host::pci::PciDevice;
use crate::plan::{self, Step};
use crate::snapshot::Snapshot;

/// The card's keep-off line, then one line per covered node that is not kept off yet, still
/// named by an ACL, or still held.
pub(super) fn checks(
    s: &Snapshot,
    gpu: &PciDevice,
    lend: Option<&plan::Plan>,
    name: &str,
) -> Vec<Check> {
    let address = gpu.bdf.to_string();
    let stops_desktop = lend.is_some_and(|p| {
        p.steps.iter().any(|step| {
            matches!(step, Step::StopUnit { unit, .. } if s.display_manager.as_ref() == Some(unit))
        })
    });
    let kept = s.keep_off.get(&gpu.bdf);
    let card = match (kept, stops_desktop) {
        (Some(kept), true) if kept.drm == Effect::Pending => Check::warn(
            name,
            format!("in {RULES}, not in effect yet: the desktop still has the card open"),
            "nothing to do: the desktop lets go of it at its next lend (the last one that ends the sessions) or the next boot",
        ),
        (Some(_), _) => Check::ok(name, format!("kept off the desktop by {RULES}")),
        (None, true) => Check::warn(
            name,
            "not kept off: the desktop uses the card, so each lend ends its sessions",
            format!(
                "if the host has another display, run `pitcrew keep-off {address}` so the desktop leaves this card alone"
            ),
        ),
        (None, false) => Check::ok(name, format!("not in {RULES}")),
    };
    let mut checks = vec![card];
    for node in kept.map(|k| k.nodes.as_slice()).unwrap_or_default() {
        checks.extend(node_check(node, &format!("{name} {}", node.node)));
    }
    checks
}

/// What still lets the session at one node, with the fix; None when nothing does.
fn node_check(node: &KeptNode, name: &str) -> Option<Check> {
    let mut found = Vec::new();
    let mut fixes = Vec::new();
    if !node.in_effect {
        found.push(format!(
            "udev still has it on {}",
            node.seat.as_deref().unwrap_or("seat0")
        ));
    }
    if !node.acl_users.is_empty() {
        let uids: Vec<String> = node.acl_users.iter().map(|u| format!("uid {u}")).collect();
        found.push(format!("its ACL still lets {} open it", uids.join(", ")));
    }
    if !found.is_empty() {
        let caveat = if node.kind == NodeKind::Card {
            " once no display server has the card open (Xorg crashes on a trigger of a card it \
             uses), or leave it to the card's next lend or the next boot"
        } else {
            ""
        };
        fixes.push(format!(
            "`udevadm trigger --action=change {}` applies the rule (and drops the ACL){caveat}",
            node.sys
        ));
    }
    if !node.holders.is_empty() {
        let holders: Vec<String> = node
            .holders
            .iter()
            .map(|h| {
                let how = if h.mapped.is_empty() {
                    "open"
                } else {
                    "mapped"
                };
                format!("{} (pid {}) has it {how}", h.comm, h.pid)
            })
            .collect();
        found.push(holders.join(", "));
        fixes.push(
            "a process keeps what it opened before the rule until it ends (access is checked at \
             open): close it, or log out and in again for the session's own; the next lend ends what still holds it"
                .to_string(),
        );
    }
    (!found.is_empty()).then(|| Check::warn(name, found.join("; "), fixes.join("; ")))
}

/// Plasma's powerdevil with one of the card's DDC/I²C buses open: a lend ends it.
pub(super) fn ddc(s: &Snapshot, gpu: &PciDevice, name: String) -> Option<Check> {
    let buses: std::collections::BTreeSet<String> = gpu
        .nodes
        .iter()
        .filter(|n| n.starts_with("/dev/i2c-"))
        .cloned()
        .collect();
    let holding: Vec<String> = crate::host::holders::holding(&s.holders, &buses)
        .iter()
        .filter(|h| keepoff::is_powerdevil(h))
        .map(|h| {
            format!(
                "{} (pid {}) has {}",
                h.comm,
                h.pid,
                crate::host::holders::listed(&h.nodes)
            )
        })
        .collect();
    (!holding.is_empty()).then(|| {
        Check::warn(
            name,
            format!(
                "{}: Plasma's powerdevil drives the monitor's brightness through the card's \
                 DDC/CI bus, and a lend ends it",
                holding.join(", ")
            ),
            keepoff::powerdevil_fix(gpu.bdf, s.keep_off.contains_key(&gpu.bdf)),
        )
    })
}
