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

/// What to do about them, for the install error.
pub fn migration_help(found: &[String]) -> String {
    let mut text = String::from(
        "found an install of the bash GPU Pit Crew, which would hand the GPU over a second time:\n",
    );
    for path in found {
        text.push_str(&format!("  {path}\n"));
    }
    text.push_str(
        "To migrate (pitcrew replaces all of it; your VMs' XML stays as it is):\n\
         \x20 1. shut the VMs down, then: systemctl disable --now pitcrew.service\n\
         \x20 2. note whether stop.sh's last line (reattach) was enabled: set `reattach` per VM in\n\
         \x20    /etc/pitcrew/pitcrew.toml to match (pitcrew's default is to reattach)\n\
         \x20 3. remove the files listed above (keep /etc/libvirt/hooks/qemu if other hooks use it;\n\
         \x20    pitcrew never touches it and runs from /etc/libvirt/hooks/qemu.d/pitcrew)\n\
         \x20 4. systemctl daemon-reload, then run `pitcrew install --vm NAME` again",
    );
    text
}
