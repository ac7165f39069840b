//! modprobe and systemctl as the engine runs them.

use crate::common::{assert_modules_consistent, exists, park_for_vfio, read, run};
use pitcrew::Signal;
use pitcrew_sim::{fixtures, Event};
use std::time::Duration;

const GPU: &str = "0000:01:00.0";

#[test]
fn modprobe_loads_dependencies_first_and_probes_overridden_devices() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    park_for_vfio(&sim);
    let out = run(&sim, "modprobe", &["vfio_pci"]);
    assert!(out.success, "{out:?}");
    for m in ["vfio", "vfio_pci_core", "vfio_pci"] {
        assert!(sim.module_loaded(m), "{m}");
    }
    assert_eq!(sim.driver(GPU).as_deref(), Some("vfio-pci"));
    // Devices without the override keep their drivers.
    assert_eq!(sim.driver("0000:01:00.1").as_deref(), Some("snd_hda_intel"));
    let modules = read(&sim, "/proc/modules");
    assert!(
        modules.starts_with("vfio_pci 16384 0 - Live"),
        "newest first: {modules}"
    );
    assert!(modules.contains("\nvfio 69632 2 vfio_pci,vfio_pci_core, Live"));
    assert!(sim.dev_exists("/dev/vfio/vfio") && sim.dev_exists("/dev/vfio/12"));
    assert!(exists(&sim, "/sys/bus/pci/drivers/vfio-pci/bind"));
    assert_modules_consistent(&sim);

    // Loading again changes nothing.
    assert!(run(&sim, "modprobe", &["vfio-pci"]).success);
    assert_eq!(read(&sim, "/proc/modules"), modules);
}

#[test]
fn modprobe_of_an_unknown_module_fails_like_kmod() {
    let sim = fixtures::amd_with_audio();
    let out = run(&sim, "modprobe", &["nvidia"]);
    assert!(!out.success);
    assert!(out
        .stderr
        .starts_with("modprobe: FATAL: Module nvidia not found"));
    assert_eq!(
        sim.events(),
        [Event::Command {
            argv: vec!["modprobe".into(), "nvidia".into()]
        }]
    );
}

#[test]
fn modprobe_r_fails_while_in_use() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let out = run(&sim, "modprobe", &["-r", "nvidia"]);
    assert!(!out.success);
    assert_eq!(out.stderr, "modprobe: FATAL: Module nvidia is in use.\n");
    assert!(sim.module_loaded("nvidia"));
    assert_eq!(sim.driver(GPU).as_deref(), Some("nvidia"));

    let out = run(&sim, "modprobe", &["-r", "xhci_pci"]);
    assert_eq!(out.stderr, "modprobe: FATAL: Module xhci_pci is builtin.\n");
    let out = run(&sim, "modprobe", &["-r", "vfio_pci"]);
    assert_eq!(
        out.stderr,
        "modprobe: FATAL: Module vfio_pci is not in kernel.\n"
    );
}

#[test]
fn freeing_the_nvidia_stack_lets_it_unload_and_keeps_proc_modules_consistent() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let effects = sim.effects();
    assert!(run(&sim, "systemctl", &["stop", "lightdm.service"]).success);
    assert_modules_consistent(&sim);
    assert!(run(&sim, "systemctl", &["stop", "nvidia-persistenced"]).success);
    assert_modules_consistent(&sim);
    // python3 still holds /dev/nvidia0.
    assert!(!run(&sim, "modprobe", &["-r", "nvidia_uvm"]).success);
    effects.process(2300).unwrap().signal(Signal::Term).unwrap();
    assert_modules_consistent(&sim);

    // Removing nvidia_drm also removes nvidia_modeset, now unused, but not drm (i915 needs it).
    assert!(run(&sim, "modprobe", &["-r", "nvidia_drm"]).success);
    assert!(!sim.module_loaded("nvidia_drm") && !sim.module_loaded("nvidia_modeset"));
    assert!(sim.module_loaded("drm") && sim.module_loaded("nvidia"));
    assert!(!sim.dev_exists("/dev/dri/card1") && !sim.dev_exists("/dev/nvidia-modeset"));
    assert_modules_consistent(&sim);

    // nvidia goes with nvidia_uvm, its last user, so naming it too fails as with kmod.
    let out = run(&sim, "modprobe", &["-r", "nvidia_uvm", "nvidia"]);
    assert!(!out.success);
    assert_eq!(
        out.stderr,
        "modprobe: FATAL: Module nvidia is not in kernel.\n"
    );
    assert!(!sim.module_loaded("nvidia_uvm") && !sim.module_loaded("nvidia"));
    assert_eq!(sim.driver(GPU), None);
    assert!(!exists(&sim, "/sys/bus/pci/drivers/nvidia"));
    assert!(!exists(&sim, "/sys/module/nvidia"));
    assert!(!sim.dev_exists("/dev/nvidia0") && !sim.dev_exists("/dev/nvidiactl"));
    assert!(!exists(&sim, "/proc/driver/nvidia/gpus/0000:01:00.0"));
    assert!(!read(&sim, "/proc/modules")
        .lines()
        .any(|l| l.starts_with("nvidia")));
    assert_modules_consistent(&sim);

    // Loading it back probes the card again; DRM nodes return with nvidia_drm.
    assert!(run(&sim, "modprobe", &["nvidia_drm"]).success);
    assert_eq!(sim.driver(GPU).as_deref(), Some("nvidia"));
    assert!(sim.dev_exists("/dev/dri/card1") && sim.dev_exists("/dev/nvidia0"));
    assert_modules_consistent(&sim);
}

