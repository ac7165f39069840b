//! ALSA sound cards of PCI functions (a GPU's HDMI/DP audio) and their device nodes.

use super::holders::{self, Holder};
use super::Host;
use crate::bdf::Bdf;
use crate::host::pci;
use std::time::Duration;

/// The ALSA card numbers of a function's sound cards (`/sys/bus/pci/devices/<bdf>/sound/cardN`);
/// empty while it has no sound driver.
pub fn cards(host: &Host, bdf: Bdf) -> Vec<u32> {
    let mut cards: Vec<u32> = std::fs::read_dir(host.path(pci::device_path(bdf, "sound")))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("card")?.parse().ok())
        .collect();
    cards.sort_unstable();
    cards
}

/// True for a node of ALSA card `card`: its control, PCM, hwdep and raw MIDI devices.
pub fn is_node_of(card: u32, path: &str) -> bool {
    let Some(name) = path.strip_prefix("/dev/snd/") else {
        return false;
    };
    if name == format!("controlC{card}") {
        return true;
    }
    ["pcmC", "hwC", "midiC"].iter().any(|prefix| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.split_once('D'))
            .is_some_and(|(n, _)| n == card.to_string())
    })
}

/// What the sound card reservation's helper needs: whom to run as, where the session bus is,
/// which card, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveRequest {
    /// The sound server's user.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
    /// Its session bus, as in DBUS_SESSION_BUS_ADDRESS.
    pub bus: String,
    /// The ALSA card number.
    pub card: u32,
    /// The function whose arrival on vfio-pci ends the reservation.
    pub until_vfio: Bdf,
    /// The longest the helper holds the reservation (a handover that failed never gets there).
    pub hold_at_most: Duration,
}

impl ReserveRequest {
    /// The helper's command line after the program name.
    pub fn args(&self) -> Vec<String> {
        vec![
            "reserve-audio".into(),
            "--card".into(),
            self.card.to_string(),
            "--bus".into(),
            self.bus.clone(),
            "--until-vfio".into(),
            self.until_vfio.to_string(),
            "--hold-at-most".into(),
            self.hold_at_most.as_secs().to_string(),
        ]
    }
}

/// Who has a node of one of these ALSA cards open; unreadable /proc means none seen.
pub fn holders(host: &Host, cards: &[u32]) -> Vec<Holder> {
    holders::scan_for(host, |node| cards.iter().any(|c| is_node_of(*c, node))).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::is_node_of;

    #[test]
    fn nodes_of_one_card_only() {
        for node in ["/dev/snd/controlC1", "/dev/snd/pcmC1D3p", "/dev/snd/hwC1D0"] {
            assert!(is_node_of(1, node), "{node}");
        }
        for node in [
            "/dev/snd/controlC10",
            "/dev/snd/pcmC10D3p",
            "/dev/snd/seq",
            "/dev/dri/card1",
        ] {
            assert!(!is_node_of(1, node), "{node}");
        }
    }
}
