//! sysfs writes change bindings the way the PCI core does.

use crate::common::{entries, errno, exists, link, park_for_vfio, read, run, LIMIT};
use pitcrew_sim::errno::{EACCES, EBUSY, ENODEV, ENOENT};
use pitcrew_sim::{fixtures, Event};

const GPU: &str = "0000:01:00.0";

#[test]
fn unbind_removes_links_and_drm_nodes() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let host = sim.host();
    host.write("/sys/bus/pci/drivers/nvidia/unbind", GPU, LIMIT)
        .unwrap();

    assert_eq!(sim.driver(GPU), None);
    assert!(!exists(&sim, "/sys/bus/pci/devices/0000:01:00.0/driver"));
    assert!(!exists(&sim, "/sys/bus/pci/drivers/nvidia/0000:01:00.0"));
    assert!(!exists(&sim, "/sys/bus/pci/devices/0000:01:00.0/drm"));
    assert!(!sim.dev_exists("/dev/dri/card1"));
    assert!(!sim.dev_exists("/dev/dri/renderD129"));
    assert!(!sim.dev_exists("/dev/nvidia0"));
    assert!(!exists(&sim, "/proc/driver/nvidia/gpus/0000:01:00.0"));
    // The iGPU and the module's own nodes stay.
    assert!(sim.dev_exists("/dev/dri/card0"));
    assert!(sim.dev_exists("/dev/nvidiactl"));
    assert_eq!(
        sim.events(),
        [Event::Write {
            path: "/sys/bus/pci/drivers/nvidia/unbind".into(),
            value: GPU.into()
        }]
    );
}

#[test]
fn unbind_from_another_driver_is_enodev() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let result = sim
        .host()
        .write("/sys/bus/pci/drivers/i915/unbind", GPU, LIMIT);
    assert_eq!(errno(result), Some(ENODEV));
    assert_eq!(sim.driver(GPU).as_deref(), Some("nvidia"));
}

#[test]
fn unbind_through_the_device_driver_link_is_recorded_as_written() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let path = "/sys/bus/pci/devices/0000:01:00.1/driver/unbind";
    sim.host().write(path, "0000:01:00.1\n", LIMIT).unwrap();
    assert_eq!(sim.driver("0000:01:00.1"), None);
    assert_eq!(sim.writes_to(path), ["0000:01:00.1\n"]);
}

#[test]
fn driver_override_sets_and_clears() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let host = sim.host();
    let attr = "/sys/bus/pci/devices/0000:01:00.0/driver_override";
    host.write(attr, "vfio-pci\n", LIMIT).unwrap();
    assert_eq!(read(&sim, attr), "vfio-pci\n");
    assert_eq!(sim.driver_override(GPU).as_deref(), Some("vfio-pci"));
    // Setting an override does not unbind.
    assert_eq!(sim.driver(GPU).as_deref(), Some("nvidia"));
    host.write(attr, "\n", LIMIT).unwrap();
    assert_eq!(read(&sim, attr), "(null)\n");
    assert_eq!(sim.driver_override(GPU), None);
    host.write(attr, "vfio-pci", LIMIT).unwrap();
    host.write(attr, "", LIMIT).unwrap();
    assert_eq!(sim.driver_override(GPU), None);
}

#[test]
fn bind_checks_binding_override_and_match() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let host = sim.host();
    let bind = "/sys/bus/pci/drivers/nvidia/bind";
    assert_eq!(errno(host.write(bind, GPU, LIMIT)), Some(EBUSY));
    host.write("/sys/bus/pci/drivers/nvidia/unbind", GPU, LIMIT)
        .unwrap();
    // i915 does not match an NVIDIA card.
    assert_eq!(
        errno(host.write("/sys/bus/pci/drivers/i915/bind", GPU, LIMIT)),
        Some(ENODEV)
    );
    host.write(
        "/sys/bus/pci/devices/0000:01:00.0/driver_override",
        "snd_hda_intel",
        LIMIT,
    )
    .unwrap();
    assert_eq!(errno(host.write(bind, GPU, LIMIT)), Some(ENODEV));
    assert_eq!(errno(host.write(bind, "0000:09:00.0", LIMIT)), Some(ENODEV));
    host.write(
        "/sys/bus/pci/devices/0000:01:00.0/driver_override",
        "\n",
        LIMIT,
    )
    .unwrap();
    host.write(bind, GPU, LIMIT).unwrap();
    assert_eq!(sim.driver(GPU).as_deref(), Some("nvidia"));
    // Same DRM minor as before.
    assert_eq!(
        entries(&sim, "/sys/bus/pci/devices/0000:01:00.0/drm"),
        ["card1", "renderD129"]
    );
    assert!(sim.dev_exists("/dev/dri/card1") && sim.dev_exists("/dev/nvidia0"));
    assert_eq!(
        link(&sim, "/sys/bus/pci/drivers/nvidia/0000:01:00.0").as_deref(),
        Some("../../../../devices/pci0000:00/0000:01:00.0")
    );
}

