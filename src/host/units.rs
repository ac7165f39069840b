//! systemd units, read from the filesystem so a staged root answers for itself.

use super::Host;

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
        .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}
