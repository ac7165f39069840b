//! Each node of a kept-off card the rules cover (its DRM card and render nodes, its DDC/I²C
//! buses): whether udev applied the rule to it, whether the session's ACL is still on it, and
//! who still has it. Access is checked at open: a process that opened a node before the rule
//! keeps it until it closes it or ends.

use super::rules::SEAT;
use crate::bdf::Bdf;
use crate::host::holders::{self, Holder};
use crate::host::pci::{self, PciDevice};
use crate::host::{acl, udev, Host};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What a kept-off node is to the desktop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `card*`: what a display server draws on.
    Card,
    /// `renderD*`: what apps and compositors render with.
    Render,
    /// `i2c-*`: a DDC/CI bus (monitor brightness through ddcutil).
    Ddc,
}

/// One node of a kept-off card as the host has it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptNode {
    /// Its host path (`/dev/dri/renderD129`).
    pub node: String,
    /// What it is.
    pub kind: Kind,
    /// Its sysfs directory, what `udevadm trigger` takes.
    pub sys: String,
    /// The `ID_SEAT` udev stored at its last event; None without one (seat0).
    pub seat: Option<String>,
    /// Whether that is pitcrew's seat: the rule holds for it.
    pub in_effect: bool,
    /// Users its ACL still names (the session's grant, gone at its next event under the rule).
    pub acl_users: Vec<u32>,
    /// Processes that have it open or mapped now.
    pub holders: Vec<Holder>,
}

/// The card's nodes the rules cover, as udev, their ACLs and `holders` have them now.
pub fn of(
    host: &Host,
    devices: &BTreeMap<Bdf, PciDevice>,
    gpu: Bdf,
    holders: &[Holder],
) -> Vec<KeptNode> {
    let Some(device) = devices.get(&gpu) else {
        return Vec::new();
    };
    device
        .nodes
        .iter()
        .filter_map(|node| {
            let (kind, sys) = if let Some(name) = node.strip_prefix("/dev/dri/") {
                let kind = if name.starts_with("renderD") {
                    Kind::Render
                } else {
                    Kind::Card
                };
                (kind, pci::device_path(gpu, &format!("drm/{name}")))
            } else {
                let name = node.strip_prefix("/dev/")?;
                name.starts_with("i2c-")
                    .then(|| (Kind::Ddc, format!("/sys/class/i2c-dev/{name}")))?
            };
            let seat = udev::char_id(host, &sys)
                .and_then(|id| udev::properties(host, &id))
                .and_then(|p| p.get("ID_SEAT").cloned());
            Some(KeptNode {
                in_effect: seat.as_deref() == Some(SEAT),
                seat,
                acl_users: acl::users(host, node),
                holders: holders::holding(holders, &BTreeSet::from([node.clone()])),
                node: node.clone(),
                kind,
                sys,
            })
        })
        .collect()
}

/// Whether `h` is Plasma's power daemon, which opens the card's DDC buses through libddcutil
/// (its comm is cut to 15 characters: `org_kde_powerde`).
pub fn is_powerdevil(h: &Holder) -> bool {
    let program = h.cmdline.split(' ').next().unwrap_or_default();
    ["powerdevil", "org_kde_powerdevil"].contains(&program.rsplit('/').next().unwrap_or_default())
        || ["powerdevil", "org_kde_powerde"].contains(&h.comm.as_str())
}

/// What keeps powerdevil off the card's DDC buses.
pub fn powerdevil_fix(gpu: Bdf, kept_off: bool) -> String {
    let rule = if kept_off {
        "or log out and in again: under the keep-off rule it no longer gets the buses".to_string()
    } else {
        format!("or run `pitcrew keep-off {gpu}` and log out and in again")
    };
    format!(
        "set POWERDEVIL_NO_DDCUTIL=1 in the Plasma session's environment (a script in \
         ~/.config/plasma-workspace/env/ that exports it) and log out and in again, {rule}"
    )
}
