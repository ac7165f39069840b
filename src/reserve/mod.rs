//! A sound server lets go of a GPU's HDMI/DP sound card through the device reservation protocol
//! instead of being ended, or of the unbind waiting on its open files.
//!
//! The reservation lives on the session bus of the user who runs the sound server, so the
//! D-Bus side runs in a helper process as that user ([`helper`]), which keeps the name until the
//! function is on vfio-pci: a sound server (WirePlumber) keeps a card closed while another peer
//! owns its reservation.

pub mod helper;

use crate::bdf::Bdf;
use crate::host::holders::Holder;
use crate::host::sound::{self, ReserveRequest};
use crate::host::Host;
use crate::policy::Policy;
use crate::wait;
use std::collections::BTreeSet;
use std::time::Duration;

/// WirePlumber closes the card's control at once; the PCM nodes live in the pipewire daemon and
/// close a moment later.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Asks whoever holds ALSA card `card` (of function `bdf`) to release it, then waits until none
/// of its nodes is open. Never fails the handover: where a holder does not let go (PulseAudio
/// keeps its control device open, a player without a reservation), it says so and the steps
/// that follow deal with the holder.
pub fn release(host: &Host, bdf: Bdf, card: u32, policy: &Policy) {
    let holders = sound::holders(host, &[card]);
    if holders.is_empty() {
        return;
    }
    let mut users: BTreeSet<(u32, u32)> = BTreeSet::new();
    for h in &holders {
        if let Some(ids) = ids(host, h.pid) {
            users.insert(ids);
        }
    }
    for (uid, gid) in users {
        let Some(bus) = holders.iter().find_map(|h| session_bus(host, h.pid, uid)) else {
            tracing::warn!("ALSA card {card} ({bdf}): no session bus for uid {uid}");
            continue;
        };
        let request = ReserveRequest {
            uid,
            gid,
            bus,
            card,
            until_vfio: bdf,
            hold_at_most: policy.step_timeout * 4,
        };
        match host.effects().reserve_audio(&request, policy.step_timeout) {
            Ok(line) => match line.strip_prefix("ok ") {
                Some(how) => tracing::info!("ALSA card {card} ({bdf}): {how}"),
                None => tracing::warn!(
                    "ALSA card {card} ({bdf}): the reservation failed: {}",
                    line.trim_start_matches("err ")
                ),
            },
            Err(e) => tracing::warn!("ALSA card {card} ({bdf}): cannot start the helper: {e}"),
        }
    }
    let closed = wait::until(
        &format!("every node of ALSA card {card} to close"),
        CLOSE_WAIT.min(policy.step_timeout),
        || sound::holders(host, &[card]).is_empty(),
    );
    if closed.is_err() {
        let still = sound::holders(host, &[card]);
        tracing::warn!(
            "ALSA card {card} ({bdf}) is still open in {} after the reservation: releasing it \
             through org.freedesktop.ReserveDevice1 is not enough there (PulseAudio closes only \
             its PCM and keeps the control device open), so it is handled as any other holder",
            describe(&still)
        );
    }
}

fn describe(holders: &[Holder]) -> String {
    holders
        .iter()
        .map(|h| {
            format!(
                "{} (pid {}: {})",
                h.comm,
                h.pid,
                h.nodes.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The real user and group ids of a process (`Uid:`/`Gid:` in /proc/<pid>/status).
fn ids(host: &Host, pid: u32) -> Option<(u32, u32)> {
    let status = host.read(format!("/proc/{pid}/status")).ok()?;
    let first = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((first("Uid:")?, first("Gid:")?))
}

/// The process's own DBUS_SESSION_BUS_ADDRESS, else the user's bus of systemd's user manager.
fn session_bus(host: &Host, pid: u32, uid: u32) -> Option<String> {
    if let Ok(environ) = std::fs::read(host.path(format!("/proc/{pid}/environ"))) {
        let found = environ
            .split(|b| *b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .find_map(|kv| kv.strip_prefix("DBUS_SESSION_BUS_ADDRESS="));
        if let Some(address) = found {
            return Some(address.to_string());
        }
    }
    let socket = format!("/run/user/{uid}/bus");
    host.path(&socket)
        .exists()
        .then(|| format!("unix:path={socket}"))
}
