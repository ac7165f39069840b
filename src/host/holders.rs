//! Processes that hold device nodes of GPUs and their companions, found by walking /proc: an
//! open fd names its device by number (src/host/devname.rs), a mapping by the node's device
//! and inode (src/host/maps.rs).

use super::devname::DevNames;
use super::init::Init;
use super::maps::MappedNodes;
use super::Host;
use crate::untrusted::{self, Last};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;
use std::io;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub pid: u32,
    pub comm: String,
    /// Its real uid, from /proc/<pid>/status (a name is the process's own choice, a uid is not).
    pub uid: Option<u32>,
    pub cmdline: String,
    /// The service (systemd: unit, service or scope) the process runs in, from /proc/<pid>/cgroup
    /// as the host's service manager lays it out.
    pub unit: Option<String>,
    /// Whether that is a system service (under systemd's /system.slice; every OpenRC service):
    /// a user names their own user units, and the cgroups under their delegated manager, as
    /// they please.
    pub system_unit: bool,
    /// The nodes it holds, open or mapped, as host paths (/dev/dri/card1).
    pub nodes: BTreeSet<String>,
    /// Those of `nodes` it holds only by a mapping, with no fd open on them (it mapped the node
    /// and closed the fd): the driver stays pinned all the same.
    pub mapped: BTreeSet<String>,
}

/// Every process holding a tracked node ([`super::nodes::is_tracked`]) open or mapped.
/// Processes that exit during the walk, or whose fds and maps we may not read, are skipped: a
/// holder we cannot see is one we could not signal either.
pub fn scan(host: &Host) -> io::Result<Vec<Holder>> {
    scan_for(host, super::nodes::is_tracked)
}

/// Every process holding a node `wanted` accepts (a host path such as /dev/snd/controlC1).
/// A check right before a write lists /proc itself, leaving out what cannot hold anything.
pub fn scan_for(host: &Host, wanted: impl Fn(&str) -> bool) -> io::Result<Vec<Holder>> {
    let pids = std::fs::read_dir(host.path("/proc"))?
        .flatten()
        .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| super::procs::may_hold(host, *pid));
    Ok(among(host, pids, wanted))
}

/// The processes among `pids` holding a node `wanted` accepts.
pub fn among(
    host: &Host,
    pids: impl IntoIterator<Item = u32>,
    wanted: impl Fn(&str) -> bool,
) -> Vec<Holder> {
    let mut holders = Vec::new();
    let names = DevNames::default();
    let maps = MappedNodes::of(host, &wanted);
    let init = Init::detect(host).ok();
    for pid in pids {
        let open = open_nodes(host, &names, pid, &wanted);
        let mapped: BTreeSet<String> = maps.held_by(host, pid).difference(&open).cloned().collect();
        if open.is_empty() && mapped.is_empty() {
            continue;
        }
        let (unit, system_unit) = match (init, host.read(format!("/proc/{pid}/cgroup"))) {
            (Some(init), Ok(cgroup)) => init.service_of(&cgroup),
            _ => (None, false),
        };
        holders.push(Holder {
            pid,
            // Both are the process's own choice, shown to root in plans, status and the
            // journal: no control character of theirs reaches a terminal.
            comm: crate::text::one_line(
                &host.read(format!("/proc/{pid}/comm")).unwrap_or_default(),
                64,
            ),
            uid: uid_of(host, pid),
            cmdline: crate::text::one_line(&cmdline(host, pid), 4096),
            unit,
            system_unit,
            nodes: open.union(&mapped).cloned().collect(),
            mapped,
        });
    }
    holders.sort_by_key(|holder| holder.pid);
    holders
}

/// The tracked nodes a process holds right now, open or mapped (empty when it is gone).
pub fn held_nodes(host: &Host, pid: u32) -> BTreeSet<String> {
    let mut held = open_nodes(host, &DevNames::default(), pid, super::nodes::is_tracked);
    held.extend(MappedNodes::of(host, super::nodes::is_tracked).held_by(host, pid));
    held
}

/// The nodes `wanted` accepts that a process holds right now, by the kernel's names for them
/// (see [`DevNames`]), not by the paths the process opened.
fn open_nodes(
    host: &Host,
    names: &DevNames,
    pid: u32,
    wanted: impl Fn(&str) -> bool,
) -> BTreeSet<String> {
    let Ok(fds) = std::fs::read_dir(host.path(format!("/proc/{pid}/fd"))) else {
        return BTreeSet::new();
    };
    fds.flatten()
        .filter_map(|fd| names.of_fd(host, &fd.path()))
        .filter(|node| wanted(node))
        .collect()
}

