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
use crate::host::sound::{self, Answer, ReserveRequest};
use crate::host::Host;
use crate::policy::Policy;
use crate::wait;
use std::collections::BTreeSet;
use std::time::Duration;

/// WirePlumber closes the card's control at once; the PCM nodes live in the pipewire daemon and
/// close a moment later.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Which way a release went wrong, for a card still open past the deadline.
fn why_kept(answers: &[Answer]) -> String {
    let refused = answers.iter().find_map(|a| match a {
        Answer::Refused { app } => Some(format!("after {app} refused to release it")),
        _ => None,
    });
    let failed = answers.iter().find_map(|a| match a {
        Answer::Failed { .. } => Some("after the request to release it failed".to_string()),
        _ => None,
    });
    refused.or(failed).unwrap_or_else(|| {
        "although its reservation is pitcrew's: the release was ignored or left a node open \
         (PulseAudio keeps its control device)"
            .to_string()
    })
}

/// Asks whoever holds ALSA card `card` (of function `bdf`) to release it, then gives the sound
/// server the time its teardown needs: polls, with a deadline, until none of the card's nodes
/// is open. Never fails the handover: where a holder does not let go (PulseAudio keeps its
/// control device open, a player without a reservation), it says so and the steps that follow
/// deal with the holder.
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
    let mut answers = Vec::new();
    for (uid, gid) in users {
        let Some(bus) = holders.iter().find_map(|h| session_bus(host, h.pid, uid)) else {
            let why = format!("no session bus for uid {uid}");
            tracing::warn!("ALSA card {card} ({bdf}): {why}");
            answers.push(Answer::Failed { why });
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
        let answer = match host.effects().reserve_audio(&request, policy.step_timeout) {
            Ok(line) => Answer::parse(&line),
            Err(e) => Answer::Failed {
                why: format!("cannot start the helper: {e}"),
            },
        };
        if answer.is_ours() {
            tracing::info!("ALSA card {card} ({bdf}): {answer}");
        } else {
            tracing::warn!("ALSA card {card} ({bdf}): {answer}");
        }
        answers.push(answer);
    }
    let closed = wait::until(
        &format!("every node of ALSA card {card} to close"),
        CLOSE_WAIT.min(policy.step_timeout),
        || sound::holders(host, &[card]).is_empty(),
    );
    if closed.is_err() {
        tracing::warn!(
            "ALSA card {card} ({bdf}) is still open in {} {}; it is handled as any other holder",
            describe(&sound::holders(host, &[card])),
            why_kept(&answers)
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

/// The most of a sound server's environment read to find its session bus: environments are
/// rarely over a few KiB, and the process is not ours to trust with a size.
const ENVIRON_LIMIT: u64 = 256 * 1024;

/// The process's own DBUS_SESSION_BUS_ADDRESS, else the user's bus of systemd's user manager.
/// Without systemd (OpenRC with elogind) nothing makes `/run/user/<uid>/bus`: the session's bus
/// comes from dbus-launch, a socket only the session's environment names.
fn session_bus(host: &Host, pid: u32, uid: u32) -> Option<String> {
    let environ = crate::untrusted::open(
        &host.path(format!("/proc/{pid}/environ")),
        crate::untrusted::Last::Follow,
    )
    .and_then(|file| file.read_at_most(ENVIRON_LIMIT));
    if let Ok(environ) = environ {
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

#[cfg(test)]
mod tests {
    use super::{why_kept, Answer};

    #[test]
    fn a_kept_card_is_told_which_way_its_release_went() {
        let why = |answers: Vec<Answer>| why_kept(&answers);
        let app = || "WirePlumber".to_string();
        assert_eq!(
            why(vec![Answer::Refused { app: app() }]),
            "after WirePlumber refused to release it"
        );
        assert_eq!(
            why(vec![Answer::Failed {
                why: "no bus".into()
            }]),
            "after the request to release it failed"
        );
        let ignored = why(vec![Answer::Released { app: app() }]);
        assert!(ignored.contains("the release was ignored"), "{ignored}");
    }
}
