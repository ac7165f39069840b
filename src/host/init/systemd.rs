//! systemd: units read from the filesystem (so a staged root answers for itself) and driven by
//! systemctl.

use crate::host::Host;

/// The unit the `display-manager.service` alias points at (lightdm.service, gdm.service...).
pub fn display_manager(host: &Host) -> Option<String> {
    host.link_name("/etc/systemd/system/display-manager.service")
}

/// systemd keeps a cgroup for a unit exactly while it has processes or is active: its presence
/// answers "is it running" without a D-Bus round trip, and works under a staged root.
pub fn is_running(host: &Host, unit: &str) -> bool {
    CGROUP_BASES
        .iter()
        .any(|base| host.path(format!("{base}/system.slice/{unit}")).is_dir())
}

/// Where systemd mounts its hierarchy: unified (v2), hybrid, legacy (v1).
const CGROUP_BASES: [&str; 3] = [
    "/sys/fs/cgroup",
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup/systemd",
];

/// The processes in a running unit's cgroup.
pub fn pids(host: &Host, unit: &str) -> Vec<u32> {
    CGROUP_BASES
        .iter()
        .find_map(|base| {
            host.read(format!("{base}/system.slice/{unit}/cgroup.procs"))
                .ok()
        })
        .map(|text| super::pid_list(&text))
        .unwrap_or_default()
}

/// The last unit-like component of the unified hierarchy's path (the `0::` line, or the
/// `name=systemd` line of a legacy hierarchy), and whether it is a system unit's.
pub fn unit_of(cgroup: &str) -> (Option<String>, bool) {
    let Some(path) = cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .or_else(|| {
            cgroup
                .lines()
                .find_map(|l| l.split_once(":name=systemd:").map(|p| p.1))
        })
    else {
        return (None, false);
    };
    let unit = path
        .split('/')
        .rev()
        .find(|part| part.ends_with(".service") || part.ends_with(".scope"))
        .map(str::to_string);
    (unit, path.starts_with("/system.slice/"))
}
