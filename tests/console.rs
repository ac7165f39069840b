//! The host's only GPU: the kernel console and the firmware's frame buffer leave the card before
//! its driver does and come back after; a sleep inhibitor is held while a card is lent.

use crate::engine::{detach, drivers, dry_run, reattach, request};
use pitcrew::{handover, Direction, Record, Snapshot, Status};
use pitcrew_sim::{fixtures, SimHost};

fn record(sim: &SimHost) -> Record {
    Record::load(&sim.host()).unwrap()
}

/// Where a step containing `text` sits in the printed plan.
fn at(plan: &str, text: &str) -> usize {
    plan.find(text)
        .unwrap_or_else(|| panic!("no {text:?} in\n{plan}"))
}

const UNBIND_CONSOLE: &str =
    "unbind the kernel console vtcon1 ((M) frame buffer device) from the frame buffers";
const BIND_CONSOLE: &str = "bind the kernel console vtcon1 ((M) frame buffer device) again";
const RELEASE_EFIFB: &str = "unbind the firmware frame buffer efi-framebuffer.0 from \
                             efi-framebuffer: it holds 0000:01:00.0's memory";
const RESTORE_EFIFB: &str = "bind the firmware frame buffer efi-framebuffer.0 to efi-framebuffer";

#[test]
fn the_only_gpu_takes_the_console_with_it_and_brings_it_back() {
    let sim = fixtures::amd_only_gpu();
    let before = drivers(&sim);
    let plan = detach(&sim, &["03:00.0"]).unwrap().plan.to_string();
    assert!(
        at(&plan, UNBIND_CONSOLE) < at(&plan, "set 0000:03:00.0 driver_override"),
        "{plan}"
    );
    assert!(!plan.contains("firmware frame buffer"), "{plan}");
    assert!(!sim.fbcon_bound());
    assert!(sim.framebuffers().is_empty());
    let status = Status::of(&Snapshot::read(&sim.host()).unwrap()).to_string();
    assert!(
        status.contains("Text console: not on a frame buffer (frame buffers: none)"),
        "{status}"
    );
    let unbound = record(&sim).unbound_consoles;
    assert_eq!(unbound.len(), 1);
    assert_eq!(unbound[0].vtcon, "vtcon1");
    assert_eq!(unbound[0].functions.len(), 2);

    let plan = reattach(&sim, &["03:00.0"]).unwrap().plan.to_string();
    assert!(
        at(&plan, "bind 0000:03:00.0 to amdgpu") < at(&plan, BIND_CONSOLE),
        "{plan}"
    );
    assert_eq!(drivers(&sim), before);
    assert!(
        sim.fbcon_bound(),
        "the console is back on amdgpu's frame buffer"
    );
    assert_eq!(sim.framebuffers().len(), 1);
    assert!(record(&sim).unbound_consoles.is_empty());
}

#[test]
fn efifb_beside_nvidia_lets_go_before_the_driver_and_stays_away_after_it() {
    let sim = fixtures::nvidia_only_on_efifb();
    let plan = detach(&sim, &["01:00.0"]).unwrap().plan.to_string();
    assert!(
        at(&plan, UNBIND_CONSOLE) < at(&plan, RELEASE_EFIFB),
        "{plan}"
    );
    assert!(
        at(&plan, RELEASE_EFIFB) < at(&plan, "unload module nvidia\n"),
        "{plan}"
    );
    assert_eq!(sim.driver("0000:01:00.0").as_deref(), Some("vfio-pci"));
    assert_eq!(sim.firmware_fb_bound(), Some(false));
    let iomem = std::fs::read_to_string(sim.root().join("proc/iomem")).unwrap();
    assert!(!iomem.contains("efifb"), "{iomem}");
    let released = record(&sim).released_framebuffers;
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].device, "efi-framebuffer.0");

    // nvidia takes the card back: binding efifb again would fail, and nvidia brings no frame
    // buffer, so the console has nothing to come back to (a warning, not a failed reattach).
    let plan = reattach(&sim, &["01:00.0"]).unwrap().plan.to_string();
    assert!(!plan.contains(RESTORE_EFIFB), "{plan}");
    assert_eq!(sim.driver("0000:01:00.0").as_deref(), Some("nvidia"));
    assert_eq!(sim.firmware_fb_bound(), Some(false));
    assert!(!sim.fbcon_bound());
    let left = record(&sim);
    assert!(left.unbound_consoles.is_empty() && left.released_framebuffers.is_empty());
}

