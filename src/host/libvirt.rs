//! The libvirt daemon that runs QEMU hooks and the hooks it would find, read from files only:
//! pitcrew never talks to libvirt (from inside a hook that can deadlock the daemon).
//!
//! A daemon looks for hooks when it starts and again when it reloads (SIGHUP: virHookCall on
//! the daemon's reload resets its cache); once it has found a QEMU hook it lists qemu.d at every
//! call. So a hook created after the daemon started, when no other QEMU hook existed then, runs
//! only after a reload or a restart.

use super::init::Init;
use super::Host;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The monolithic daemon and the modular one that runs the QEMU driver (libvirt >= 5.6; the
/// default since Debian 13 and Fedora 35), by program name.
pub const DAEMONS: [&str; 2] = ["libvirtd", "virtqemud"];
/// libvirt's single-script QEMU hook, often a user's or VFIO-Tools' dispatcher.
pub const QEMU_HOOK_SCRIPT: &str = "/etc/libvirt/hooks/qemu";
/// The drop-in directory (libvirt >= 6.5) where pitcrew's hook lives.
pub const QEMU_HOOK_DIR: &str = "/etc/libvirt/hooks/qemu.d";
/// Persistent domain definitions of the system instance.
pub const DOMAIN_DIR: &str = "/etc/libvirt/qemu";
/// systemd's catalog id of "Reloaded <unit>", logged when a reload job finished successfully.
const UNIT_RELOADED: &str = "d34d037fff1847e6ae669a370e694725";
const JOURNAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A running libvirt daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    /// The service manager running it.
    pub init: Init,
    /// Its program's name.
    pub name: &'static str,
    /// Its service (`libvirtd.service` under systemd, `libvirtd` under OpenRC).
    pub unit: String,
    /// Its main process, found in the service's cgroup by name (dnsmasq shares the cgroup).
    pub pid: Option<u32>,
    pub started: Option<SystemTime>,
}

/// The libvirt daemons running now; none on a host without a supported service manager.
pub fn running(host: &Host) -> Vec<Daemon> {
    let Ok(init) = Init::detect(host) else {
        return Vec::new();
    };
    DAEMONS
        .into_iter()
        .map(|name| (name, init.service(name)))
        .filter(|(_, unit)| init.is_active(host, unit))
        .map(|(name, unit)| {
            let is_daemon = |pid: &u32| {
                host.read(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c == name)
            };
            let pid = init
                .pids(host, &unit)
                .into_iter()
                .find(is_daemon)
                .or_else(|| pid_file(host, name).filter(is_daemon));
            Daemon {
                init,
                name,
                unit,
                pid,
                started: pid.and_then(|pid| process_start(host, pid)),
            }
        })
        .collect()
}

/// The pid the daemon wrote to `/run/<name>.pid` (its default `--pid-file`).
fn pid_file(host: &Host, name: &str) -> Option<u32> {
    host.read(format!("/run/{name}.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// When a process started: field 22 of /proc/<pid>/stat (clock ticks since boot) plus the boot
/// time from /proc/stat, as ps computes it (to the second of btime).
pub fn process_start(host: &Host, pid: u32) -> Option<SystemTime> {
    let stat = host.read(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = after_comm.split_whitespace().nth(19)?.parse().ok()?;
    let btime: u64 = host
        .read("/proc/stat")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Some(UNIX_EPOCH + Duration::from_secs(btime) + Duration::from_millis(ticks * 1000 / hz))
}

/// When a file (or a link itself) came into being or last changed: its ctime, which dpkg and
/// `cp -p` cannot set back the way they set mtime.
pub fn changed_at(host: &Host, absolute: &str) -> Option<SystemTime> {
    let meta = std::fs::symlink_metadata(host.path(absolute)).ok()?;
    let secs = u64::try_from(meta.ctime()).ok()?;
    let nanos = u32::try_from(meta.ctime_nsec()).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Every QEMU hook libvirt would run, as host paths: the single script and each executable in
/// qemu.d (libvirt skips the rest).
pub fn qemu_hooks(host: &Host) -> Vec<String> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let mut hooks = Vec::new();
    if executable(&host.path(QEMU_HOOK_SCRIPT)) {
        hooks.push(QEMU_HOOK_SCRIPT.to_string());
    }
    let mut dropins: Vec<String> = std::fs::read_dir(host.path(QEMU_HOOK_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| executable(&e.path()))
        .map(|e| format!("{QEMU_HOOK_DIR}/{}", e.file_name().to_string_lossy()))
        .collect();
    dropins.sort();
    hooks.extend(dropins);
    hooks
}

impl Daemon {
    /// How to reload it by hand: systemd's reload job, or under OpenRC the SIGHUP that Debian's
    /// script sends for `reload` (Gentoo's and Alpine's have none).
    pub fn reload_command(&self) -> String {
        match self.init {
            Init::Systemd => format!("systemctl reload {}", self.unit),
            Init::OpenRc => format!("kill -HUP $(cat /run/{}.pid)", self.name),
        }
    }
}

/// Whether the daemon was reloaded (`systemctl reload`, by pitcrew or anyone) at or after
/// `since`, from systemd's journal under the host's root; unknown (no journalctl, no journal)
/// reads as no. None under OpenRC, which records no reload anywhere.
pub fn reloaded_since(host: &Host, daemon: &Daemon, since: SystemTime) -> Option<bool> {
    match daemon.init {
        Init::Systemd => Some(journal_reloaded_since(host, &daemon.unit, since)),
        Init::OpenRc => None,
    }
}

fn journal_reloaded_since(host: &Host, unit: &str, since: SystemTime) -> bool {
    let Ok(since) = since.duration_since(UNIX_EPOCH) else {
        return false;
    };
    let root = host.root().to_string_lossy();
    let since = format!("@{}.{:06}", since.as_secs(), since.subsec_micros());
    let message = format!("MESSAGE_ID={UNIT_RELOADED}");
    let unit = format!("UNIT={unit}");
    let args = [
        "--root",
        &root,
        "--quiet",
        "--no-pager",
        "--output=cat",
        "--since",
        &since,
        &message,
        &unit,
    ];
    host.effects()
        .run("journalctl", &args, JOURNAL_TIMEOUT)
        .is_ok_and(|out| out.success && !out.stdout.trim().is_empty())
}