#[test]
fn an_open_node_pins_its_module_after_the_device_is_unbound() {
    let sim = fixtures::amd_with_audio();
    sim.host()
        .write(
            "/sys/bus/pci/drivers/amdgpu/unbind",
            "0000:03:00.0",
            crate::common::LIMIT,
        )
        .unwrap();
    assert!(!sim.dev_exists("/dev/dri/card1"));
    // gnome-shell still has the card open.
    assert!(!run(&sim, "modprobe", &["-r", "amdgpu"]).success);
    sim.exit_process(2100);
    assert!(run(&sim, "modprobe", &["-r", "amdgpu"]).success);
}

#[test]
fn systemctl_stop_ends_the_units_processes() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let out = run(&sim, "systemctl", &["is-active", "lightdm.service"]);
    assert_eq!((out.success, out.stdout.as_str()), (true, "active\n"));
    assert!(run(&sim, "systemctl", &["stop", "display-manager.service"]).success);
    assert!(!sim.unit_active("lightdm"));
    assert!(!sim.process_alive(1200) && !sim.process_alive(1150));
    assert!(!exists(&sim, "/proc/1200"));
    assert!(!exists(&sim, "/sys/fs/cgroup/system.slice/lightdm.service"));
    // Processes outside the unit live on.
    assert!(sim.process_alive(2400));
    let out = run(&sim, "systemctl", &["is-active", "lightdm"]);
    assert_eq!((out.success, out.stdout.as_str()), (false, "inactive\n"));
}

#[test]
fn a_restarted_xorg_holds_only_the_cards_present() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    assert!(run(&sim, "systemctl", &["stop", "lightdm.service"]).success);
    sim.host()
        .write(
            "/sys/bus/pci/drivers/nvidia/unbind",
            GPU,
            crate::common::LIMIT,
        )
        .unwrap();
    assert!(run(&sim, "systemctl", &["start", "lightdm.service"]).success);
    let xorg = sim.pids_of("Xorg");
    assert_eq!(xorg.len(), 1);
    assert_ne!(xorg[0], 1200);
    assert_eq!(sim.process_fds(xorg[0]), ["/dev/dri/card0"]);
    assert_eq!(
        read(&sim, &format!("/proc/{}/cgroup", xorg[0])),
        "0::/system.slice/lightdm.service\n"
    );
    let procs = read(
        &sim,
        "/sys/fs/cgroup/system.slice/lightdm.service/cgroup.procs",
    );
    assert!(procs.contains(&format!("{}\n", xorg[0])));
    assert!(sim.unit_active("lightdm.service"));
    assert!(run(&sim, "systemctl", &["is-active", "--quiet", "lightdm"]).success);
}

#[test]
fn unknown_units_and_programs_fail() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let out = run(&sim, "systemctl", &["stop", "sddm.service"]);
    assert!(!out.success);
    assert!(out.stderr.contains("Unit sddm.service not loaded."));
    let out = run(&sim, "systemctl", &["start", "sddm"]);
    assert!(!out.success && out.stderr.contains("Unit sddm.service not found."));
    let out = run(&sim, "virsh", &["nodedev-detach", "pci_0000_01_00_0"]);
    assert!(!out.success);
    assert_eq!(sim.commands().len(), 3);
}

#[test]
fn injected_command_failures_win_and_are_recorded() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    sim.fail_command(
        &["modprobe", "vfio-pci"],
        "modprobe: ERROR: could not insert\n",
    );
    let out = run(&sim, "modprobe", &["vfio-pci"]);
    assert!(!out.success);
    assert_eq!(out.stderr, "modprobe: ERROR: could not insert\n");
    assert!(!sim.module_loaded("vfio_pci"));
    sim.clear_faults();
    assert!(run(&sim, "modprobe", &["vfio-pci"]).success);
    assert_eq!(sim.commands().len(), 2);
    // Commands finish at once whatever the timeout.
    let out = sim
        .effects()
        .run("systemctl", &["is-active", "gdm"], Duration::ZERO)
        .unwrap();
    assert!(!out.success);
}