#[test]
fn bind_to_a_driver_not_loaded_finds_no_file() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let result = sim
        .host()
        .write("/sys/bus/pci/drivers/vfio-pci/bind", GPU, LIMIT);
    assert_eq!(errno(result), Some(ENOENT));
}

#[test]
fn probe_honours_the_override_and_makes_the_group_node() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let host = sim.host();
    assert!(run(&sim, "modprobe", &["vfio-pci"]).success);
    for bdf in ["0000:01:00.0", "0000:01:00.1"] {
        let driver = sim.driver(bdf).unwrap();
        host.write(format!("/sys/bus/pci/drivers/{driver}/unbind"), bdf, LIMIT)
            .unwrap();
        host.write(
            format!("/sys/bus/pci/devices/{bdf}/driver_override"),
            "vfio-pci",
            LIMIT,
        )
        .unwrap();
        host.write("/sys/bus/pci/drivers_probe", bdf, LIMIT)
            .unwrap();
        assert_eq!(sim.driver(bdf).as_deref(), Some("vfio-pci"));
    }
    assert!(sim.dev_exists("/dev/vfio/12"));
    assert!(sim.dev_exists("/dev/vfio/vfio"));
    assert!(!exists(&sim, "/sys/bus/pci/devices/0000:01:00.0/drm"));

    // The group node goes with the group's last vfio device.
    host.write(
        "/sys/bus/pci/drivers/vfio-pci/unbind",
        "0000:01:00.0",
        LIMIT,
    )
    .unwrap();
    assert!(sim.dev_exists("/dev/vfio/12"));
    host.write(
        "/sys/bus/pci/drivers/vfio-pci/unbind",
        "0000:01:00.1",
        LIMIT,
    )
    .unwrap();
    assert!(!sim.dev_exists("/dev/vfio/12"));
}

#[test]
fn probe_without_override_binds_the_native_driver() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let host = sim.host();
    host.write(
        "/sys/bus/pci/drivers/snd_hda_intel/unbind",
        "0000:01:00.1",
        LIMIT,
    )
    .unwrap();
    host.write("/sys/bus/pci/drivers_probe", "0000:01:00.1", LIMIT)
        .unwrap();
    assert_eq!(sim.driver("0000:01:00.1").as_deref(), Some("snd_hda_intel"));
}

#[test]
fn probe_with_an_unloaded_override_leaves_the_device_unbound() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let host = sim.host();
    park_for_vfio(&sim);
    host.write("/sys/bus/pci/drivers_probe", GPU, LIMIT)
        .unwrap();
    assert_eq!(sim.driver(GPU), None);
}

#[test]
fn new_id_is_recorded_and_changes_nothing() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    sim.host()
        .write("/sys/bus/pci/drivers/nvidia/new_id", "10de 2684", LIMIT)
        .unwrap();
    assert_eq!(
        sim.writes_to("/sys/bus/pci/drivers/nvidia/new_id"),
        ["10de 2684"]
    );
}

#[test]
fn read_only_and_missing_attributes_refuse_writes() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let host = sim.host();
    let vendor = "/sys/bus/pci/devices/0000:01:00.0/vendor";
    assert_eq!(errno(host.write(vendor, "0x1234", LIMIT)), Some(EACCES));
    assert_eq!(read(&sim, vendor), "0x10de\n");
    assert_eq!(
        errno(host.write("/sys/bus/pci/devices/0000:01:00.0/remove", "1", LIMIT)),
        Some(ENOENT)
    );
    assert_eq!(sim.events().len(), 2);
}