#[test]
fn a_card_no_driver_takes_gets_efifb_and_the_console_back() {
    let sim = fixtures::driverless_gpu_on_efifb();
    let plan = detach(&sim, &["01:00.0"]).unwrap().plan.to_string();
    assert!(at(&plan, RELEASE_EFIFB) < at(&plan, "load module vfio_pci"));
    assert_eq!(sim.firmware_fb_bound(), Some(false));
    assert!(!sim.fbcon_bound());

    let plan = reattach(&sim, &["01:00.0"]).unwrap().plan.to_string();
    assert!(at(&plan, RESTORE_EFIFB) < at(&plan, BIND_CONSOLE), "{plan}");
    assert_eq!(sim.driver("0000:01:00.0"), None);
    assert_eq!(sim.firmware_fb_bound(), Some(true));
    assert!(sim.fbcon_bound());
}

#[test]
fn a_card_without_the_console_gets_no_console_steps() {
    // The Radeon has a frame buffer of its own, but the console is on the boot VGA's (i915).
    let sim = fixtures::amd_with_audio();
    let plan = dry_run(&sim, Direction::Detach, &["03:00.0"]);
    assert!(!plan.contains("console"), "{plan}");
    assert!(!plan.contains("frame buffer"), "{plan}");
    let plan = dry_run(&sim, Direction::Detach, &["00:02.0"]);
    assert!(plan.contains(UNBIND_CONSOLE), "{plan}");
}

#[test]
fn a_failed_detach_gives_the_console_and_efifb_back() {
    let sim = fixtures::nvidia_only_on_efifb();
    sim.fail_command(
        &["modprobe", "vfio_pci"],
        "modprobe: FATAL: Module vfio_pci not found",
    );
    let err = detach(&sim, &["01:00.0"]).unwrap_err().to_string();
    assert!(err.contains("Rolled back"), "{err}");
    assert!(sim.fbcon_bound());
    assert_eq!(sim.firmware_fb_bound(), Some(true));
    assert_eq!(sim.driver("0000:01:00.0").as_deref(), Some("nvidia"));
    assert_eq!(record(&sim), Record::default());
    assert!(sim.inhibitors().is_empty());
}

#[test]
fn a_reattach_after_a_detach_killed_past_the_console_step_restores_it() {
    let sim = fixtures::amd_only_gpu();
    let plan = dry_run(&sim, Direction::Detach, &["03:00.0"]);
    let step = plan
        .lines()
        .find(|l| l.contains(UNBIND_CONSOLE))
        .and_then(|l| l.trim().split('.').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap();
    let mut killed = request(Direction::Detach, &["03:00.0"]);
    killed.crash_after = Some(step);
    assert!(handover(&sim.host(), &killed).is_err());
    assert!(!sim.fbcon_bound());
    assert_eq!(record(&sim).unbound_consoles.len(), 1);

    reattach(&sim, &["03:00.0"]).unwrap();
    assert!(sim.fbcon_bound());
    assert_eq!(record(&sim), Record::default());
}

#[test]
fn a_sleep_inhibitor_is_held_exactly_while_a_card_is_lent() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    assert!(sim.inhibitors().is_empty());
    detach(&sim, &["01:00.0"]).unwrap();
    let held = sim.inhibitors();
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(
        held[0].starts_with("GPU Pit Crew 0 root ")
            && held[0].ends_with(" systemd-inhibit sleep GPU lent to VM win11 block"),
        "{held:?}"
    );
    let status = Status::of(&Snapshot::read(&sim.host()).unwrap()).to_string();
    assert!(
        status.contains("Sleep inhibited by pitcrew: GPU lent to VM win11\n"),
        "{status}"
    );
    // Running the detach again keeps the one inhibitor.
    detach(&sim, &["01:00.0"]).unwrap();
    assert_eq!(sim.inhibitors(), held);

    let plan = reattach(&sim, &["01:00.0"]).unwrap().plan.to_string();
    assert!(
        plan.contains("release the sleep inhibitor (\"GPU lent to VM win11\")"),
        "{plan}"
    );
    assert!(sim.inhibitors().is_empty());
}

#[test]
fn the_config_can_turn_the_inhibitor_off() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let mut lend = request(Direction::Detach, &["01:00.0"]);
    lend.policy.inhibit_sleep = false;
    let plan = handover(&sim.host(), &lend).unwrap().plan.to_string();
    assert!(!plan.contains("inhibitor"), "{plan}");
    assert!(sim.inhibitors().is_empty());
}

#[test]
fn a_refused_inhibitor_does_not_stop_the_card_from_being_lent() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    sim.fail_command(
        &["systemd-inhibit", "--what=sleep"],
        "Failed to inhibit: Access denied",
    );
    detach(&sim, &["01:00.0"]).unwrap();
    assert_eq!(sim.driver("0000:01:00.0").as_deref(), Some("vfio-pci"));
    assert!(sim.inhibitors().is_empty());
}
