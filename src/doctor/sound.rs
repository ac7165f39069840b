//! The card's HDMI/DP audio: a sound server (PipeWire, PulseAudio) keeps its ALSA devices open;
//! a lend asks it to let go through the device reservation protocol, which PulseAudio only half
//! honours.

use super::Check;
use crate::bdf::Bdf;
use crate::host::pci::PciDevice;
use crate::host::{sound, Host};
use crate::snapshot::Snapshot;

/// Who has the ALSA devices of the card's functions open, one check for the card.
pub(super) fn check(host: &Host, s: &Snapshot, gpu: &PciDevice, name: String) -> Check {
    let cards: Vec<(Bdf, u32)> = s
        .devices
        .values()
        .filter(|d| match gpu.iommu_group {
            Some(group) => d.iommu_group == Some(group),
            None => d.bdf.slot() == gpu.bdf.slot(),
        })
        .flat_map(|d| {
            sound::cards(host, d.bdf)
                .into_iter()
                .map(move |n| (d.bdf, n))
        })
        .collect();
    if cards.is_empty() {
        return Check::ok(name, "no sound card among its functions");
    }
    let numbers: Vec<u32> = cards.iter().map(|(_, n)| *n).collect();
    let mut users = Vec::new();
    for holder in sound::holders(host, &numbers) {
        for node in &holder.nodes {
            let Some((bdf, _)) = cards.iter().find(|(_, n)| sound::is_node_of(*n, node)) else {
                continue;
            };
            users.push(format!(
                "{} (pid {}) has {node} of {bdf} open",
                holder.comm, holder.pid
            ));
        }
    }
    if users.is_empty() {
        return Check::ok(name, "no process has its sound devices open");
    }
    Check::warn(
        name,
        format!(
            "{}: a lend asks it to release the card (org.freedesktop.ReserveDevice1); one that \
             does not let go (PulseAudio keeps its control device open) is ended (SIGTERM, then \
             SIGKILL) before the unbind, which would wait for it",
            users.join("; ")
        ),
        format!(
            "`pitcrew keep-off {}` keeps the sound server off the card from its next start",
            gpu.bdf
        ),
    )
}
