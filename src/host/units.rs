//! systemd units, read from the filesystem so a staged root answers for itself.

use super::Host;

/// The unit the `display-manager.service` alias points at (lightdm.service, gdm.service...).
pub fn display_manager(host: &Host) -> Option<String> {
    host.link_name("/etc/systemd/system/display-manager.service")
}

/// systemd keeps a cgroup for a unit exactly while it has processes or is active: its presence
/// answers "is it running" without a D-Bus round trip, and works under a staged root.
pub fn is_running(host: &Host, unit: &str) -> bool {
    [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup/systemd",
    ]
    .iter()
    .any(|base| host.path(format!("{base}/system.slice/{unit}")).is_dir())
}
