//! pitcrew's own setup: the hook, whether the running libvirt daemon has seen it, and the unit.

use super::Check;
use crate::host::init::Init;
use crate::host::libvirt::{self, Daemon};
use crate::host::Host;
use crate::install::layout::HOOK;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

const UNIT_DIRS: [&str; 3] = [
    "/etc/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];
const UNIT_NAME: &str = "pitcrew@.service";
const FILE_CLOCK_GRAIN: Duration = Duration::from_millis(10);
pub(super) const INSTALL: &str =
    "run `sudo pitcrew install --vm NAME` (or install the pitcrew package)";

/// The service manager, the hook, whether the running libvirt daemon has seen it, and the
/// unit (systemd) or the init script (OpenRC).
pub(super) fn integration(host: &Host) -> Vec<Check> {
    let init = Init::detect(host);
    let hook = hook(host);
    let hook_found = hook.level == super::Level::Ok;
    let mut checks = vec![
        match &init {
            Ok(init) => Check::ok("init", format!("{} runs the services", init.name())),
            Err(e) => Check::fail(
                "init",
                e.to_string(),
                "run pitcrew on a host with systemd or OpenRC",
            ),
        },
        hook,
    ];
    if hook_found {
        checks.extend(daemons(host));
    }
    match init {
        Ok(Init::Systemd) => checks.push(unit(host)),
        Ok(Init::OpenRc) => checks.extend(super::openrc::checks(host)),
        Err(_) => {}
    }
    checks
}

fn hook(host: &Host) -> Check {
    let path = HOOK;
    let Ok(target) = std::fs::read_link(host.path(path)) else {
        return match std::fs::symlink_metadata(host.path(path)) {
            Ok(_) => Check::fail(
                "hook",
                format!("{path} is not the link pitcrew installs"),
                INSTALL,
            ),
            Err(_) => Check::fail(
                "hook",
                format!("{path} missing: libvirt never calls pitcrew"),
                INSTALL,
            ),
        };
    };
    let resolved = resolve(host, path, &target);
    let executable = std::fs::metadata(&resolved)
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if !executable {
        return Check::fail(
            "hook",
            format!(
                "{path} points at {}, which is not an executable file",
                target.display()
            ),
            INSTALL,
        );
    }
    Check::ok("hook", format!("{path} -> {}", target.display()))
}

/// A link target as the host would see it: absolute ones under the root, relative ones beside
/// the link.
fn resolve(host: &Host, link: &str, target: &std::path::Path) -> PathBuf {
    if target.is_absolute() {
        host.path(target)
    } else {
        host.path(link).with_file_name("").join(target)
    }
}

/// Each running libvirt daemon must have looked for hooks since pitcrew's appeared.
fn daemons(host: &Host) -> Vec<Check> {
    let running = libvirt::running(host);
    if running.is_empty() {
        return vec![Check::ok(
            "libvirt",
            "no libvirt daemon runs now: it finds the hook when it starts",
        )];
    }
    let created = libvirt::changed_at(host, HOOK);
    running
        .iter()
        .map(|daemon| daemon_check(host, daemon, HOOK, created))
        .collect()
}

fn daemon_check(host: &Host, d: &Daemon, hook: &str, created: Option<SystemTime>) -> Check {
    let name = format!("libvirt {}", d.unit);
    let (Some(started), Some(created)) = (d.started, created) else {
        return Check::warn(
            name,
            "runs, but its start time cannot be read",
            format!(
                "if a VM start does not run the hook, `{}` (VMs keep running)",
                d.reload_command()
            ),
        );
    };
    if started >= created {
        return Check::ok(name, "started after the hook was installed: it runs it");
    }
    // File times come from the kernel's coarse clock, up to a tick (10 ms at HZ=100) behind the
    // journal's: only a reload after that counts (install reloads a daemon-reload later).
    let reloaded = libvirt::reloaded_since(host, d, created + FILE_CLOCK_GRAIN);
    if reloaded == Some(true) {
        return Check::ok(name, "reloaded since the hook was installed: it runs it");
    }
    // Once a daemon has found any QEMU hook at its start it lists qemu.d at every call.
    let earlier = libvirt::qemu_hooks(host).into_iter().find(|other| {
        other != hook && libvirt::changed_at(host, other).is_some_and(|at| at <= started)
    });
    if let Some(other) = earlier {
        return Check::ok(
            name,
            format!(
                "had a QEMU hook ({other}) when it started, so it finds pitcrew's in {}",
                libvirt::QEMU_HOOK_DIR
            ),
        );
    }
    let fix = format!("`{}` (VMs keep running)", d.reload_command());
    if reloaded.is_none() {
        return Check::warn(
            name,
            "started before the hook was installed, and OpenRC keeps no record of a reload: \
             unless `pitcrew install` reloaded it, VM starts do not run the hook",
            fix,
        );
    }
    Check::fail(
        name,
        "started before the hook was installed and not reloaded since: VM starts do not run it",
        fix,
    )
}

fn unit(host: &Host) -> Check {
    let Some(path) = UNIT_DIRS
        .iter()
        .map(|dir| format!("{dir}/{UNIT_NAME}"))
        .find(|p| host.path(p).is_file())
    else {
        return Check::fail("unit", format!("{UNIT_NAME} is not installed"), INSTALL);
    };
    let text = crate::untrusted::read_text(&host.path(&path), crate::untrusted::ATTRIBUTE_LIMIT)
        .unwrap_or_default();
    let binary = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .and_then(|cmd| cmd.split_whitespace().next())
        .map(|b| b.trim_start_matches(['-', '@', '+', '!', ':']).to_string());
    match binary {
        Some(binary) if host.path(&binary).is_file() => {
            Check::ok("unit", format!("{path} runs {binary}"))
        }
        Some(binary) => Check::fail(
            "unit",
            format!("{path} runs {binary}, which does not exist"),
            INSTALL,
        ),
        None => Check::fail("unit", format!("{path} has no ExecStart="), INSTALL),
    }
}
