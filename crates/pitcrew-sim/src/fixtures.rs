//! Ready-made machines, each a plausible desktop described in its doc comment.
//!
//! Common to all: modules are loaded in dependency order (so /proc/modules lists them newest
//! first like a booted kernel), the vfio stack (`vfio`, `vfio_pci_core`, `vfio_pci` providing
//! driver `vfio-pci`) is known but not loaded, and DRM nodes exist only while a DRM module
//! drives the card (`nvidia_drm` for `nvidia`).

use crate::builder::{
    unit_cgroup, Builder, DeviceSpec, ModuleSpec, ProcessTemplate, UnitSpec, SESSION_SCOPE,
};
use crate::SimHost;

const VGA: u32 = 0x030000;
const HDA: u32 = 0x040300;
const XHCI: u32 = 0x0c0330;
const XORG_ARGS: &[&str] = &[
    "/usr/lib/xorg/Xorg",
    ":0",
    "-seat",
    "seat0",
    "-nolisten",
    "tcp",
    "vt7",
    "-novtswitch",
];

fn drm() -> ModuleSpec {
    ModuleSpec::new("drm").size(614400)
}

fn i915() -> ModuleSpec {
    ModuleSpec::new("i915")
        .deps(&["drm"])
        .drivers(&["i915"])
        .drm_for(&["i915"])
        .size(3457024)
}

fn amdgpu() -> ModuleSpec {
    ModuleSpec::new("amdgpu")
        .deps(&["drm"])
        .drivers(&["amdgpu"])
        .drm_for(&["amdgpu"])
        .size(12189696)
}

fn snd_hda_intel() -> ModuleSpec {
    ModuleSpec::new("snd_hda_intel")
        .drivers(&["snd_hda_intel"])
        .size(57344)
}

/// nvidia, nvidia_modeset, nvidia_uvm, nvidia_drm (needs `drm` too).
fn nvidia_stack() -> Vec<ModuleSpec> {
    vec![
        ModuleSpec::new("nvidia")
            .drivers(&["nvidia"])
            .nodes(&["/dev/nvidiactl"])
            .size(54308864),
        ModuleSpec::new("nvidia_modeset")
            .deps(&["nvidia"])
            .nodes(&["/dev/nvidia-modeset"])
            .size(1310720),
        ModuleSpec::new("nvidia_uvm")
            .deps(&["nvidia"])
            .nodes(&["/dev/nvidia-uvm"])
            .size(1523712),
        ModuleSpec::new("nvidia_drm")
            .deps(&["nvidia_modeset", "drm"])
            .drm_for(&["nvidia"])
            .size(98304),
    ]
}

/// Known, not loaded.
fn vfio_stack() -> Vec<ModuleSpec> {
    vec![
        ModuleSpec::new("vfio")
            .nodes(&["/dev/vfio/vfio"])
            .size(69632)
            .unloaded(),
        ModuleSpec::new("vfio_pci_core")
            .deps(&["vfio"])
            .size(86016)
            .unloaded(),
        ModuleSpec::new("vfio_pci")
            .deps(&["vfio_pci_core", "vfio"])
            .drivers(&["vfio-pci"])
            .size(16384)
            .unloaded(),
    ]
}

fn intel_igpu() -> DeviceSpec {
    DeviceSpec::new("0000:00:02.0", 0x8086, 0xa780, VGA)
        .subsystem(0x1043, 0x8882)
        .driver("i915")
        .group(0)
        .drm_card(0)
        .boot_vga(true)
}

fn onboard_audio() -> DeviceSpec {
    DeviceSpec::new("0000:00:1f.3", 0x8086, 0x7a50, HDA)
        .subsystem(0x1043, 0x8882)
        .driver("snd_hda_intel")
        .group(15)
}

/// A display manager unit whose restart spawns its daemon and an Xorg holding every card
/// present at that moment.
fn display_manager(unit: &str, daemon: &str) -> UnitSpec {
    UnitSpec::new(unit)
        .running()
        .spawns(ProcessTemplate::new(daemon).cmdline(&[&format!("/usr/sbin/{daemon}")]))
        .spawns(
            ProcessTemplate::new("Xorg")
                .cmdline(XORG_ARGS)
                .holds_every("/dev/dri/card"),
        )
}

