//! The logind sleep inhibitor held while a card is lent.
//!
//! logind keeps an inhibitor exactly as long as the file descriptor its Inhibit() call returned
//! stays open, so something must outlive the `pitcrew detach` that lends the card. That is a
//! `systemd-inhibit --what=sleep ... sleep infinity` (elogind's `elogind-inhibit` under OpenRC:
//! the same tool and the same login1 Inhibit call) started by the detach in its own process
//! group: the tool takes the lock and holds it for as long as it runs, and it ends its child
//! when it is killed (its fork sets PDEATHSIG), so one SIGTERM releases everything.
//! Started from pitcrew@<vm>.service it lives in that unit's cgroup: a crash, a failed start or
//! `systemctl stop` ends it with the unit, after the reattach (ExecStop) has brought the card
//! back. The inhibitor is found again by its `--who`/`--why` in /proc, so no pid is kept that
//! could be recycled.

use super::init::Init;
use super::procs::Proc;
use super::Host;
use std::collections::BTreeMap;

/// logind's tool and elogind's.
const PROGRAMS: [&str; 2] = ["systemd-inhibit", "elogind-inhibit"];

/// The tool that takes the inhibitor on this host.
pub fn program(host: &Host) -> &'static str {
    Init::detect(host).map_or(PROGRAMS[0], Init::inhibit_program)
}
pub const WHO: &str = "GPU Pit Crew";

/// What `systemd-inhibit --list` shows as the reason.
pub fn why(owner: Option<&str>) -> String {
    match owner {
        Some(vm) => format!("GPU lent to VM {vm}"),
        None => "GPU lent to a VM".to_string(),
    }
}

/// The holder's arguments; the lock lasts as long as `sleep infinity` runs.
pub fn args(why: &str) -> Vec<String> {
    vec![
        "--what=sleep".into(),
        format!("--who={WHO}"),
        format!("--why={why}"),
        "--mode=block".into(),
        "sleep".into(),
        "infinity".into(),
    ]
}

/// pitcrew's live holders: their reason and pids.
pub fn holders(host: &Host) -> BTreeMap<String, Vec<u32>> {
    super::procs::user_space(host)
        .map(|processes| among(host, &processes))
        .unwrap_or_default()
}

/// pitcrew's holders among `processes`. Only a process named like either tool (or one whose
/// name could not be read) has its arguments read.
pub fn among(host: &Host, processes: &[Proc]) -> BTreeMap<String, Vec<u32>> {
    let mut found: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let candidates = processes.iter().filter(|p| {
        p.comm
            .as_deref()
            .is_none_or(|comm| PROGRAMS.contains(&comm))
    });
    for pid in candidates.map(|p| p.pid) {
        let Ok(raw) = std::fs::read(host.path(format!("/proc/{pid}/cmdline"))) else {
            continue;
        };
        let text = String::from_utf8_lossy(&raw);
        let argv: Vec<&str> = text.split('\0').filter(|a| !a.is_empty()).collect();
        let is_inhibit = argv
            .first()
            .and_then(|a| a.rsplit('/').next())
            .is_some_and(|name| PROGRAMS.contains(&name));
        let ours = argv.contains(&format!("--who={WHO}").as_str());
        let why = argv.iter().find_map(|a| a.strip_prefix("--why="));
        if let (true, true, Some(why)) = (is_inhibit, ours, why) {
            found.entry(why.to_string()).or_default().push(pid);
        }
    }
    for pids in found.values_mut() {
        pids.sort_unstable();
    }
    found
}
