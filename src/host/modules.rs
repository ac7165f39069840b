//! Kernel modules: what is loaded, what depends on what, which module a driver lives in.

use super::Host;
use crate::untrusted;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Module {
    pub name: String,
    pub refcnt: u32,
    /// Loaded modules that use this one (the fourth column of /proc/modules).
    pub used_by: Vec<String>,
}

/// /proc/modules is a line per module: a few KiB, never near this.
const MODULES_LIMIT: u64 = 1024 * 1024;

/// modprobe treats `-` and `_` alike; sysfs and /proc/modules use `_`.
pub fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// Parses /proc/modules; a missing file (a kernel without modules) means none loaded.
pub fn loaded(host: &Host) -> io::Result<BTreeMap<String, Module>> {
    let text = match untrusted::read_text(&host.path("/proc/modules"), MODULES_LIMIT) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?.to_string();
            let _size = fields.next()?;
            let refcnt = fields.next()?.parse().ok()?;
            let used_by = fields
                .next()
                .unwrap_or("-")
                .split(',')
                .filter(|dep| !dep.is_empty() && *dep != "-")
                .map(str::to_string)
                .collect();
            Some((
                name.clone(),
                Module {
                    name,
                    refcnt,
                    used_by,
                },
            ))
        })
        .collect())
}

/// A module compiled into the kernel: present in /sys/module but with no initstate.
pub fn is_builtin(host: &Host, name: &str) -> bool {
    let dir = host.path(format!("/sys/module/{}", canonical(name)));
    dir.is_dir() && !dir.join("initstate").exists()
}
