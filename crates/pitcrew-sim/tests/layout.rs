//! The rendered tree matches the kernel's layout the engine reads.

use crate::common::{assert_modules_consistent, entries, exists, link, read};
use pitcrew_sim::fixtures;

#[test]
fn device_attributes_are_rendered_like_sysfs() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    assert_eq!(
        link(&sim, "/sys/bus/pci/devices/0000:01:00.0").as_deref(),
        Some("../../../devices/pci0000:00/0000:01:00.0")
    );
    let gpu = "/sys/bus/pci/devices/0000:01:00.0";
    assert_eq!(read(&sim, &format!("{gpu}/vendor")), "0x10de\n");
    assert_eq!(read(&sim, &format!("{gpu}/device")), "0x2684\n");
    assert_eq!(read(&sim, &format!("{gpu}/class")), "0x030000\n");
    assert_eq!(read(&sim, &format!("{gpu}/subsystem_vendor")), "0x10de\n");
    assert_eq!(read(&sim, &format!("{gpu}/driver_override")), "(null)\n");
    assert_eq!(read(&sim, &format!("{gpu}/boot_vga")), "0\n");
    assert_eq!(
        read(&sim, "/sys/bus/pci/devices/0000:00:02.0/boot_vga"),
        "1\n"
    );
    assert!(!exists(&sim, "/sys/bus/pci/devices/0000:01:00.1/boot_vga"));
    assert_eq!(
        link(&sim, &format!("{gpu}/iommu_group")).as_deref(),
        Some("../../../kernel/iommu_groups/12")
    );
    assert_eq!(
        link(&sim, &format!("{gpu}/driver")).as_deref(),
        Some("../../../bus/pci/drivers/nvidia")
    );
    assert_eq!(
        entries(&sim, &format!("{gpu}/drm")),
        ["card1", "renderD129"]
    );
    assert!(!exists(&sim, "/sys/bus/pci/devices/0000:00:01.0/driver"));
    // Links resolve through the tree as the kernel's do.
    let group = sim
        .root()
        .join("sys/bus/pci/devices/0000:01:00.0/iommu_group");
    assert!(group.join("devices/0000:01:00.3").exists());
    let module = sim
        .root()
        .join("sys/bus/pci/devices/0000:01:00.2/driver/module");
    assert!(module
        .canonicalize()
        .unwrap()
        .ends_with("sys/module/xhci_pci"));
}

#[test]
fn iommu_groups_list_their_devices() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    assert_eq!(
        entries(&sim, "/sys/kernel/iommu_groups/12/devices"),
        [
            "0000:01:00.0",
            "0000:01:00.1",
            "0000:01:00.2",
            "0000:01:00.3"
        ]
    );
    assert_eq!(
        link(&sim, "/sys/kernel/iommu_groups/12/devices/0000:01:00.1").as_deref(),
        Some("../../../../devices/pci0000:00/0000:01:00.1")
    );
    let device = sim
        .root()
        .join("sys/kernel/iommu_groups/12/devices/0000:01:00.1/vendor");
    assert!(device.exists());
}

#[test]
fn drivers_link_their_module_and_devices() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let xhci = "/sys/bus/pci/drivers/xhci_hcd";
    assert_eq!(
        link(&sim, &format!("{xhci}/module")).as_deref(),
        Some("../../../../module/xhci_pci")
    );
    for attr in ["bind", "unbind", "new_id"] {
        assert!(exists(&sim, &format!("{xhci}/{attr}")));
    }
    assert_eq!(
        link(&sim, &format!("{xhci}/0000:01:00.2")).as_deref(),
        Some("../../../../devices/pci0000:00/0000:01:00.2")
    );
    assert!(sim
        .root()
        .join("sys/bus/pci/drivers/xhci_hcd/module")
        .exists());
    assert!(exists(&sim, "/sys/bus/pci/drivers_probe"));
    assert!(!exists(&sim, "/sys/bus/pci/drivers/vfio-pci"));
}

#[test]
fn builtin_modules_have_a_dir_but_no_refcnt_nor_proc_line() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    assert!(exists(&sim, "/sys/module/xhci_pci"));
    assert!(!exists(&sim, "/sys/module/xhci_pci/refcnt"));
    assert!(!read(&sim, "/proc/modules").contains("xhci_pci"));
    assert!(sim.module_loaded("xhci_pci"));
}

#[test]
fn proc_modules_reads_like_the_kernel() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let text = read(&sim, "/proc/modules");
    // Dependents (2) plus Xorg, nvidia-persistenced and python3.
    assert!(
        text.contains("\nnvidia 54308864 5 nvidia_uvm,nvidia_modeset, Live 0x0000000000000000\n"),
        "{text}"
    );
    assert!(text.contains("\nsnd_hda_intel 57344 0 - Live 0x0000000000000000\n"));
    assert!(!text.contains("vfio"));
    assert_modules_consistent(&sim);
}

#[test]
fn every_fixture_is_self_consistent() {
    for sim in [
        fixtures::nvidia_with_audio_and_usbc(),
        fixtures::amd_with_audio(),
        fixtures::apu_and_dgpu_sharing_amdgpu(),
        fixtures::two_identical_nvidia(),
        fixtures::group_with_unrelated_device(),
    ] {
        assert_modules_consistent(&sim);
        assert!(sim.events().is_empty());
        assert!(exists(&sim, "/etc/systemd/system/display-manager.service"));
    }
}

