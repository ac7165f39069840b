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

/// How a reservation request went, as the helper reports it on its first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Nobody had reserved the card: the name is pitcrew's.
    Free,
    /// `app` released the card, and the bus handed the name straight to pitcrew.
    Released { app: String },
    /// Another pitcrew helper holds the reservation already (a sound server reopened a node
    /// after it had let go): there is nothing to ask anyone.
    AlreadyOurs,
    /// `app` refused to release the card.
    Refused { app: String },
    /// The request went nowhere: no answer, no bus, no helper.
    Failed { why: String },
}

impl Answer {
    /// The helper's first line.
    pub fn line(&self) -> String {
        match self {
            Answer::Free => "free".into(),
            Answer::Released { app } => format!("released {app}"),
            Answer::AlreadyOurs => "ours".into(),
            Answer::Refused { app } => format!("refused {app}"),
            Answer::Failed { why } => format!("failed {why}"),
        }
    }

    /// Reads the helper's first line back; anything else is a failure naming what it said.
    pub fn parse(line: &str) -> Answer {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.to_string();
        match word {
            "free" => Answer::Free,
            "ours" => Answer::AlreadyOurs,
            "released" => Answer::Released { app: rest },
            "refused" => Answer::Refused { app: rest },
            "failed" => Answer::Failed { why: rest },
            _ => Answer::Failed {
                why: format!("the helper said {line:?}"),
            },
        }
    }

    /// True when the card is pitcrew's to keep closed: whoever holds a node of it now holds
    /// it against the reservation.
    pub fn is_ours(&self) -> bool {
        matches!(
            self,
            Answer::Free | Answer::Released { .. } | Answer::AlreadyOurs
        )
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Free => write!(
                f,
                "nobody had reserved the card, so its reservation is pitcrew's"
            ),
            Answer::Released { app } => write!(
                f,
                "{app} released the card through the reservation, which is now pitcrew's"
            ),
            Answer::AlreadyOurs => write!(f, "pitcrew holds its reservation already"),
            Answer::Refused { app } => write!(f, "{app} refused to release the card"),
            Answer::Failed { why } => write!(f, "the request to release the card failed: {why}"),
        }
    }
}

/// Who has a node of one of these ALSA cards open; unreadable /proc means none seen.
pub fn holders(host: &Host, cards: &[u32]) -> Vec<Holder> {
    holders::scan_for(host, |node| cards.iter().any(|c| is_node_of(*c, node))).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{is_node_of, Answer};

    #[test]
    fn the_helpers_answer_survives_its_line() {
        for answer in [
            Answer::Free,
            Answer::AlreadyOurs,
            Answer::Released {
                app: "WirePlumber".into(),
            },
            Answer::Refused {
                app: "PulseAudio".into(),
            },
            Answer::Failed {
                why: "no answer within 10s".into(),
            },
        ] {
            assert_eq!(Answer::parse(&answer.line()), answer);
        }
        let garbled = Answer::parse("ok something older");
        assert_eq!(
            garbled,
            Answer::Failed {
                why: "the helper said \"ok something older\"".into()
            }
        );
        assert!(!garbled.is_ours());
    }

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
