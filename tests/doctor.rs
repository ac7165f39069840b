//! `pitcrew doctor` on simulated hosts: a healthy one where every check is ok, then one host per
//! thing that can be wrong, each turning exactly its check to warn or fail.

use pitcrew::{install, Check, InstallOptions, Level, Report, VmName};
use pitcrew_sim::{
    unit_cgroup, Builder, DeviceSpec, ModuleSpec, ProcessTemplate, SimHost, UnitSpec,
};
use std::path::Path;
use std::time::Duration;

const GPU: &str = "0000:01:00.0";
const VGA: u32 = 0x030000;
const HDA: u32 = 0x040300;
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// An Intel desktop whose iGPU runs the desktop and whose NVIDIA card (with its HDMI audio) is
/// for the VM. Each field is one way the host can differ from the healthy one.
#[derive(Clone)]
struct Machine {
    iommu: bool,
    cpu: &'static str,
    cmdline: &'static str,
    vfio: bool,
    audio_group: u32,
    /// An NVMe drive in another slot of the GPU's group.
    intruder: bool,
    reset: Option<&'static str>,
    bar1: u64,
    persistenced: bool,
    fbdev: &'static str,
    /// Xorg holds the NVIDIA card too, not just the iGPU.
    desktop_on_gpu: bool,
    /// PipeWire has the card's HDMI audio open.
    sound_server: bool,
    /// The libvirt daemon's unit and when it started (seconds after boot; the machine booted an
    /// hour before it was built, so 7200 is after anything a test installs).
    daemon: Option<(&'static str, u64)>,
}

const HEALTHY: Machine = Machine {
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

fn build(m: &Machine) -> SimHost {
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
        gpu = gpu.resizable(1);
    }
    if let Some(methods) = m.reset {
        gpu = gpu.reset_method(methods);
    }
    b = b.device(grouped(gpu, 12)).device(grouped(
        DeviceSpec::new("0000:01:00.1", 0x10de, 0x22ba, HDA)
            .driver("snd_hda_intel")
            .sound_card(1),
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
fn set_up(sim: &SimHost) {
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
}

fn domain_xml(buses: &[&str], functions: &[&str]) -> String {
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

fn write(sim: &SimHost, absolute: &str, text: &str) {
    let path = sim.root().join(absolute.trim_start_matches('/'));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn doctor(sim: &SimHost) -> Report {
    pitcrew::doctor(&sim.host(), None)
}

fn check<'a>(report: &'a Report, name: &str) -> &'a Check {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name:?} in\n{report}"))
}

/// The machine with one field changed, set up, its report; asserts the named check has `level`
/// and every other check stays ok (unless listed in `also`), then returns the check's text.
fn only(m: Machine, name: &str, level: Level, also: &[&str]) -> String {
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

fn gpu(what: &str) -> String {
    format!("gpu {GPU} {what}")
}

#[test]
fn a_healthy_host_passes_every_check() {
    let sim = build(&HEALTHY);
    set_up(&sim);
    let report = doctor(&sim);
    assert!(
        report.checks.iter().all(|c| c.level == Level::Ok),
        "{report}"
    );
    let text = report.to_string();
    for expected in [
        "ok    iommu: on: ",
        "ok    vfio-pci: module available for 6.8.0-sim",
        "IOMMU group 12 is viable: 0000:01:00.0, 0000:01:00.1 go together",
        "0000:01:00.1 (audio, snd_hda_intel) move with it",
        "modules nvidia_drm, nvidia_modeset, nvidia will be unloaded",
        "kept off the desktop by /etc/udev/rules.d/73-pitcrew-keep-off.rules",
        "sound: no process has its sound devices open",
        "reset_method: flr bus",
        "BAR0 16 MiB, BAR1 256 MiB, BAR3 32 MiB",
        "nvidia drm: nvidia_drm modeset=Y fbdev=N",
        "ok    hook: /etc/libvirt/hooks/qemu.d/pitcrew -> /usr/local/bin/pitcrew",
        "libvirt libvirtd.service: started after the hook was installed",
        "ok    unit: /etc/systemd/system/pitcrew@.service runs /usr/local/bin/pitcrew",
        "manages VM win11",
        "vm win11: defined; passes GPU 0000:01:00.0 through",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
    // Only the VM's GPU is checked, not the iGPU the desktop runs on.
    assert!(!text.contains("gpu 0000:00:02.0"), "{text}");
    assert!(text.ends_with(&format!("{} ok, 0 warn, 0 fail\n", report.checks.len())));
}

#[test]
fn iommu_off_names_the_kernel_parameter_for_the_cpu_vendor() {
    let off = Machine {
        iommu: false,
        cmdline: "root=/dev/sda1 ro quiet",
        ..HEALTHY
    };
    let (group, lend) = (gpu("group"), gpu("lend"));
    let also = [group.as_str(), lend.as_str()];
    let intel = only(off.clone(), "iommu", Level::Fail, &also);
    assert!(
        intel.contains("add intel_iommu=on to the kernel command line"),
        "{intel}"
    );
    let amd = only(
        Machine {
            cpu: "AuthenticAMD",
            ..off.clone()
        },
        "iommu",
        Level::Fail,
        &also,
    );
    assert!(
        amd.contains("AMD-Vi") && !amd.contains("intel_iommu"),
        "{amd}"
    );
    let firmware = only(
        Machine {
            cmdline: "root=/dev/sda1 intel_iommu=on",
            ..off
        },
        "iommu",
        Level::Fail,
        &also,
    );
    assert!(
        firmware.contains("already on the kernel command line: enable VT-d"),
        "{firmware}"
    );
}

#[test]
fn missing_vfio_pci_fails() {
    let text = only(
        Machine {
            vfio: false,
            ..HEALTHY
        },
        "vfio-pci",
        Level::Fail,
        &[],
    );
    assert!(
        text.contains("/lib/modules/6.8.0-sim has no vfio-pci module"),
        "{text}"
    );
}

#[test]
fn a_group_shared_with_a_device_in_use_fails_naming_it() {
    let text = only(
        Machine {
            intruder: true,
            ..HEALTHY
        },
        &gpu("group"),
        Level::Fail,
        &[&gpu("lend")],
    );
    assert!(
        text.contains("also holds 0000:02:00.0 (storage, nvme), in use by the host"),
        "{text}"
    );
}

#[test]
fn a_slot_companion_in_another_group_warns() {
    let text = only(
        Machine {
            audio_group: 13,
            ..HEALTHY
        },
        &gpu("slot"),
        Level::Warn,
        &[],
    );
    assert!(
        text.contains("0000:01:00.1 (audio, snd_hda_intel) (group 13)"),
        "{text}"
    );
}

#[test]
fn a_desktop_on_the_card_warns_that_its_sessions_end() {
    let sim = build(&Machine {
        desktop_on_gpu: true,
        ..HEALTHY
    });
    set_up(&sim);
    std::fs::remove_file(
        sim.root()
            .join("etc/udev/rules.d/73-pitcrew-keep-off.rules"),
    )
    .unwrap();
    let report = doctor(&sim);
    let lend = check(&report, &gpu("lend"));
    assert_eq!(lend.level, Level::Warn, "{report}");
    assert!(
        lend.finding.contains(
            "the display manager lightdm.service will be stopped: the sessions on it end"
        ),
        "{report}"
    );
    let keep_off = check(&report, &gpu("keep-off"));
    assert_eq!(keep_off.level, Level::Warn, "{report}");
    assert!(keep_off
        .fix
        .as_ref()
        .unwrap()
        .contains(&format!("pitcrew keep-off {GPU}")));
}

#[test]
fn a_sound_server_on_the_hdmi_audio_warns() {
    let text = only(
        Machine {
            sound_server: true,
            ..HEALTHY
        },
        &gpu("sound"),
        Level::Warn,
        // The lend ends the sound server like any holder of the card's nodes.
        &[&gpu("lend")],
    );
    assert!(
        text.contains("pipewire (pid 2500) has /dev/snd/controlC1 of 0000:01:00.1 open"),
        "{text}"
    );
}

#[test]
fn no_reset_method_warns() {
    let text = only(
        Machine {
            reset: None,
            ..HEALTHY
        },
        &gpu("reset"),
        Level::Warn,
        &[],
    );
    assert!(text.contains("no reset method"), "{text}");
}

#[test]
fn an_amd_card_with_only_a_bus_reset_warns_about_vendor_reset() {
    let sim = Builder::new()
        .module(ModuleSpec::new("amdgpu").drivers(&["amdgpu"]))
        .device(
            DeviceSpec::new("0000:03:00.0", 0x1002, 0x73bf, VGA)
                .driver("amdgpu")
                .group(14)
                .reset_method("bus"),
        )
        .build();
    let report = doctor(&sim);
    let reset = check(&report, "gpu 0000:03:00.0 reset");
    assert_eq!(reset.level, Level::Warn, "{report}");
    assert!(
        reset.fix.as_ref().unwrap().contains("vendor-reset"),
        "{report}"
    );
}

#[test]
fn a_resizable_bar_of_24_gib_warns() {
    let text = only(
        Machine {
            bar1: 24 * GIB,
            ..HEALTHY
        },
        &gpu("bars"),
        Level::Warn,
        &[],
    );
    assert!(
        text.contains("BAR1 24 GiB (resizable)") && text.contains("X-PciMmio64Mb"),
        "{text}"
    );
}

#[test]
fn nvidia_persistenced_and_fbdev_warn() {
    let persist = only(
        Machine {
            persistenced: true,
            ..HEALTHY
        },
        &gpu("nvidia persistenced"),
        Level::Warn,
        &[],
    );
    assert!(
        persist.contains("systemctl disable --now nvidia-persistenced"),
        "{persist}"
    );
    let fbdev = only(
        Machine {
            fbdev: "Y",
            ..HEALTHY
        },
        &gpu("nvidia drm"),
        Level::Warn,
        &[],
    );
    assert!(fbdev.contains("options nvidia-drm fbdev=0"), "{fbdev}");
}

#[test]
fn a_missing_or_dangling_hook_and_a_missing_unit_fail() {
    let sim = build(&HEALTHY);
    set_up(&sim);
    std::fs::remove_file(sim.root().join("usr/local/bin/pitcrew")).unwrap();
    let report = doctor(&sim);
    assert!(
        check(&report, "hook")
            .finding
            .contains("points at /usr/local/bin/pitcrew, which is not an executable file"),
        "{report}"
    );
    assert!(
        check(&report, "unit")
            .finding
            .contains("runs /usr/local/bin/pitcrew, which does not exist"),
        "{report}"
    );
    std::fs::remove_file(sim.root().join("etc/libvirt/hooks/qemu.d/pitcrew")).unwrap();
    std::fs::remove_file(sim.root().join("etc/systemd/system/pitcrew@.service")).unwrap();
    let report = doctor(&sim);
    assert_eq!(check(&report, "hook").level, Level::Fail);
    assert_eq!(check(&report, "unit").level, Level::Fail);
    assert!(
        check(&report, "unit").finding.contains("not installed"),
        "{report}"
    );
}

#[test]
fn a_daemon_started_before_the_hook_fails_until_it_is_reloaded() {
    let early = Machine {
        daemon: Some(("libvirtd.service", 5)),
        ..HEALTHY
    };
    let text = only(early.clone(), "libvirt libvirtd.service", Level::Fail, &[]);
    assert!(
        text.contains("started before the hook was installed")
            && text.contains("systemctl reload libvirtd.service"),
        "{text}"
    );

    let sim = build(&early);
    let reload = || {
        let out = sim
            .host()
            .effects()
            .run(
                "systemctl",
                &["reload", "libvirtd.service"],
                Duration::from_secs(5),
            )
            .unwrap();
        assert!(out.success, "{out:?}");
    };
    // A reload before the hook existed does not count.
    reload();
    set_up(&sim);
    let report = doctor(&sim);
    assert_eq!(
        check(&report, "libvirt libvirtd.service").level,
        Level::Fail,
        "{report}"
    );
    // Installing again keeps the link, so it stays as new as it was.
    let hook = "/etc/libvirt/hooks/qemu.d/pitcrew";
    let ctime = || {
        use std::os::unix::fs::MetadataExt;
        let meta =
            std::fs::symlink_metadata(sim.root().join(hook.trim_start_matches('/'))).unwrap();
        (meta.ctime(), meta.ctime_nsec())
    };
    let created = ctime();
    set_up(&sim);
    assert_eq!(ctime(), created);
    // doctor counts only a reload later than the link's coarse-clock time plus one tick.
    let after = std::time::UNIX_EPOCH
        + Duration::new(created.0 as u64, created.1 as u32)
        + Duration::from_millis(20);
    let waited = std::time::Instant::now();
    while std::time::SystemTime::now() < after {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "the clock stands still"
        );
        std::thread::yield_now();
    }
    reload();
    let report = doctor(&sim);
    let c = check(&report, "libvirt libvirtd.service");
    assert_eq!(c.level, Level::Ok, "{report}");
    assert!(c.finding.contains("reloaded since the hook was installed"));
}

#[test]
fn the_modular_daemon_is_checked_by_its_own_unit() {
    let modular = Machine {
        daemon: Some(("virtqemud.service", 5)),
        ..HEALTHY
    };
    let text = only(modular, "libvirt virtqemud.service", Level::Fail, &[]);
    assert!(
        text.contains("systemctl reload virtqemud.service"),
        "{text}"
    );
    let idle = only(
        Machine {
            daemon: None,
            ..HEALTHY
        },
        "libvirt",
        Level::Ok,
        &[],
    );
    assert!(idle.contains("finds the hook when it starts"), "{idle}");
}

#[test]
fn config_problems_show_on_the_config_line() {
    let sim = build(&HEALTHY);
    set_up(&sim);
    write(
        &sim,
        "/etc/pitcrew/pitcrew.toml",
        "[vm.\"win11\"]\nreattach = maybe\n",
    );
    let report = doctor(&sim);
    let c = check(&report, "config");
    assert_eq!(c.level, Level::Fail, "{report}");
    assert!(c.finding.contains("pitcrew.toml:2"), "{report}");

    write(&sim, "/etc/pitcrew/pitcrew.toml", "auto = false\n");
    let report = doctor(&sim);
    assert_eq!(check(&report, "config").level, Level::Warn, "{report}");
    std::fs::remove_file(sim.root().join("etc/pitcrew/pitcrew.toml")).unwrap();
    let report = doctor(&sim);
    assert!(
        check(&report, "config")
            .finding
            .contains("no VM is managed"),
        "{report}"
    );
}

#[test]
fn a_vm_must_be_defined_and_pass_its_gpu_through() {
    let sim = build(&HEALTHY);
    set_up(&sim);
    write(&sim, "/etc/libvirt/qemu/win11.xml", &domain_xml(&[], &[]));
    let report = doctor(&sim);
    let c = check(&report, "vm win11");
    assert_eq!(c.level, Level::Fail, "{report}");
    assert!(
        c.finding.contains("passes no GPU of this host through"),
        "{report}"
    );
    // With devices named in the config, the XML must pass exactly those.
    let config = sim.root().join("etc/pitcrew/pitcrew.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    let at = text.rfind("# devices = ").expect("install's VM table");
    text.replace_range(at..at + 2, "");
    std::fs::write(&config, text).unwrap();
    let report = doctor(&sim);
    assert!(
        check(&report, "vm win11")
            .finding
            .contains("does not pass 0000:01:00.0 through"),
        "{report}"
    );

    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "devices = [\"0000:01:00.0\"]",
            "devices = [\"0000:09:00.0\"]",
        ),
    )
    .unwrap();
    let report = doctor(&sim);
    assert!(
        check(&report, "vm win11")
            .finding
            .contains("lends it 0000:09:00.0, which this host does not have"),
        "{report}"
    );

    std::fs::remove_file(sim.root().join("etc/libvirt/qemu/win11.xml")).unwrap();
    let report = doctor(&sim);
    assert!(
        check(&report, "vm win11")
            .finding
            .contains("not defined: no /etc/libvirt/qemu/win11.xml"),
        "{report}"
    );
}

#[test]
fn vm_narrows_the_report_to_one_vm_and_refuses_an_unmanaged_one() {
    let sim = build(&HEALTHY);
    set_up(&sim);
    let win11 = VmName::parse("win11").unwrap();
    let report = pitcrew::doctor(&sim.host(), Some(&win11));
    assert_eq!(report.count(Level::Fail), 0, "{report}");
    let other = VmName::parse("my linux").unwrap();
    let report = pitcrew::doctor(&sim.host(), Some(&other));
    let c = check(&report, "vm my linux");
    assert_eq!(c.level, Level::Fail, "{report}");
    // The hint pastes into a shell as one command.
    assert!(
        c.fix
            .as_deref()
            .is_some_and(|fix| fix.contains("`sudo pitcrew install --vm 'my linux'`")),
        "{report}"
    );
    assert!(
        !report.checks.iter().any(|c| c.name.starts_with("gpu ")),
        "{report}"
    );
}

#[test]
fn the_binary_exits_0_when_nothing_fails_1_otherwise_and_prints_json() {
    let sim = build(&HEALTHY);
    let run = |root: &Path, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pitcrew"))
            .arg("--root")
            .arg(root)
            .arg("doctor")
            .args(args)
            .output()
            .unwrap()
    };
    let before = run(sim.root(), &[]);
    assert_eq!(before.status.code(), Some(1), "nothing installed yet");
    set_up(&sim);
    let after = run(sim.root(), &[]);
    assert_eq!(
        after.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&after.stdout)
    );
    let json = run(sim.root(), &["--json", "--vm", "win11"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(value["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "hook" && c["level"] == "ok"));
    let bad = run(sim.root(), &["--vm", "../etc"]);
    assert_eq!(bad.status.code(), Some(2), "a bad VM name is bad input");
}
