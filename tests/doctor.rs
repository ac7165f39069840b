//! The simulated hosts `pitcrew doctor` is tested on: a healthy one where every check is ok, and
//! one per thing that can be wrong (a [`Machine`] field changed), set up as `pitcrew install`
//! leaves them. The IOMMU and GPU checks are in doctor_gpu.rs; what is set up around them (hook,
//! unit, libvirt daemon, config, VMs) in doctor_setup.rs.

use pitcrew::{install, Check, InstallOptions, Level, Report};
use pitcrew_sim::{
    unit_cgroup, Builder, DeviceSpec, ModuleSpec, ProcessTemplate, SimHost, UnitSpec,
};

pub(crate) const GPU: &str = "0000:01:00.0";
pub(crate) const VGA: u32 = 0x030000;
const HDA: u32 = 0x040300;
pub(crate) const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// An Intel desktop whose iGPU runs the desktop and whose NVIDIA card (with its HDMI audio) is
/// for the VM. Each field is one way the host can differ from the healthy one.
#[derive(Clone)]
pub(crate) struct Machine {
    pub(crate) iommu: bool,
    pub(crate) cpu: &'static str,
    pub(crate) cmdline: &'static str,
    pub(crate) vfio: bool,
    pub(crate) audio_group: u32,
    /// An NVMe drive in another slot of the GPU's group.
    pub(crate) intruder: bool,
    pub(crate) reset: Option<&'static str>,
    pub(crate) bar1: u64,
    pub(crate) persistenced: bool,
    pub(crate) fbdev: &'static str,
    /// Xorg holds the NVIDIA card too, not just the iGPU.
    pub(crate) desktop_on_gpu: bool,
    /// PipeWire has the card's HDMI audio open.
    pub(crate) sound_server: bool,
    /// The libvirt daemon's unit and when it started (seconds after boot; the machine booted an
    /// hour before it was built, so 7200 is after anything a test installs).
    pub(crate) daemon: Option<(&'static str, u64)>,
}

pub(crate) const HEALTHY: Machine = Machine {
    iommu: true,
    cpu: "GenuineIntel",
    cmdline: "BOOT_IMAGE=/boot/vmlinuz root=/dev/nvme0n1p2 ro quiet intel_iommu=on iommu=pt",
    vfio: true,
    audio_group: 12,
    intruder: false,
    reset: Some("flr bus"),
    bar1: 256 * MIB,
    persistenced: false,
    fbdev: "N",
    desktop_on_gpu: false,
    sound_server: false,
    daemon: Some(("libvirtd.service", 7200)),
};

pub(crate) fn build(m: &Machine) -> SimHost {
    let group = |g: u32| if m.iommu { Some(g) } else { None };
    let grouped = |d: DeviceSpec, g: u32| match group(g) {
        Some(g) => d.group(g),
        None => d,
    };
    let mut b = Builder::new()
        .cpu_vendor(m.cpu)
        .kernel_cmdline(m.cmdline)
        .module(ModuleSpec::new("drm"))
        .module(
            ModuleSpec::new("i915")
                .deps(&["drm"])
                .drivers(&["i915"])
                .drm_for(&["i915"]),
        )
        .module(
            ModuleSpec::new("nvidia")
                .drivers(&["nvidia"])
                .nodes(&["/dev/nvidiactl"]),
        )
        .module(ModuleSpec::new("nvidia_modeset").deps(&["nvidia"]))
        .module(
            ModuleSpec::new("nvidia_drm")
                .deps(&["nvidia_modeset", "drm"])
                .drm_for(&["nvidia"])
                .param("modeset", "Y")
                .param("fbdev", m.fbdev),
        )
        .module(ModuleSpec::new("snd_hda_intel").drivers(&["snd_hda_intel"]))
        .module(ModuleSpec::new("nvme").drivers(&["nvme"]))
        .device(grouped(
            DeviceSpec::new("0000:00:02.0", 0x8086, 0xa780, VGA)
                .driver("i915")
                .drm_card(0)
                .boot_vga(true)
                .reset_method("flr"),
            0,
        ));
    if m.vfio {
        b = b
            .module(ModuleSpec::new("vfio").unloaded())
            .module(ModuleSpec::new("vfio_pci_core").deps(&["vfio"]).unloaded())
            .module(
                ModuleSpec::new("vfio_pci")
                    .deps(&["vfio_pci_core"])
                    .drivers(&["vfio-pci"])
                    .unloaded(),
            );
    }
    let mut gpu = DeviceSpec::new(GPU, 0x10de, 0x2684, VGA)
        .driver("nvidia")
        .drm_card(1)
        .nvidia_minor(0)
        .bar(0, 16 * MIB)
        .bar(1, m.bar1)
        .bar(3, 32 * MIB);
    if m.bar1 > 256 * MIB {
        gpu = gpu.resizable(1, 0xffc0);
    }
    if let Some(methods) = m.reset {
        gpu = gpu.reset_method(methods);
    }
    b = b.device(grouped(gpu, 12)).device(grouped(
        DeviceSpec::new("0000:01:00.1", 0x10de, 0x22ba, HDA)
            .driver("snd_hda_intel")
            .sound_card(1)
            .reset_method("flr"),
        m.audio_group,
    ));
    if m.intruder {
        b = b.device(grouped(
            DeviceSpec::new("0000:02:00.0", 0x144d, 0xa80a, 0x010802).driver("nvme"),
            12,
        ));
    }
    let xorg = ProcessTemplate::new("Xorg").holds("/dev/dri/card0");
    let xorg = if m.desktop_on_gpu {
        xorg.holds("/dev/dri/card1")
    } else {
        xorg
    };
    b = b
        .unit(UnitSpec::new("lightdm.service").running())
        .display_manager("lightdm.service")
        .process(1200, &unit_cgroup("lightdm.service"), xorg);
    if m.sound_server {
        b = b.process(
            2500,
            pitcrew_sim::SESSION_SCOPE,
            ProcessTemplate::new("pipewire")
                .holds("/dev/snd/controlC1")
                .holds("/dev/snd/pcmC1D3p"),
        );
    }
    if m.persistenced {
        b = b
            .unit(UnitSpec::new("nvidia-persistenced.service").running())
            .process(
                900,
                &unit_cgroup("nvidia-persistenced.service"),
                ProcessTemplate::new("nvidia-persistenced").holds("/dev/nvidiactl"),
            );
    }
    if let Some((unit, started)) = m.daemon {
        let name = unit.trim_end_matches(".service");
        b = b.unit(UnitSpec::new(unit).running()).process(
            700,
            &unit_cgroup(unit),
            ProcessTemplate::new(name).started(started),
        );
    }
    b.build()
}

/// `pitcrew install --vm win11` staged on the machine, win11 defined with the card and its
/// audio, and the card kept off the desktop.
pub(crate) fn set_up(sim: &SimHost) {
    let binary = sim.root().with_file_name("build-pitcrew");
    std::fs::write(&binary, "#!/bin/sh\n").unwrap();
    let opts = InstallOptions {
        vms: &["win11".to_string()],
        binary: &binary,
        dry_run: false,
        reload: true,
    };
    install(&sim.host(), &opts, &mut Vec::new()).unwrap();
    write(
        sim,
        "/etc/libvirt/qemu/win11.xml",
        &domain_xml(&["01", "01"], &["0", "1"]),
    );
    write(
        sim,
        "/etc/udev/rules.d/73-pitcrew-keep-off.rules",
        &format!(
            "# Written by `pitcrew keep-off`: the desktop leaves these cards to the VMs they are lent to.\n\
             # keep-off {GPU} audio=- sound=off\n\
             SUBSYSTEM==\"drm\", KERNEL==\"card[0-9]*\", KERNELS==\"{GPU}\", ENV{{ID_SEAT}}=\"seat-pitcrew\"\n"
        ),
    );
    // What udev stores once keep-off's trigger applied the rule to the card's nodes; a card the
    // desktop (Xorg, 1200) has open is not triggered, and waits for its next lend or boot.
    let desktop_on_card = sim.process_fds(1200).iter().any(|n| n == "/dev/dri/card1");
    for node in ["c226:1", "c226:129"]
        .into_iter()
        .filter(|_| !desktop_on_card)
    {
        write(
            sim,
            &format!("/run/udev/data/{node}"),
            "E:ID_SEAT=seat-pitcrew\n",
        );
    }
}

pub(crate) fn domain_xml(buses: &[&str], functions: &[&str]) -> String {
    let hostdevs: String = buses
        .iter()
        .zip(functions)
        .map(|(bus, function)| {
            format!(
                "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' \
                 bus='0x{bus}' slot='0x00' function='0x{function}'/></source></hostdev>"
            )
        })
        .collect();
    format!("<domain type='kvm'><name>win11</name><devices>{hostdevs}</devices></domain>")
}

pub(crate) fn write(sim: &SimHost, absolute: &str, text: &str) {
    let path = sim.root().join(absolute.trim_start_matches('/'));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

pub(crate) fn doctor(sim: &SimHost) -> Report {
    pitcrew::doctor(&sim.host(), None)
}

pub(crate) fn check<'a>(report: &'a Report, name: &str) -> &'a Check {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name:?} in\n{report}"))
}

/// The machine with one field changed, set up, its report; asserts the named check has `level`
/// and every other check stays ok (unless listed in `also`), then returns the check's text.
pub(crate) fn only(m: Machine, name: &str, level: Level, also: &[&str]) -> String {
    let sim = build(&m);
    set_up(&sim);
    let report = doctor(&sim);
    let c = check(&report, name);
    assert_eq!(c.level, level, "{name} in\n{report}");
    for other in &report.checks {
        if other.name != name && !also.contains(&other.name.as_str()) {
            assert_eq!(
                other.level,
                Level::Ok,
                "{} changed too in\n{report}",
                other.name
            );
        }
    }
    assert_eq!(
        level == Level::Ok,
        c.fix.is_none(),
        "a fix exactly when not ok: {report}"
    );
    format!(
        "{}: {} -> {}",
        c.name,
        c.finding,
        c.fix.clone().unwrap_or_default()
    )
}