fn xorg() -> ProcessTemplate {
    ProcessTemplate::new("Xorg").cmdline(XORG_ARGS)
}

/// An Intel desktop with an RTX 4090-class card whose IOMMU group 12 also holds its HDMI
/// audio, USB-C controller and UCSI function.
///
/// | bdf | ids | class | driver (module) | group | extra |
/// |---|---|---|---|---|---|
/// | 0000:00:01.0 | 8086:a70d | 0x060400 root port | none | 1 | |
/// | 0000:00:02.0 | 8086:a780 | 0x030000 | i915 | 0 | card0, boot_vga 1 |
/// | 0000:00:14.0 | 8086:7a60 | 0x0c0330 | xhci_hcd (xhci_pci, builtin) | 8 | |
/// | 0000:00:1f.3 | 8086:7a50 | 0x040300 | snd_hda_intel | 15 | |
/// | 0000:01:00.0 | 10de:2684 | 0x030000 | nvidia | 12 | card1, minor 0, boot_vga 0 |
/// | 0000:01:00.1 | 10de:22ba | 0x040300 | snd_hda_intel | 12 | |
/// | 0000:01:00.2 | 10de:1ad8 | 0x0c0330 | xhci_hcd (xhci_pci, builtin) | 12 | |
/// | 0000:01:00.3 | 10de:1ad9 | 0x0c8000 | nvidia-gpu (i2c_nvidia_gpu) | 12 | |
///
/// Loaded: drm, i915, nvidia, nvidia_modeset, nvidia_uvm, nvidia_drm, snd_hda_intel,
/// i2c_nvidia_gpu; xhci_pci is builtin; the vfio stack is not loaded.
///
/// Processes: `lightdm` 1150 and `Xorg` 1200 in lightdm.service (Xorg holds card0, card1,
/// nvidiactl, nvidia0, nvidia-modeset); `nvidia-persistenced` 900 in its unit (nvidiactl,
/// nvidia0); in the user session `python3` 2300 (nvidia0, nvidiactl, nvidia-uvm) and `firefox`
/// 2400 (renderD128, the iGPU: to be left alone).
///
/// Units: lightdm.service (the display manager; restarting spawns lightdm and an Xorg holding
/// every card then present) and nvidia-persistenced.service (restarting spawns one holding
/// nvidiactl and every /dev/nvidiaN then present), both running.
pub fn nvidia_with_audio_and_usbc() -> SimHost {
    Builder::new()
        .modules([drm(), i915()])
        .modules(nvidia_stack())
        .module(snd_hda_intel())
        .module(ModuleSpec::new("xhci_pci").drivers(&["xhci_hcd"]).builtin())
        .module(
            ModuleSpec::new("i2c_nvidia_gpu")
                .drivers(&["nvidia-gpu"])
                .size(12288),
        )
        .modules(vfio_stack())
        .device(DeviceSpec::new("0000:00:01.0", 0x8086, 0xa70d, 0x060400).group(1))
        .device(intel_igpu())
        .device(
            DeviceSpec::new("0000:00:14.0", 0x8086, 0x7a60, XHCI)
                .subsystem(0x1043, 0x8882)
                .driver("xhci_hcd")
                .group(8),
        )
        .device(onboard_audio())
        .device(
            DeviceSpec::new("0000:01:00.0", 0x10de, 0x2684, VGA)
                .subsystem(0x10de, 0x167c)
                .driver("nvidia")
                .group(12)
                .drm_card(1)
                .nvidia_minor(0),
        )
        .device(
            DeviceSpec::new("0000:01:00.1", 0x10de, 0x22ba, HDA)
                .subsystem(0x10de, 0x167c)
                .driver("snd_hda_intel")
                .group(12),
        )
        .device(
            DeviceSpec::new("0000:01:00.2", 0x10de, 0x1ad8, XHCI)
                .subsystem(0x10de, 0x167c)
                .driver("xhci_hcd")
                .group(12),
        )
        .device(
            DeviceSpec::new("0000:01:00.3", 0x10de, 0x1ad9, 0x0c8000)
                .subsystem(0x10de, 0x167c)
                .driver("nvidia-gpu")
                .group(12),
        )
        .unit(display_manager("lightdm.service", "lightdm"))
        .display_manager("lightdm.service")
        .unit(
            UnitSpec::new("nvidia-persistenced.service")
                .running()
                .spawns(persistenced()),
        )
        .process(
            1150,
            &unit_cgroup("lightdm.service"),
            ProcessTemplate::new("lightdm").cmdline(&["/usr/sbin/lightdm"]),
        )
        .process(
            1200,
            &unit_cgroup("lightdm.service"),
            xorg()
                .holds("/dev/dri/card0")
                .holds("/dev/dri/card1")
                .holds("/dev/nvidiactl")
                .holds("/dev/nvidia0")
                .holds("/dev/nvidia-modeset"),
        )
        .process(
            900,
            &unit_cgroup("nvidia-persistenced.service"),
            persistenced(),
        )
        .process(
            2300,
            SESSION_SCOPE,
            ProcessTemplate::new("python3")
                .cmdline(&["python3", "train.py"])
                .holds("/dev/nvidia0")
                .holds("/dev/nvidiactl")
                .holds("/dev/nvidia-uvm"),
        )
        .process(
            2400,
            SESSION_SCOPE,
            ProcessTemplate::new("firefox")
                .cmdline(&["/usr/lib/firefox/firefox"])
                .holds("/dev/dri/renderD128"),
        )
        .build()
}

