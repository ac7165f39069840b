//! Whether a kept-off card is really left alone now: what udev's database says about its nodes,
//! and who still has them open.

use super::nodes::KeptNode;
use super::rules::{self, Entries, Entry};
use crate::bdf::Bdf;
use crate::host::holders::Holder;
use crate::host::pci::{self, PciDevice};
use crate::host::{sound, udev, Host};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io;

/// Where a part of the rule stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// udev applied the rule at the device's last event: the desktop skips it.
    InEffect,
    /// The rule is written but the device's last event predates it.
    Pending,
    /// The card has no such device now (lent to a VM, or unbound): the rule applies when it
    /// comes back.
    NoDevice,
}

/// One kept-off GPU as the host has it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct State {
    /// What the rules file says of it.
    #[serde(flatten)]
    pub entry: Entry,
    /// Whether its DRM nodes are on the other seat now.
    pub drm: Effect,
    /// `None` when the card's sound is left to the host (`--keep-sound`).
    pub sound: Option<Effect>,
    /// Processes with one of its audio functions' sound card nodes open.
    pub sound_holders: Vec<Holder>,
    /// Each of its nodes the rules cover: seat, ACL, holders.
    pub nodes: Vec<KeptNode>,
}

/// The rules file's entries; none when there is no file.
pub fn load(host: &Host) -> Result<Entries, LoadError> {
    let path = host.path(rules::RULES);
    match std::fs::read_to_string(&path) {
        Ok(text) => rules::parse(&text).map_err(|e| LoadError::Parse {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Entries::new()),
        Err(source) => Err(LoadError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {reason}; keep-off never overwrites it: move it away or fix it")]
    Parse { path: String, reason: String },
    #[error("cannot read {path}: {cause}", cause = crate::untrusted::cause(std::path::Path::new(.path), .source))]
    Io { path: String, source: io::Error },
}

/// Every kept-off GPU with what udev and the processes (`holders`, of every tracked node) make
/// of it now.
pub fn read(
    host: &Host,
    devices: &BTreeMap<Bdf, PciDevice>,
    holders: &[Holder],
) -> Result<BTreeMap<Bdf, State>, LoadError> {
    Ok(load(host)?
        .into_values()
        .map(|entry| (entry.gpu, of(host, devices, holders, entry)))
        .collect())
}

fn of(host: &Host, devices: &BTreeMap<Bdf, PciDevice>, holders: &[Holder], entry: Entry) -> State {
    let cards = drm_cards(devices, entry.gpu);
    let drm = effect(cards.iter().map(|card| {
        udev::char_id(host, &pci::device_path(entry.gpu, &format!("drm/{card}")))
            .and_then(|id| udev::properties(host, &id))
            .is_some_and(|p| p.get("ID_SEAT").map(String::as_str) == Some(rules::SEAT))
    }));
    let sound_cards: Vec<u32> = entry
        .audio
        .iter()
        .flat_map(|f| sound::cards(host, *f))
        .collect();
    let sound = entry.sound_off.then(|| {
        effect(sound_cards.iter().map(|card| {
            udev::properties(host, &format!("+sound:card{card}"))
                .is_some_and(|p| p.get("ACP_IGNORE").map(String::as_str) == Some("1"))
        }))
    });
    let sound_holders = if sound_cards.is_empty() {
        Vec::new()
    } else {
        sound::holders(host, &sound_cards)
    };
    State {
        nodes: super::nodes::of(host, devices, entry.gpu, holders),
        entry,
        drm,
        sound,
        sound_holders,
    }
}

/// The function's DRM card nodes (`card1`), without render nodes.
pub fn drm_cards(devices: &BTreeMap<Bdf, PciDevice>, gpu: Bdf) -> Vec<String> {
    devices
        .get(&gpu)
        .map(|d| {
            d.nodes
                .iter()
                .filter_map(|n| n.strip_prefix("/dev/dri/"))
                .filter(|n| n.starts_with("card"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// In effect only when every device is; no device at all: nothing to say yet.
fn effect(mut in_effect: impl ExactSizeIterator<Item = bool>) -> Effect {
    if in_effect.len() == 0 {
        Effect::NoDevice
    } else if in_effect.all(|e| e) {
        Effect::InEffect
    } else {
        Effect::Pending
    }
}
