//! What `pitcrew install` says about lending each VM's GPU: keep-off offered for a card the
//! desktop has open, the session's end said for the host's only display.

use crate::keep_off::keep_off;
use pitcrew_sim::{fixtures, SimHost};

/// `install --vm win11 --dry-run` against the simulated host, with win11 defined in libvirt.
fn install_says(sim: &SimHost, gpu: &str) -> String {
    let xml = format!(
        "<domain type='kvm'><name>win11</name><devices><hostdev mode='subsystem' type='pci' \
         managed='yes'><source><address domain='0x0000' bus='0x{}' slot='0x00' \
         function='0x0'/></source></hostdev></devices></domain>",
        &gpu[..2]
    );
    let dir = sim.host().path("/etc/libvirt/qemu");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("win11.xml"), xml).unwrap();
    let binary = sim.root().join("usr/bin/true-pitcrew");
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    std::fs::write(&binary, "#!/bin/sh\n").unwrap();
    let vms = ["win11".to_string()];
    let options = pitcrew::InstallOptions {
        vms: &vms,
        binary: &binary,
        dry_run: true,
        reload: false,
    };
    let mut out = Vec::new();
    pitcrew::install(&sim.host(), &options, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn install_offers_keep_off_for_the_vms_gpus() {
    let sim = fixtures::radeon_beside_the_desktop();
    let out = install_says(&sim, "03:00.0");
    assert!(
        out.contains("VM 'win11' borrows 0000:03:00.0: while the desktop has it open, lending it stops the display manager"),
        "{out}"
    );
    assert!(out.contains("`pitcrew keep-off 0000:03:00.0`"), "{out}");
    keep_off(&sim, &["03:00.0"], false, false);
    let out = install_says(&sim, "03:00.0");
    assert!(
        out.contains("keeps off the desktop: lending it leaves your session running"),
        "{out}"
    );
}

#[test]
fn install_says_what_lending_the_only_display_costs() {
    let sim = fixtures::amd_only_gpu();
    let out = install_says(&sim, "03:00.0");
    assert!(out.contains("this host's only display: lending it stops the display manager, which ends the graphical session"), "{out}");
    assert!(!out.contains("pitcrew keep-off"), "{out}");
}