fn persistenced() -> ProcessTemplate {
    ProcessTemplate::new("nvidia-persistenced")
        .cmdline(&[
            "/usr/bin/nvidia-persistenced",
            "--user",
            "nvidia-persistenced",
        ])
        .holds("/dev/nvidiactl")
        .holds_every("/dev/nvidia")
}

/// An Intel desktop with a Radeon RX 6800-class card and its HDMI audio in IOMMU group 14.
///
/// | bdf | ids | class | driver | group | extra |
/// |---|---|---|---|---|---|
/// | 0000:00:02.0 | 8086:a780 | 0x030000 | i915 | 0 | card0, boot_vga 1 |
/// | 0000:00:1f.3 | 8086:7a50 | 0x040300 | snd_hda_intel | 15 | |
/// | 0000:03:00.0 | 1002:73bf | 0x030000 | amdgpu | 14 | card1, boot_vga 0 |
/// | 0000:03:00.1 | 1002:ab28 | 0x040300 | snd_hda_intel | 14 | |
///
/// Loaded: drm, i915, amdgpu, snd_hda_intel; the vfio stack is not loaded.
///
/// gdm.service is the display manager (running: `gdm` 1100; restarting spawns `gdm` and an
/// Xorg holding every card present). The user's Wayland `gnome-shell` 2100 lives in the session
/// scope, not in gdm's cgroup, holding card0 and card1: stopping gdm does not end it.
pub fn amd_with_audio() -> SimHost {
    Builder::new()
        .modules([drm(), i915(), amdgpu(), snd_hda_intel()])
        .modules(vfio_stack())
        .device(intel_igpu())
        .device(onboard_audio())
        .device(
            DeviceSpec::new("0000:03:00.0", 0x1002, 0x73bf, VGA)
                .subsystem(0x1002, 0x0e3a)
                .driver("amdgpu")
                .group(14)
                .drm_card(1),
        )
        .device(
            DeviceSpec::new("0000:03:00.1", 0x1002, 0xab28, HDA)
                .subsystem(0x1002, 0xab28)
                .driver("snd_hda_intel")
                .group(14),
        )
        .unit(display_manager("gdm.service", "gdm"))
        .display_manager("gdm.service")
        .process(
            1100,
            &unit_cgroup("gdm.service"),
            ProcessTemplate::new("gdm").cmdline(&["/usr/sbin/gdm"]),
        )
        .process(
            2100,
            SESSION_SCOPE,
            ProcessTemplate::new("gnome-shell")
                .cmdline(&["/usr/bin/gnome-shell"])
                .holds("/dev/dri/card0")
                .holds("/dev/dri/card1"),
        )
        .build()
}

