//! OpenRC: services read from its state directory and cgroups, driven by openrc-run.
//!
//! `rc-service X stop` execs `/etc/init.d/X` itself (rc-service.c: `execv` of the resolved
//! script): a native script then goes through openrc-run by its `#!`, but an LSB script
//! (Debian's lightdm, libvirtd, elogind) runs bare, so OpenRC keeps it `started`, and what it
//! starts lands in the caller's cgroup. `openrc-run /etc/init.d/X stop` takes the script's path
//! as its argument, names the service after it (`RC_SVCNAME`), marks its state and puts it in
//! `openrc.X`, for both kinds of script.

use crate::host::Host;

/// Present while OpenRC runs the host (the runlevel it is in).
pub const SOFTLEVEL: &str = "/run/openrc/softlevel";
/// The program that runs a service script through OpenRC's state machine.
pub const OPENRC_RUN: &str = "openrc-run";
/// Where service scripts live.
pub const INIT_D: &str = "/etc/init.d";
/// pitcrew's multiplexed script; each VM's instance is a link `pitcrew.<escaped>` to it.
pub const SCRIPT: &str = "/etc/init.d/pitcrew";
/// The instances' prefix: OpenRC's multiplexed services are `<script>.<instance>`.
pub const INSTANCE_PREFIX: &str = "pitcrew.";

/// A service's script.
pub fn script(service: &str) -> String {
    format!("{INIT_D}/{service}")
}

/// OpenRC marks a started service with a link in its state directory.
pub fn is_started(host: &Host, service: &str) -> bool {
    in_state(host, "started", service)
}

/// Whether `service` is in OpenRC's state `state` (started, starting, stopping...).
pub fn in_state(host: &Host, state: &str, service: &str) -> bool {
    std::fs::symlink_metadata(host.path(format!("/run/openrc/{state}/{service}"))).is_ok()
}

/// Gentoo and Alpine run one `display-manager` service configured by `DISPLAYMANAGER=` in
/// /etc/conf.d/display-manager; Debian names the service after the binary that
/// /etc/X11/default-display-manager names (what its LSB scripts check).
pub fn display_manager(host: &Host) -> Option<String> {
    let exists = |service: &str| host.path(script(service)).is_file();
    let configured = host.read("/etc/conf.d/display-manager").is_ok_and(|text| {
        text.lines()
            .any(|l| l.trim().starts_with("DISPLAYMANAGER="))
    });
    if configured && exists("display-manager") {
        return Some("display-manager".into());
    }
    let binary = host.read("/etc/X11/default-display-manager").ok()?;
    let name = binary.trim().rsplit('/').next()?.to_string();
    (!name.is_empty() && exists(&name)).then_some(name)
}

/// A service's cgroup, in the layouts OpenRC has used: `openrc.<svc>` on the unified hierarchy
/// (0.53 on; under /unified on a hybrid host), `<svc>` (0.51-0.52), and the `openrc` named v1
/// hierarchy before that.
pub fn cgroup_dirs(service: &str) -> [String; 4] {
    [
        format!("/sys/fs/cgroup/openrc.{service}"),
        format!("/sys/fs/cgroup/unified/openrc.{service}"),
        format!("/sys/fs/cgroup/{service}"),
        format!("/sys/fs/cgroup/openrc/{service}"),
    ]
}

/// The processes in a service's cgroup. OpenRC leaves a stopped service's leftovers there.
pub fn pids(host: &Host, service: &str) -> Vec<u32> {
    cgroup_dirs(service)
        .iter()
        .find_map(|dir| host.read(format!("{dir}/cgroup.procs")).ok())
        .map(|text| super::pid_list(&text))
        .unwrap_or_default()
}

/// The service of a process from its /proc/<pid>/cgroup: the `name=openrc` v1 line (before
/// 0.51), else the unified line's first component, `openrc.<svc>` (0.53 on) or `<svc>` (0.51,
/// 0.52). Only root makes top-level cgroups and OpenRC makes them for services alone, so each
/// is a system service's.
pub fn service_of(cgroup: &str) -> (Option<String>, bool) {
    let legacy = cgroup
        .lines()
        .find_map(|l| l.split_once(":name=openrc:/").map(|p| p.1));
    let unified = || cgroup.lines().find_map(|l| l.strip_prefix("0::/"));
    let Some(path) = legacy.filter(|p| !p.is_empty()).or_else(unified) else {
        return (None, false);
    };
    let first = path.split('/').next().unwrap_or_default();
    let service = first.strip_prefix("openrc.").unwrap_or(first);
    if service.is_empty() {
        return (None, false);
    }
    (Some(service.to_string()), true)
}

/// `pitcrew.<escaped>`, the instance holding a VM's GPU.
pub fn instance(vm: &str) -> String {
    format!("{INSTANCE_PREFIX}{}", escape(vm))
}

/// A VM name as a service name that needs no quoting in OpenRC's shell code, its file names or
/// its dependency lists: ASCII letters, digits and '-' stay, every other byte becomes `_xx`
/// (lower-case hex), '_' included, so two names never map to one.
pub fn escape(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' => char::from(b).to_string(),
            _ => format!("_{b:02x}"),
        })
        .collect()
}

/// The VM name back from an instance name's part after `pitcrew.`; None when it is not one
/// [`escape`] makes.
pub fn unescape(escaped: &str) -> Option<String> {
    let mut bytes = Vec::new();
    let mut rest = escaped.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' => {
                bytes.push(b);
                rest = tail;
            }
            b'_' => {
                let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
                if hex.bytes().any(|c| c.is_ascii_uppercase()) {
                    return None;
                }
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
                rest = &tail[2..];
            }
            _ => return None,
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_names_become_safe_service_names_and_back() {
        for (name, escaped) in [
            ("win11", "win11"),
            ("gpu-vm", "gpu-vm"),
            ("win_11", "win_5f11"),
            ("my vm; rm -rf /", "my_20vm_3b_20rm_20-rf_20_2f"),
            ("a.b", "a_2eb"),
            ("été", "_c3_a9t_c3_a9"),
        ] {
            assert_eq!(escape(name), escaped, "{name}");
            assert_eq!(unescape(escaped).as_deref(), Some(name), "{escaped}");
        }
        for bad in ["a_", "a_4", "a_4G", "a_4F", "a b", "a.b", "a/b"] {
            assert_eq!(unescape(bad), None, "{bad}");
        }
    }

    #[test]
    fn services_from_every_cgroup_layout() {
        for (text, service) in [
            ("0::/openrc.lightdm\n", Some("lightdm")),
            ("0::/openrc.pitcrew.win11\n", Some("pitcrew.win11")),
            ("0::/lightdm\n", Some("lightdm")),
            (
                "12:name=openrc:/lightdm\n11:cpuset:/\n0::/\n",
                Some("lightdm"),
            ),
            ("12:name=openrc:/\n0::/\n", None),
            ("0::/\n", None),
            ("", None),
        ] {
            let (found, system) = service_of(text);
            assert_eq!(found.as_deref(), service, "{text:?}");
            assert_eq!(system, service.is_some(), "{text:?}");
        }
    }
}
