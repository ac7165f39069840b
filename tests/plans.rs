//! The plans the engine makes for each fixture, as a dry run prints them.

use crate::engine::dry_run;
use pitcrew::Direction;
use pitcrew_sim::fixtures;

#[test]
fn nvidia_card_alone_on_its_driver_unloads_the_nvidia_stack() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    assert_eq!(
        dry_run(&sim, Direction::Detach, &["01:00.0"]),
        "\
Move 0000:01:00.0, 0000:01:00.1, 0000:01:00.2, 0000:01:00.3 to vfio-pci:
  1. hold a logind sleep inhibitor (\"GPU lent to VM win11\") while the card is lent
  2. stop nvidia-persistenced.service (it keeps the driver busy)
  3. stop lightdm.service (the desktop holds the card)
  4. end process 2300 (python3) holding /dev/nvidia-uvm, /dev/nvidia0, /dev/nvidiactl: TERM, then KILL after the deadline
  5. set 0000:01:00.0 driver_override=vfio-pci (unloading nvidia unbinds it)
  6. set 0000:01:00.1 driver_override=vfio-pci, unbind it from snd_hda_intel
  7. set 0000:01:00.2 driver_override=vfio-pci, unbind it from xhci_hcd
  8. set 0000:01:00.3 driver_override=vfio-pci, unbind it from nvidia-gpu
  9. unload module nvidia_uvm
 10. unload module nvidia_drm
 11. unload module nvidia_modeset
 12. unload module nvidia
 13. load module vfio_pci
 14. probe 0000:01:00.0: bind it to vfio-pci
 15. probe 0000:01:00.1: bind it to vfio-pci
 16. probe 0000:01:00.2: bind it to vfio-pci
 17. probe 0000:01:00.3: bind it to vfio-pci
 18. start lightdm.service
"
    );
    // A dry run changes nothing.
    assert!(sim.events().is_empty(), "{:?}", sim.events());
}

#[test]
fn one_of_two_identical_cards_moves_alone_and_the_module_stays() {
    let sim = fixtures::two_identical_nvidia();
    assert_eq!(
        dry_run(&sim, Direction::Detach, &["0000:02:00.0"]),
        "\
Move 0000:02:00.0, 0000:02:00.1 to vfio-pci:
  1. hold a logind sleep inhibitor (\"GPU lent to VM win11\") while the card is lent
  2. stop lightdm.service (the desktop holds the card)
  3. set 0000:02:00.0 driver_override=vfio-pci, unbind it from nvidia
  4. set 0000:02:00.1 driver_override=vfio-pci, unbind it from snd_hda_intel
  5. load module vfio_pci
  6. probe 0000:02:00.0: bind it to vfio-pci
  7. probe 0000:02:00.1: bind it to vfio-pci
  8. start lightdm.service
"
    );
}

#[test]
fn a_dgpu_sharing_amdgpu_with_the_apu_moves_alone() {
    let sim = fixtures::apu_and_dgpu_sharing_amdgpu();
    let plan = dry_run(&sim, Direction::Detach, &["03:00.0"]);
    assert!(plan.contains("unbind it from amdgpu"), "{plan}");
    assert!(!plan.contains("unload module"), "{plan}");
}

#[test]
fn an_amd_card_alone_on_amdgpu_unloads_it_and_ends_the_session_holding_it() {
    let sim = fixtures::amd_with_audio();
    let plan = dry_run(&sim, Direction::Detach, &["03:00.0"]);
    assert!(
        plan.contains("stop gdm.service (the desktop holds the card)"),
        "{plan}"
    );
    assert!(
        plan.contains("end process 2100 (gnome-shell) holding /dev/dri/card1"),
        "{plan}"
    );
    assert!(plan.contains("unload module amdgpu"), "{plan}");
    assert!(plan.ends_with("start gdm.service\n"), "{plan}");
}

#[test]
fn a_group_with_an_unrelated_device_in_use_is_refused_with_the_reason() {
    let sim = fixtures::group_with_unrelated_device();
    let plan = dry_run(&sim, Direction::Detach, &["05:00.0"]);
    assert!(
        plan.starts_with(
            "error: IOMMU group 16 of 0000:05:00.0 also holds 0000:06:00.0 (storage, driver nvme)"
        ),
        "{plan}"
    );
}

#[test]
fn bad_addresses_are_refused_with_what_to_do() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let unknown = dry_run(&sim, Direction::Detach, &["09:00.0"]);
    assert!(unknown.contains("no PCI device 0000:09:00.0"), "{unknown}");
    let bridge = dry_run(&sim, Direction::Detach, &["00:01.0"]);
    assert!(bridge.contains("0000:00:01.0 is a PCI bridge"), "{bridge}");
}

#[test]
fn never_stopping_the_display_manager_fails_a_lend_the_desktop_holds() {
    let sim = fixtures::apu_and_dgpu_sharing_amdgpu();
    let mut request = crate::engine::request(Direction::Detach, &["03:00.0"]);
    request.dry_run = true;
    request.policy.display_manager = pitcrew::DisplayManagerPolicy::Never;
    let err = pitcrew::handover(&sim.host(), &request)
        .unwrap_err()
        .to_string();
    for expected in [
        "Xorg (pid 1200) holding /dev/dri/card1",
        "the desktop holds 0000:03:00.0",
        "`display_manager = \"never\"`",
        "run `pitcrew keep-off 0000:03:00.0`",
    ] {
        assert!(err.contains(expected), "{expected:?} missing from {err}");
    }
    assert!(!err.contains("sddm"), "{err}");
}

#[test]
fn reattach_of_a_card_never_detached_is_empty() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    assert_eq!(
        dry_run(&sim, Direction::Reattach, &["01:00.0"]),
        "pitcrew has lent none of these: nothing to give back\n"
    );
}
