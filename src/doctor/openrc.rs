//! What `doctor` checks of pitcrew's OpenRC integration: the init script, that no VM's instance
//! is in a runlevel, and elogind for the sleep inhibitor.

use super::setup::INSTALL;
use super::Check;
use crate::host::init::openrc::{INSTANCE_PREFIX, SCRIPT};
use crate::host::init::Init;
use crate::host::Host;
use std::os::unix::fs::PermissionsExt;

/// The line of the script that names the binary it runs (see dist/openrc/pitcrew).
pub const BINARY_LINE: &str = "pitcrew=";

pub(super) fn checks(host: &Host) -> Vec<Check> {
    vec![script(host), runlevels(host), elogind(host)]
}

fn script(host: &Host) -> Check {
    let path = host.path(SCRIPT);
    let executable =
        std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if !executable {
        return Check::fail(
            "service",
            format!("{SCRIPT} is missing or not executable: libvirt's hook cannot start a lend"),
            INSTALL,
        );
    }
    let text =
        crate::untrusted::read_text(&path, crate::untrusted::ATTRIBUTE_LIMIT).unwrap_or_default();
    if !text.starts_with("#!/sbin/openrc-run") {
        return Check::fail(
            "service",
            format!("{SCRIPT} is not an openrc-run script"),
            INSTALL,
        );
    }
    let binary = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(BINARY_LINE))
        .map(|b| b.trim_matches(['"', '\'']).to_string());
    match binary {
        Some(binary) if host.path(&binary).is_file() => {
            Check::ok("service", format!("{SCRIPT} runs {binary}"))
        }
        Some(binary) => Check::fail(
            "service",
            format!("{SCRIPT} runs {binary}, which does not exist"),
            INSTALL,
        ),
        None => Check::fail(
            "service",
            format!("{SCRIPT} names no pitcrew binary ({BINARY_LINE}...)"),
            INSTALL,
        ),
    }
}

/// A VM's instance belongs to no runlevel: entering one would start a lend with no VM, and
/// leaving it would try to give the card back under a running VM.
fn runlevels(host: &Host) -> Check {
    let mut found: Vec<String> = std::fs::read_dir(host.path("/etc/runlevels"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|level| {
            let level_name = level.file_name().to_string_lossy().into_owned();
            std::fs::read_dir(level.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name == "pitcrew" || name.starts_with(INSTANCE_PREFIX))
                .map(move |name| format!("{name} in runlevel {level_name}"))
                .collect::<Vec<_>>()
        })
        .collect();
    found.sort();
    if found.is_empty() {
        return Check::ok(
            "runlevels",
            "pitcrew is in no runlevel: only libvirt's hook starts and stops it",
        );
    }
    Check::fail(
        "runlevels",
        format!(
            "{}: a runlevel change starts or stops a lend",
            found.join(", ")
        ),
        "`rc-update del <service> <runlevel>` for each; libvirt's hook starts and stops them",
    )
}

fn elogind(host: &Host) -> Check {
    if Init::OpenRc.logind(host) {
        return Check::ok(
            "elogind",
            "elogind runs: a lent card holds a sleep inhibitor",
        );
    }
    Check::warn(
        "elogind",
        "no elogind runs (no /run/systemd/seats): the host may suspend under a lent card, \
         which rarely wakes the guest's card again",
        "install elogind and add it to a runlevel (`rc-update add elogind boot`)",
    )
}
