//! `pitcrew doctor`'s IOMMU and GPU checks: the healthy host passes, and each thing that can be
//! wrong turns exactly its check to warn or fail.

use crate::doctor::{build, check, doctor, only, set_up, Machine, GIB, GPU, HEALTHY, VGA};
use pitcrew::Level;
use pitcrew_sim::{Builder, DeviceSpec, ModuleSpec};

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
fn a_desktop_on_the_card_fails_the_lend_when_the_display_manager_is_never_stopped() {
    let sim = build(&Machine {
        desktop_on_gpu: true,
        ..HEALTHY
    });
    set_up(&sim);
    let config = sim.root().join("etc/pitcrew/pitcrew.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("display_manager = \"auto\"", "display_manager = \"never\""),
    )
    .unwrap();
    let report = doctor(&sim);
    let lend = check(&report, &gpu("lend"));
    assert_eq!(lend.level, Level::Fail, "{report}");
    assert!(
        lend.finding
            .contains("Xorg (pid 1200) holding /dev/dri/card1: the desktop holds the card"),
        "{report}"
    );
    assert!(
        lend.fix
            .as_ref()
            .unwrap()
            .contains("set `display_manager = \"auto\"`"),
        "{report}"
    );
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
        &gpu(&format!("reset {GPU}")),
        Level::Warn,
        &[],
    );
    assert!(text.contains("no reset_method"), "{text}");
}

/// A Navi 10 card (in vendor-reset's table) and its HDMI audio, whose only reset is the bus's.
fn navi10(vendor_reset: bool, gpu_methods: &str) -> pitcrew_sim::SimHost {
    let mut b = Builder::new()
        .module(ModuleSpec::new("amdgpu").drivers(&["amdgpu"]))
        .module(ModuleSpec::new("snd_hda_intel").drivers(&["snd_hda_intel"]))
        .device(
            DeviceSpec::new("0000:03:00.0", 0x1002, 0x731f, VGA)
                .driver("amdgpu")
                .group(14)
                .reset_method(gpu_methods),
        )
        .device(
            DeviceSpec::new("0000:03:00.1", 0x1002, 0xab38, 0x040300)
                .driver("snd_hda_intel")
                .group(14)
                .reset_method("bus"),
        );
    if vendor_reset {
        b = b.module(ModuleSpec::new("vendor_reset"));
    }
    b.build()
}

#[test]
fn each_function_of_the_group_has_its_reset_and_bars_checked() {
    let report = doctor(&navi10(false, "bus"));
    let json = serde_json::to_value(&report).unwrap();
    let names: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for function in ["0000:03:00.0", "0000:03:00.1"] {
        for what in ["reset", "bars"] {
            let name = format!("gpu 0000:03:00.0 {what} {function}");
            assert!(names.contains(&name.as_str()), "{name} missing: {names:?}");
        }
    }
    let audio = check(&report, "gpu 0000:03:00.0 reset 0000:03:00.1");
    assert_eq!(audio.level, Level::Warn, "{report}");
    assert!(
        audio
            .finding
            .contains("the guest cannot reset this function"),
        "{report}"
    );
}

#[test]
fn a_card_vendor_reset_covers_needs_it_loaded_and_device_specific_first() {
    let name = "gpu 0000:03:00.0 reset 0000:03:00.0";
    let report = doctor(&navi10(false, "bus"));
    let reset = check(&report, name);
    assert_eq!(reset.level, Level::Warn, "{report}");
    assert!(reset.finding.contains("a Navi 10 card"), "{report}");
    assert!(
        reset.fix.as_ref().unwrap().contains("vendor-reset"),
        "{report}"
    );

    let report = doctor(&navi10(true, "bus device_specific"));
    let reset = check(&report, name);
    assert_eq!(reset.level, Level::Warn, "{report}");
    assert!(
        reset
            .fix
            .as_ref()
            .unwrap()
            .contains("reset_method = \"device_specific\""),
        "{report}"
    );

    let report = doctor(&navi10(true, "device_specific bus"));
    assert_eq!(check(&report, name).level, Level::Ok, "{report}");
}

#[test]
fn an_empty_reset_method_is_flagged() {
    let report = doctor(&navi10(false, ""));
    let reset = check(&report, "gpu 0000:03:00.0 reset 0000:03:00.0");
    assert_eq!(reset.level, Level::Warn, "{report}");
}

#[test]
fn a_resizable_bar_of_24_gib_warns() {
    let text = only(
        Machine {
            bar1: 24 * GIB,
            ..HEALTHY
        },
        &gpu(&format!("bars {GPU}")),
        Level::Warn,
        &[],
    );
    assert!(
        text.contains("BAR1 24 GiB (resizable: 64 MiB to 32 GiB)")
            && text.contains("X-PciMmio64Mb")
            && text.contains("rebar = \"smallest\""),
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
