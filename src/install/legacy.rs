//! The bash GPU Pit Crew (gpuset.sh + pitcrew.service + per-VM qemu.d scripts run through a hook
//! dispatcher). Left in place it would hand the card over a second time, so install stops and
//! explains how to move over.

use crate::host::Host;

/// Files of the bash kit found on the host (absolute paths as on the host).
pub fn find(host: &Host) -> Vec<String> {
    let mut found: Vec<String> = ["/usr/bin/gpuset.sh", "/etc/systemd/system/pitcrew.service"]
        .into_iter()
        .filter(|p| host.path(p).exists())
        .map(String::from)
        .collect();
    let dropins = host.path(super::layout::HOOK).with_file_name("");
    if let Ok(entries) = std::fs::read_dir(&dropins) {
        let mut vms: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        vms.sort();
        for vm in vms {
            for script in ["prepare/begin/start.sh", "release/end/stop.sh"] {
                let path = format!("/etc/libvirt/hooks/qemu.d/{vm}/{script}");
                if host.path(&path).exists() {
                    found.push(path);
                }
            }
        }
    }
    found
}

/// What to do about them, for the install error: one line, as every error is.
pub fn migration_help(found: &[String]) -> String {
    format!(
        "found an install of the bash GPU Pit Crew ({}), which would hand the GPU over a second \
         time. To migrate (pitcrew replaces all of it; your VMs' XML stays as it is): shut the \
         VMs down and run `systemctl disable --now pitcrew.service`; set `reattach` per VM in \
         /etc/pitcrew/pitcrew.toml to match whether stop.sh's last line (reattach) was enabled \
         (pitcrew's default is to reattach); remove the files listed (keep \
         /etc/libvirt/hooks/qemu if other hooks use it: pitcrew never touches it and runs from \
         its qemu.d/pitcrew); run `systemctl daemon-reload`, then `pitcrew install --vm NAME` \
         again",
        found.join(", ")
    )
}
