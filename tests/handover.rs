//! Detach and reattach carried out on the simulated kernel, asserted on its resulting state.

use crate::engine::{assert_no_forbidden_actions, detach, drivers, loaded_modules, reattach};
use pitcrew_sim::fixtures;

const GROUP_12: [&str; 4] = [
    "0000:01:00.0",
    "0000:01:00.1",
    "0000:01:00.2",
    "0000:01:00.3",
];

#[test]
fn detach_moves_the_whole_group_and_reattach_brings_back_exactly_what_was_there() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let drivers_before = drivers(&sim);
    let modules_before = loaded_modules(&sim);

    let outcome = detach(&sim, &["01:00.0"]).unwrap();
    assert_eq!(outcome.timeline.len(), outcome.plan.steps.len());
    for bdf in GROUP_12 {
        assert_eq!(sim.driver(bdf).as_deref(), Some("vfio-pci"), "{bdf}");
    }
    assert!(sim.dev_exists("/dev/vfio/12"));
    assert!(!sim.module_loaded("nvidia"));
    assert!(sim.unit_active("lightdm.service"), "the desktop is back");
    assert!(
        !sim.unit_active("nvidia-persistenced.service"),
        "stays down while nvidia is unloaded"
    );
    assert!(
        !sim.process_alive(2300),
        "the CUDA job holding the card was ended"
    );
    assert!(sim.process_alive(2400), "firefox on the iGPU is untouched");
    assert_eq!(sim.driver("0000:00:02.0").as_deref(), Some("i915"));
    assert_eq!(sim.driver("0000:00:1f.3").as_deref(), Some("snd_hda_intel"));

    reattach(&sim, &["01:00.0"]).unwrap();
    assert_eq!(drivers(&sim), drivers_before);
    let mut expected = modules_before;
    expected.extend(["vfio", "vfio_pci", "vfio_pci_core"].map(String::from));
    expected.sort();
    assert_eq!(
        loaded_modules(&sim),
        expected,
        "nvidia_drm and nvidia_uvm are back too"
    );
    for bdf in GROUP_12 {
        assert_eq!(sim.driver_override(bdf), None, "{bdf}");
    }
    assert!(sim.unit_active("nvidia-persistenced.service"));
    assert!(!sim.dev_exists("/dev/vfio/12"));
    assert!(sim.dev_exists("/dev/dri/card1"));
    assert_no_forbidden_actions(&sim);
}

#[test]
fn detaching_one_of_two_identical_cards_leaves_the_other_on_its_driver() {
    let sim = fixtures::two_identical_nvidia();
    detach(&sim, &["02:00.0"]).unwrap();
    assert_eq!(sim.driver("0000:02:00.0").as_deref(), Some("vfio-pci"));
    assert_eq!(sim.driver("0000:02:00.1").as_deref(), Some("vfio-pci"));
    assert_eq!(sim.driver("0000:01:00.0").as_deref(), Some("nvidia"));
    assert!(sim.module_loaded("nvidia"));
    let xorg = sim.pids_of("Xorg");
    assert_eq!(xorg.len(), 1);
    let fds = sim.process_fds(xorg[0]);
    assert!(fds.contains(&"/dev/dri/card0".to_string()), "{fds:?}");
    assert!(!fds.contains(&"/dev/dri/card1".to_string()), "{fds:?}");

    reattach(&sim, &["02:00.0"]).unwrap();
    assert_eq!(sim.driver("0000:02:00.0").as_deref(), Some("nvidia"));
    assert_eq!(sim.driver("0000:02:00.1").as_deref(), Some("snd_hda_intel"));
    assert_no_forbidden_actions(&sim);
}

#[test]
fn running_again_in_the_target_state_changes_nothing() {
    let sim = fixtures::amd_with_audio();
    detach(&sim, &["03:00.0"]).unwrap();
    let events = sim.events().len();
    let again = detach(&sim, &["03:00.0"]).unwrap();
    assert!(again.plan.is_empty(), "{}", again.plan);
    assert_eq!(sim.events().len(), events);

    reattach(&sim, &["03:00.0"]).unwrap();
    let events = sim.events().len();
    assert!(reattach(&sim, &["03:00.0"]).unwrap().plan.is_empty());
    assert_eq!(sim.events().len(), events);
    assert_eq!(sim.driver("0000:03:00.0").as_deref(), Some("amdgpu"));
}

#[test]
fn the_state_record_says_what_is_lent_and_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let sim = fixtures::apu_and_dgpu_sharing_amdgpu();
    detach(&sim, &["03:00.0"]).unwrap();
    let dir = sim.root().join("run/pitcrew");
    assert_eq!(dir.metadata().unwrap().permissions().mode() & 0o777, 0o700);
    let status = pitcrew::Status::of(&pitcrew::Snapshot::read(&sim.host()).unwrap());
    let text = status.to_string();
    assert!(
        text.contains("Lent by pitcrew: 0000:03:00.0 to win11 (returns to amdgpu)"),
        "{text}"
    );
    reattach(&sim, &["03:00.0"]).unwrap();
    let status = pitcrew::Status::of(&pitcrew::Snapshot::read(&sim.host()).unwrap());
    assert!(status.lent.is_empty());
}

#[test]
fn lending_the_only_display_keeps_the_desktop_down_until_the_card_is_back() {
    let sim = fixtures::amd_only_gpu();
    let before = drivers(&sim);
    let plan = detach(&sim, &["03:00.0"]).unwrap().plan.to_string();
    assert!(plan.contains("it is the host's only display"), "{plan}");
    assert!(!plan.contains("start lightdm.service"), "{plan}");
    assert_eq!(sim.driver("0000:03:00.0").as_deref(), Some("vfio-pci"));
    assert!(
        !sim.unit_active("lightdm.service"),
        "no display to start it on"
    );

    let plan = reattach(&sim, &["03:00.0"]).unwrap().plan.to_string();
    assert!(plan.ends_with("start lightdm.service\n"), "{plan}");
    assert_eq!(drivers(&sim), before);
    assert!(sim.unit_active("lightdm.service"));
    let xorg = sim.pids_of("Xorg");
    assert_eq!(
        sim.process_fds(xorg[0])
            .iter()
            .filter(|fd| fd.starts_with("/dev/dri/"))
            .count(),
        1
    );
}