/// A Ryzen APU desktop whose iGPU and dGPU both use amdgpu, so the module can never be
/// unloaded to free the dGPU: only unbinding the one device works.
///
/// | bdf | ids | class | driver | group | extra |
/// |---|---|---|---|---|---|
/// | 0000:03:00.0 | 1002:73bf | 0x030000 | amdgpu | 14 | card1, boot_vga 0 |
/// | 0000:03:00.1 | 1002:ab28 | 0x040300 | snd_hda_intel | 14 | |
/// | 0000:0c:00.0 | 1002:1638 | 0x030000 | amdgpu | 20 | card0, boot_vga 1 |
/// | 0000:0c:00.1 | 1002:1637 | 0x040300 | snd_hda_intel | 21 | |
///
/// Loaded: drm, amdgpu, snd_hda_intel; the vfio stack is not loaded.
///
/// sddm.service is the display manager (running: `sddm` 1100 and `Xorg` 1200 holding card0
/// and card1; restarting spawns sddm and an Xorg holding every card present).
pub fn apu_and_dgpu_sharing_amdgpu() -> SimHost {
    Builder::new()
        .modules([drm(), amdgpu(), snd_hda_intel()])
        .modules(vfio_stack())
        .device(
            DeviceSpec::new("0000:03:00.0", 0x1002, 0x73bf, VGA)
                .subsystem(0x1002, 0x0e3a)
                .driver("amdgpu")
                .group(14)
                .drm_card(1),
        )
        .device(
            DeviceSpec::new("0000:03:00.1", 0x1002, 0xab28, HDA)
                .subsystem(0x1002, 0xab28)
                .driver("snd_hda_intel")
                .group(14),
        )
        .device(
            DeviceSpec::new("0000:0c:00.0", 0x1002, 0x1638, VGA)
                .subsystem(0x1043, 0x16c2)
                .driver("amdgpu")
                .group(20)
                .drm_card(0)
                .boot_vga(true),
        )
        .device(
            DeviceSpec::new("0000:0c:00.1", 0x1002, 0x1637, HDA)
                .subsystem(0x1043, 0x16c2)
                .driver("snd_hda_intel")
                .group(21),
        )
        .unit(display_manager("sddm.service", "sddm"))
        .display_manager("sddm.service")
        .process(
            1100,
            &unit_cgroup("sddm.service"),
            ProcessTemplate::new("sddm").cmdline(&["/usr/bin/sddm"]),
        )
        .process(
            1200,
            &unit_cgroup("sddm.service"),
            xorg().holds("/dev/dri/card0").holds("/dev/dri/card1"),
        )
        .build()
}

/// Two identical 10de:2684 cards: the engine must tell them apart by address, not by ids.
///
/// | bdf | ids | class | driver | group | extra |
/// |---|---|---|---|---|---|
/// | 0000:01:00.0 | 10de:2684 | 0x030000 | nvidia | 12 | card0, minor 0, boot_vga 1 |
/// | 0000:01:00.1 | 10de:22ba | 0x040300 | snd_hda_intel | 12 | |
/// | 0000:02:00.0 | 10de:2684 | 0x030000 | nvidia | 13 | card1, minor 1, boot_vga 0 |
/// | 0000:02:00.1 | 10de:22ba | 0x040300 | snd_hda_intel | 13 | |
///
/// Loaded: drm, nvidia, nvidia_modeset, nvidia_uvm, nvidia_drm, snd_hda_intel; the vfio stack
/// is not loaded.
///
/// lightdm.service is the display manager (running: `lightdm` 1150 and `Xorg` 1200 holding
/// card0, card1, nvidiactl, nvidia0, nvidia1, nvidia-modeset; restarting spawns lightdm and an
/// Xorg holding every card present).
pub fn two_identical_nvidia() -> SimHost {
    let mut b = Builder::new()
        .module(drm())
        .modules(nvidia_stack())
        .module(snd_hda_intel())
        .modules(vfio_stack());
    for (bus, n) in [(1u32, 0u32), (2, 1)] {
        b = b
            .device(
                DeviceSpec::new(&format!("0000:{bus:02x}:00.0"), 0x10de, 0x2684, VGA)
                    .subsystem(0x10de, 0x167c)
                    .driver("nvidia")
                    .group(11 + bus)
                    .drm_card(n)
                    .nvidia_minor(n)
                    .boot_vga(n == 0),
            )
            .device(
                DeviceSpec::new(&format!("0000:{bus:02x}:00.1"), 0x10de, 0x22ba, HDA)
                    .subsystem(0x10de, 0x167c)
                    .driver("snd_hda_intel")
                    .group(11 + bus),
            );
    }
    b.unit(display_manager("lightdm.service", "lightdm"))
        .display_manager("lightdm.service")
        .process(
            1150,
            &unit_cgroup("lightdm.service"),
            ProcessTemplate::new("lightdm").cmdline(&["/usr/sbin/lightdm"]),
        )
        .process(
            1200,
            &unit_cgroup("lightdm.service"),
            xorg()
                .holds("/dev/dri/card0")
                .holds("/dev/dri/card1")
                .holds("/dev/nvidiactl")
                .holds("/dev/nvidia0")
                .holds("/dev/nvidia1")
                .holds("/dev/nvidia-modeset"),
        )
        .build()
}

