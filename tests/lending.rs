//! Planning on layouts of real desktops: slot companions, GPUs sharing a group, crowded groups,
//! compute cards, and giving back exactly what was lent.

use crate::engine::{assert_on_vfio, detach, dry_run, reattach, request};
use pitcrew::{handover, Direction};
use pitcrew_sim::{fixtures, SimHost};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(5);

#[test]
fn gpus_requested_together_that_share_a_group_are_one_lend() {
    let sim = fixtures::two_gpus_one_group();
    let plan = detach(&sim, &["01:00.0", "02:00.0"]).unwrap().plan;
    assert_eq!(plan.functions.len(), 4, "{plan}");
    assert_on_vfio(
        &sim,
        &[
            "0000:01:00.0",
            "0000:01:00.1",
            "0000:02:00.0",
            "0000:02:00.1",
        ],
    );
    reattach(&sim, &["01:00.0", "02:00.0"]).unwrap();
    assert_eq!(sim.driver("0000:02:00.0").as_deref(), Some("nvidia"));
}

#[test]
fn one_of_two_gpus_sharing_a_group_is_refused_naming_both_functions_of_the_other() {
    let sim = fixtures::two_gpus_one_group();
    let err = pitcrew::Error::from(detach(&sim, &["01:00.0"]).unwrap_err());
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.to_string().contains(
            "IOMMU group 1 of 0000:01:00.0 also holds 0000:02:00.0 (display, driver nvidia), \
         0000:02:00.1 (audio, driver snd_hda_intel), in use by the host"
        ),
        "{err}"
    );
    assert!(sim.events().is_empty());
}

#[test]
fn a_refusal_names_every_device_of_the_group_the_host_uses() {
    let sim = fixtures::crowded_group();
    let err = dry_run(&sim, Direction::Detach, &["01:00.0"]);
    assert!(
        err.contains(
            "also holds 0000:00:14.0 (usb, driver xhci_hcd), 0000:00:17.0 (storage, driver ahci), \
         0000:00:1f.6 (network, driver e1000e), in use by the host"
        ),
        "{err}"
    );
    assert!(err.contains("unbind them yourself if they may go"), "{err}");
}

#[test]
fn a_companion_in_its_own_group_moves_with_its_card() {
    let sim = fixtures::navi_audio_in_own_group();
    let plan = dry_run(&sim, Direction::Detach, &["0b:00.0"]);
    assert!(
        plan.starts_with("Move 0000:0b:00.0, 0000:0b:00.1 to vfio-pci:"),
        "{plan}"
    );
}

#[test]
fn lending_the_only_display_beside_a_compute_card_keeps_the_desktop_down() {
    let sim = fixtures::compute_card_beside_display();
    let plan = detach(&sim, &["03:00.0"]).unwrap().plan.to_string();
    assert!(plan.contains("it is the host's only display"), "{plan}");
    assert!(!plan.contains("start lightdm.service"), "{plan}");
    assert!(!sim.unit_active("lightdm.service"));
}

#[test]
fn lending_a_compute_card_never_stops_the_display_manager() {
    let sim = fixtures::compute_card_beside_display();
    let mut req = request(Direction::Detach, &["04:00.0"]);
    req.policy.display_manager = pitcrew::DisplayManagerPolicy::Always;
    let plan = handover(&sim.host(), &req).unwrap().plan.to_string();
    assert!(!plan.contains("lightdm"), "{plan}");
    assert!(plan.contains("end process 2300 (python3)"), "{plan}");
    assert!(sim.unit_active("lightdm.service"));
    assert_eq!(sim.driver("0000:04:00.0").as_deref(), Some("vfio-pci"));
}

/// 01:00.1 parked on vfio-pci the way vfio-pci.ids= on the kernel command line leaves it.
fn park_audio_at_boot(sim: &SimHost) {
    let host = sim.host();
    host.write(
        "/sys/bus/pci/drivers/snd_hda_intel/unbind",
        "0000:01:00.1",
        LIMIT,
    )
    .unwrap();
    host.write(
        "/sys/bus/pci/devices/0000:01:00.1/driver_override",
        "vfio-pci",
        LIMIT,
    )
    .unwrap();
    assert!(sim.commands().is_empty());
    let out = host
        .effects()
        .run("modprobe", &["vfio_pci"], LIMIT)
        .unwrap();
    assert!(out.success);
    assert_eq!(sim.driver("0000:01:00.1").as_deref(), Some("vfio-pci"));
}

#[test]
fn the_units_stop_gives_back_exactly_what_the_record_says_was_lent() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    park_audio_at_boot(&sim);
    detach(&sim, &["01:00.0"]).unwrap();
    let mut stop = request(Direction::Reattach, &[]);
    stop.lent_only = true;
    let plan = handover(&sim.host(), &stop).unwrap().plan;
    assert!(
        !plan.functions.contains(&"0000:01:00.1".parse().unwrap()),
        "{plan}"
    );
    assert_eq!(sim.driver("0000:01:00.0").as_deref(), Some("nvidia"));
    assert_eq!(sim.driver("0000:01:00.2").as_deref(), Some("xhci_hcd"));
    // Parked before pitcrew ran: it stays where the kernel command line put it.
    assert_eq!(sim.driver("0000:01:00.1").as_deref(), Some("vfio-pci"));
}

#[test]
fn the_units_stop_for_another_vm_gives_back_nothing() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    detach(&sim, &["01:00.0"]).unwrap();
    let mut stop = request(Direction::Reattach, &[]);
    stop.lent_only = true;
    stop.owner = Some("other-vm".into());
    handover(&sim.host(), &stop).unwrap();
    assert_eq!(sim.driver("0000:01:00.0").as_deref(), Some("vfio-pci"));
}

#[test]
fn reattach_of_a_card_pitcrew_did_not_lend_is_refused_unless_forced() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    park_audio_at_boot(&sim);
    let err = pitcrew::Error::from(reattach(&sim, &["01:00.1"]).unwrap_err());
    assert_eq!(err.exit_code(), 2);
    let message = err.to_string();
    assert!(
        message.contains("0000:01:00.1 is on vfio-pci but pitcrew did not lend it"),
        "{message}"
    );
    assert!(
        message.contains("`pitcrew reattach --force 0000:01:00.1`"),
        "{message}"
    );
    assert_eq!(sim.driver("0000:01:00.1").as_deref(), Some("vfio-pci"));

    let mut forced = request(Direction::Reattach, &["01:00.1"]);
    forced.force = true;
    handover(&sim.host(), &forced).unwrap();
    assert_eq!(sim.driver("0000:01:00.1").as_deref(), Some("snd_hda_intel"));
    assert_eq!(sim.driver_override("0000:01:00.1"), None);
}