/// The process's arguments joined by spaces, read bounded and without blocking.
pub fn cmdline(host: &Host, pid: u32) -> String {
    // Mostly shown to the user: a huge argument list is cut, not refused.
    untrusted::open(&host.path(format!("/proc/{pid}/cmdline")), Last::Follow)
        .and_then(|file| file.read_at_most(untrusted::ATTRIBUTE_LIMIT))
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .split('\0')
                .filter(|arg| !arg.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The real uid on the `Uid:` line of /proc/<pid>/status.
fn uid_of(host: &Host, pid: u32) -> Option<u32> {
    let status = host.read(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Processes that hold devices for others: logind (and elogind, seatd) open a login session's
/// DRM and input devices and hand them to its compositor (TakeDevice), keeping a copy that they
/// close when the session lets go; systemd (PID 1) keeps another copy in logind's file
/// descriptor store until logind removes it. Ending one would take every session's devices
/// with it, and PID 1 is never to be signalled at all. A user picks the names of their own
/// processes and user units (and of cgroups under their delegated manager), so a unit counts
/// only as a system unit and a name only for root's processes: a user's process calling itself
/// systemd-logind, or running in a user unit of that name, is ended like any other holder.
const BROKERS: &[&str] = &["systemd-logind", "elogind-daemon", "seatd"];
const BROKER_UNITS: &[&str] = &[
    "systemd-logind.service",
    "elogind.service",
    "seatd.service",
    // OpenRC's names for the same services.
    "elogind",
    "seatd",
];

impl Holder {
    /// Whether it holds its nodes for a login session rather than for itself: it is waited
    /// for, never signalled.
    pub fn is_broker(&self) -> bool {
        self.is_service_manager()
            || BROKER_UNITS.iter().any(|u| self.in_system_unit(u))
            || (self.uid == Some(0) && BROKERS.contains(&self.comm.as_str()))
    }

    /// Whether it runs in the system unit `unit` (not in a user unit of that name).
    pub fn in_system_unit(&self, unit: &str) -> bool {
        self.system_unit && self.unit.as_deref() == Some(unit)
    }

    /// The service manager keeping a copy in a file descriptor store: it lets go only after
    /// the service it keeps it for, so it is waited for last.
    pub fn is_service_manager(&self) -> bool {
        self.pid == 1
    }

    /// `pid 4242 (pipewire) in session-2.scope: /dev/snd/controlC1`, as `status` shows it; a
    /// node held only by a mapping is followed by `(mapped)`.
    pub fn in_unit(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|node| match self.mapped.contains(node) {
                true => format!("{node} (mapped)"),
                false => node.clone(),
            })
            .collect();
        format!(
            "pid {} ({}) in {}: {}",
            self.pid,
            self.comm,
            self.unit.as_deref().unwrap_or("no unit"),
            nodes.join(", ")
        )
    }

    /// The same process, reduced to the nodes among `nodes`; None when it holds none of them.
    pub fn of(&self, nodes: &BTreeSet<String>) -> Option<Holder> {
        let mine: BTreeSet<String> = self.nodes.intersection(nodes).cloned().collect();
        (!mine.is_empty()).then(|| Holder {
            mapped: self.mapped.intersection(nodes).cloned().collect(),
            nodes: mine,
            ..self.clone()
        })
    }
}

/// Nodes as messages list them: `/dev/snd/controlC1, /dev/snd/pcmC1D3p`.
pub fn listed(nodes: &BTreeSet<String>) -> String {
    nodes
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a process holds `nodes`, of which `mapped` only by a mapping: `holding /dev/dri/card1`,
/// `with /dev/dri/renderD129 mapped`, or `holding /dev/dri/card1, with /dev/dri/renderD129
/// mapped`.
pub fn how_held(nodes: &BTreeSet<String>, mapped: &BTreeSet<String>) -> String {
    let open: BTreeSet<String> = nodes.difference(mapped).cloned().collect();
    match (open.is_empty(), mapped.is_empty()) {
        (_, true) => format!("holding {}", listed(&open)),
        (true, false) => format!("with {} mapped", listed(mapped)),
        (false, false) => format!("holding {}, with {} mapped", listed(&open), listed(mapped)),
    }
}

/// `pid 4242 (pipewire) holding /dev/snd/controlC1, /dev/snd/pcmC1D3p`; `pid 4300 (game) with
/// /dev/dri/renderD129 mapped`.
impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} ({}) {}",
            self.pid,
            self.comm,
            how_held(&self.nodes, &self.mapped)
        )
    }
}

/// The processes holding any of `nodes`, each with only those nodes.
pub fn holding(all: &[Holder], nodes: &BTreeSet<String>) -> Vec<Holder> {
    all.iter().filter_map(|h| h.of(nodes)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A holder whose unit is a system unit when root runs it, a user unit otherwise.
    fn holder(pid: u32, comm: &str, unit: Option<&str>, uid: u32) -> Holder {
        Holder {
            pid,
            comm: comm.into(),
            uid: Some(uid),
            cmdline: String::new(),
            unit: unit.map(str::to_string),
            system_unit: uid == 0 && unit.is_some_and(|u| u.ends_with(".service")),
            nodes: BTreeSet::from(["/dev/dri/card1".to_string()]),
            mapped: BTreeSet::new(),
        }
    }

    #[test]
    fn init_and_session_brokers_are_never_ended_and_a_name_alone_makes_none() {
        for (h, manager) in [
            (holder(1, "systemd", Some("init.scope"), 0), true),
            (holder(1, "init", None, 0), true),
            (
                holder(357, "systemd-logind", Some("systemd-logind.service"), 0),
                false,
            ),
            // A renamed or wrapped logind is still logind by its unit.
            (
                holder(357, "logind-wrap", Some("systemd-logind.service"), 0),
                false,
            ),
            (holder(412, "seatd", Some("seatd.service"), 0), false),
            // elogind without systemd's units: root's process by that name.
            (holder(300, "elogind-daemon", None, 0), false),
        ] {
            assert!(h.is_broker(), "{h}");
            assert_eq!(h.is_service_manager(), manager, "{h}");
        }
        for h in [
            holder(2100, "gnome-shell", Some("session-2.scope"), 1000),
            holder(2200, "Xorg", Some("lightdm.service"), 0),
            holder(900, "systemd-journal", Some("systemd-journald.service"), 0),
            // A user's processes naming themselves after a broker.
            holder(3000, "systemd-logind", Some("session-2.scope"), 1000),
            holder(3001, "seatd", None, 1000),
            holder(3002, "systemd", Some("init.scope"), 1000),
            holder(3003, "sleep", Some("systemd-logind.service"), 1000),
        ] {
            assert!(!h.is_broker(), "{h}");
        }
    }
}