/// A GTX 1080-class card whose IOMMU group 16 also holds an NVMe controller in use: handing
/// the group to vfio-pci would take the disk away, so the engine must refuse.
///
/// | bdf | ids | class | driver (module) | group | extra |
/// |---|---|---|---|---|---|
/// | 0000:00:02.0 | 8086:a780 | 0x030000 | i915 | 0 | card0, boot_vga 1 |
/// | 0000:05:00.0 | 10de:1b80 | 0x030000 | nvidia | 16 | card1, minor 0 |
/// | 0000:05:00.1 | 10de:10f0 | 0x040300 | snd_hda_intel | 16 | |
/// | 0000:06:00.0 | 144d:a808 | 0x010802 | nvme | 16 | /dev/nvme0n1 |
///
/// Loaded: drm, i915, nvidia, nvidia_modeset, nvidia_uvm, nvidia_drm, snd_hda_intel,
/// nvme_core, nvme; the vfio stack is not loaded.
///
/// lightdm.service is the display manager (running: `lightdm` 1150 and `Xorg` 1200 holding
/// card0 and card1); `fio` 3000 in the user session holds /dev/nvme0n1.
pub fn group_with_unrelated_device() -> SimHost {
    Builder::new()
        .modules([drm(), i915()])
        .modules(nvidia_stack())
        .module(snd_hda_intel())
        .module(ModuleSpec::new("nvme_core").size(204800))
        .module(
            ModuleSpec::new("nvme")
                .deps(&["nvme_core"])
                .drivers(&["nvme"])
                .size(57344),
        )
        .modules(vfio_stack())
        .device(intel_igpu())
        .device(
            DeviceSpec::new("0000:05:00.0", 0x10de, 0x1b80, VGA)
                .subsystem(0x10de, 0x119e)
                .driver("nvidia")
                .group(16)
                .drm_card(1)
                .nvidia_minor(0),
        )
        .device(
            DeviceSpec::new("0000:05:00.1", 0x10de, 0x10f0, HDA)
                .subsystem(0x10de, 0x119e)
                .driver("snd_hda_intel")
                .group(16),
        )
        .device(
            DeviceSpec::new("0000:06:00.0", 0x144d, 0xa808, 0x010802)
                .subsystem(0x144d, 0xa801)
                .driver("nvme")
                .group(16)
                .node("/dev/nvme0n1"),
        )
        .unit(display_manager("lightdm.service", "lightdm"))
        .display_manager("lightdm.service")
        .process(
            1150,
            &unit_cgroup("lightdm.service"),
            ProcessTemplate::new("lightdm").cmdline(&["/usr/sbin/lightdm"]),
        )
        .process(
            1200,
            &unit_cgroup("lightdm.service"),
            xorg().holds("/dev/dri/card0").holds("/dev/dri/card1"),
        )
        .process(
            3000,
            SESSION_SCOPE,
            ProcessTemplate::new("fio")
                .cmdline(&["fio", "--filename=/dev/nvme0n1", "--rw=randread"])
                .holds("/dev/nvme0n1"),
        )
        .build()
}
