//! What `install --vm NAME` tells about the desktop: for each GPU the VM borrows, whether
//! lending it will cost the graphical session, and how to keep the session.

use crate::bdf::Bdf;
use crate::config::Config;
use crate::host::keepoff::{self, RULES};
use crate::host::{pci, Host};
use crate::vm::{self, VmName};
use std::collections::BTreeMap;
use std::io::Write;

/// Where libvirt keeps the persistent definition of a system-session VM.
const DOMAIN_XML_DIR: &str = "/etc/libvirt/qemu";

/// One line per GPU of each VM; silent where the VM's GPUs cannot be known yet (no `devices`
/// in the config and no definition in libvirt) or the host cannot be read (a bare staged root).
pub fn desktop(host: &Host, vms: &[VmName], out: &mut dyn Write) {
    let Ok(devices) = pci::read_all(host, &BTreeMap::new()) else {
        return;
    };
    let kept = keepoff::load(host).unwrap_or_default();
    let config = Config::load(host).ok().flatten().unwrap_or_default();
    for vm in vms {
        for gpu in gpus(host, &config, vm) {
            let _ = writeln!(out, "{}", advice(&devices, &kept, vm, gpu));
        }
    }
}

fn gpus(host: &Host, config: &Config, vm: &VmName) -> Vec<Bdf> {
    if let Some(listed) = config.listed(vm).filter(|l| !l.devices.is_empty()) {
        return listed.devices.clone();
    }
    let path = host.path(format!("{DOMAIN_XML_DIR}/{vm}.xml"));
    std::fs::read_to_string(path)
        .ok()
        .and_then(|xml| vm::gpu_hostdevs(host, &xml).ok())
        .unwrap_or_default()
}

fn advice(
    devices: &BTreeMap<Bdf, pci::PciDevice>,
    kept: &keepoff::Entries,
    vm: &VmName,
    gpu: Bdf,
) -> String {
    let only_display = !devices
        .values()
        .any(|d| d.is_display() && d.bdf != gpu && !d.on_vfio());
    if only_display {
        format!(
            "VM '{vm}' borrows {gpu}, this host's only display: lending it stops the display \
             manager, which ends the graphical session (its windows close, unsaved work is lost); \
             the login screen comes back when the VM stops. Only a second GPU (an integrated \
             one will do) lets the desktop stay."
        )
    } else if kept.contains_key(&gpu) {
        format!(
            "VM '{vm}' borrows {gpu}, which {RULES} keeps off the desktop: lending it leaves your \
             session running."
        )
    } else {
        format!(
            "VM '{vm}' borrows {gpu}: while the desktop has it open, lending it stops the display \
             manager, which ends your session. `pitcrew keep-off {gpu}` keeps the desktop (and \
             its sound server) off it, so the session stays; `pitcrew keep-off --undo {gpu}` \
             gives it back to the desktop."
        )
    }
}
