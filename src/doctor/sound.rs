//! The card's HDMI/DP audio: a sound server (PipeWire, PulseAudio) keeps its ALSA devices open,
//! and the unbind of its function would wait until it lets go, so a lend ends it.

use super::Check;
use crate::host::pci::{self, PciDevice};
use crate::host::Host;
use crate::snapshot::Snapshot;

/// Who has the ALSA devices of the card's functions open, one check for the card.
pub(super) fn check(host: &Host, s: &Snapshot, gpu: &PciDevice, name: String) -> Check {
    let cards: Vec<(String, u32)> = s
        .devices
        .values()
        .filter(|d| match gpu.iommu_group {
            Some(group) => d.iommu_group == Some(group),
            None => d.bdf.slot() == gpu.bdf.slot(),
        })
        .flat_map(|d| {
            cards_of(host, d.bdf)
                .into_iter()
                .map(move |n| (d.bdf.to_string(), n))
        })
        .collect();
    if cards.is_empty() {
        return Check::ok(name, "no sound card among its functions");
    }
    let mut users = Vec::new();
    for (pid, comm, node) in open_alsa_nodes(host) {
        let Some((bdf, _)) = cards.iter().find(|(_, n)| card_of_node(&node) == Some(*n)) else {
            continue;
        };
        let user = format!("{comm} (pid {pid}) has {node} of {bdf} open");
        if !users.contains(&user) {
            users.push(user);
        }
    }
    if users.is_empty() {
        return Check::ok(name, "no process has its sound devices open");
    }
    Check::warn(
        name,
        format!(
            "{}: a lend ends it (SIGTERM, then SIGKILL) before the unbind, which would wait for it",
            users.join("; ")
        ),
        "set the card's audio profile to Off in the sound settings (or keep the sound server off it) before starting the VM",
    )
}

/// The ALSA card numbers under a function (`sound/card1`).
fn cards_of(host: &Host, bdf: crate::bdf::Bdf) -> Vec<u32> {
    std::fs::read_dir(host.path(pci::device_path(bdf, "sound")))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("card")?
                .parse()
                .ok()
        })
        .collect()
}

/// `controlC1`, `pcmC1D3p`, `hwC1D0` belong to card 1.
fn card_of_node(node: &str) -> Option<u32> {
    let name = node.strip_prefix("/dev/snd/")?;
    let rest = ["controlC", "pcmC", "hwC", "midiC"]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Every open /dev/snd node with the process holding it. Processes we may not read are
/// skipped, as in the GPU holder scan.
fn open_alsa_nodes(host: &Host) -> Vec<(u32, String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(host.path("/proc"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let fds = std::fs::read_dir(host.path(format!("/proc/{pid}/fd")));
        for fd in fds.into_iter().flatten().flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy().into_owned();
            if target.starts_with("/dev/snd/") {
                let comm = host.read(format!("/proc/{pid}/comm")).unwrap_or_default();
                found.push((pid, comm, target));
            }
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn alsa_nodes_name_their_card() {
        assert_eq!(super::card_of_node("/dev/snd/controlC1"), Some(1));
        assert_eq!(super::card_of_node("/dev/snd/pcmC12D3p"), Some(12));
        assert_eq!(super::card_of_node("/dev/snd/hwC0D0"), Some(0));
        assert_eq!(super::card_of_node("/dev/snd/seq"), None);
        assert_eq!(super::card_of_node("/dev/dri/card1"), None);
    }
}