#[test]
fn processes_show_comm_cmdline_cgroup_and_host_absolute_fds() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    assert_eq!(read(&sim, "/proc/1200/comm"), "Xorg\n");
    assert!(read(&sim, "/proc/1200/cmdline").starts_with("/usr/lib/xorg/Xorg\0:0\0"));
    assert_eq!(
        read(&sim, "/proc/1200/cgroup"),
        "0::/system.slice/lightdm.service\n"
    );
    assert_eq!(
        read(&sim, "/proc/2300/cgroup"),
        "0::/user.slice/user-1000.slice/session-2.scope\n"
    );
    let fds: Vec<String> = entries(&sim, "/proc/1200/fd")
        .iter()
        .filter_map(|n| link(&sim, &format!("/proc/1200/fd/{n}")))
        .collect();
    for node in [
        "/dev/dri/card0",
        "/dev/dri/card1",
        "/dev/nvidiactl",
        "/dev/nvidia0",
    ] {
        assert!(fds.iter().any(|f| f == node), "{fds:?}");
    }
    assert_eq!(
        link(&sim, "/proc/2400/fd/3").as_deref(),
        Some("/dev/dri/renderD128")
    );
}

#[test]
fn nodes_units_and_nvidia_proc_entries_exist() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    for node in [
        "/dev/dri/card0",
        "/dev/dri/renderD128",
        "/dev/dri/card1",
        "/dev/dri/renderD129",
        "/dev/nvidia0",
        "/dev/nvidiactl",
        "/dev/nvidia-modeset",
        "/dev/nvidia-uvm",
    ] {
        assert!(sim.dev_exists(node), "{node}");
    }
    assert!(!sim.dev_exists("/dev/vfio/vfio"));
    let info = read(&sim, "/proc/driver/nvidia/gpus/0000:01:00.0/information");
    assert!(info.contains("Device Minor: \t 0\n"), "{info}");
    assert_eq!(
        link(&sim, "/etc/systemd/system/display-manager.service").as_deref(),
        Some("/lib/systemd/system/lightdm.service")
    );
    assert_eq!(
        read(
            &sim,
            "/sys/fs/cgroup/system.slice/lightdm.service/cgroup.procs"
        ),
        "1150\n1200\n"
    );
    assert!(sim.unit_active("nvidia-persistenced"));
    assert_eq!(sim.unit_pids("nvidia-persistenced.service"), [900]);
}

#[test]
fn two_identical_cards_have_their_own_minor_and_card() {
    let sim = fixtures::two_identical_nvidia();
    let info = read(&sim, "/proc/driver/nvidia/gpus/0000:02:00.0/information");
    assert!(info.contains("Device Minor: \t 1\n"));
    assert_eq!(
        entries(&sim, "/sys/bus/pci/devices/0000:02:00.0/drm"),
        ["card1", "renderD129"]
    );
    assert!(sim.dev_exists("/dev/nvidia1"));
}

#[test]
fn the_nvme_node_exists_and_pins_nvme() {
    let sim = fixtures::group_with_unrelated_device();
    assert!(sim.dev_exists("/dev/nvme0n1"));
    assert_eq!(sim.module_refcnt("nvme"), Some(1));
    assert_eq!(
        read(&sim, "/sys/bus/pci/devices/0000:06:00.0/class"),
        "0x010802\n"
    );
}

#[test]
fn a_custom_machine_builds_from_the_builder() {
    use pitcrew_sim::{Builder, DeviceSpec, ModuleSpec, ProcessTemplate, SESSION_SCOPE};
    let sim = Builder::new()
        .module(
            ModuleSpec::new("bochs")
                .drivers(&["bochs-drm"])
                .drm_for(&["bochs-drm"]),
        )
        .device(
            DeviceSpec::new("0000:00:02.0", 0x1234, 0x1111, 0x030000)
                .driver("bochs-drm")
                .group(3)
                .drm_card(0)
                .boot_vga(true),
        )
        .process(
            77,
            SESSION_SCOPE,
            ProcessTemplate::new("weston").holds_every("/dev/dri/card"),
        )
        .build();
    assert_eq!(sim.driver("0000:00:02.0").as_deref(), Some("bochs-drm"));
    assert_eq!(
        link(&sim, "/sys/bus/pci/drivers/bochs-drm/module").as_deref(),
        Some("../../../../module/bochs")
    );
    assert_eq!(sim.process_fds(77), ["/dev/dri/card0"]);
    assert_eq!(sim.module_refcnt("bochs"), Some(1));
    assert!(!exists(&sim, "/etc/systemd/system/display-manager.service"));
    assert_modules_consistent(&sim);
}

#[test]
#[should_panic(expected = "no module registers")]
fn a_device_on_an_unknown_driver_is_a_test_bug() {
    use pitcrew_sim::{Builder, DeviceSpec};
    Builder::new()
        .device(DeviceSpec::new("0000:00:02.0", 0x1234, 0x1111, 0x030000).driver("bochs-drm"))
        .build();
}
