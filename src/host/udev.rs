//! What udev knows about a device: its database entry under /run/udev/data, and the udevadm
//! calls that make it read its rules again.

use super::Host;
use std::collections::BTreeMap;
use std::time::Duration;

const DATA: &str = "/run/udev/data";
/// `udevadm trigger --settle` waits for the events it caused; a loaded udev takes a while.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The properties (`E:` lines) udev stored for a device at its last event; `None` when it has
/// no entry. `id` is udev's name for it: `c226:1` for a character device, `+sound:card1` for a
/// device without a node.
pub fn properties(host: &Host, id: &str) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(host.path(format!("{DATA}/{id}"))).ok()?;
    Some(
        text.lines()
            .filter_map(|line| line.strip_prefix("E:"))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// udev's database name of a character device whose sysfs directory is `sys_dir`: `c` and the
/// `dev` attribute (`226:1`).
pub fn char_id(host: &Host, sys_dir: &str) -> Option<String> {
    host.read(format!("{sys_dir}/dev"))
        .ok()
        .map(|dev| format!("c{dev}"))
}

/// Runs `udevadm` with `args`; the error says what failed.
pub fn udevadm(host: &Host, args: &[&str]) -> Result<(), String> {
    let shown = format!("udevadm {}", args.join(" "));
    match host.effects().run("udevadm", args, TIMEOUT) {
        Ok(out) if out.success => Ok(()),
        Ok(out) => Err(format!("`{shown}` failed: {}", out.stderr.trim())),
        Err(e) => Err(format!("`{shown}`: {e}")),
    }
}
