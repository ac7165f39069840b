//! A sound server holding a lent card's HDMI audio lets go through the device reservation
//! protocol instead of being ended (simulated host; the real protocol is proven in the full
//! stack's `sound_released`).

use crate::engine::{detach, dry_run};
use pitcrew::Direction;
use pitcrew_sim::{fixtures, Event};

#[test]
fn the_plan_asks_the_sound_server_before_anything_is_unbound() {
    let sim = fixtures::radeon_beside_the_desktop();
    let plan = dry_run(&sim, Direction::Detach, &["03:00.0"]);
    let release = plan
        .find("ask wireplumber (2200) to release ALSA card 1 of 0000:03:00.1 through org.freedesktop.ReserveDevice1.Audio1")
        .unwrap_or_else(|| panic!("{plan}"));
    // Ending it stays planned for a sound server that does not let go, after the request.
    let end = plan
        .find("end process 2200 (wireplumber) holding /dev/snd/controlC1")
        .unwrap_or_else(|| panic!("{plan}"));
    let unbind = plan.find("unbind it from snd_hda_intel").unwrap();
    assert!(release < end && end < unbind, "{plan}");
    // The onboard audio's card 0, which wireplumber also holds, is not the card's business.
    assert!(!plan.contains("ALSA card 0"), "{plan}");
}

#[test]
fn wireplumber_releases_the_card_and_keeps_running() {
    let sim = fixtures::radeon_beside_the_desktop();
    detach(&sim, &["03:00.0"]).unwrap();
    assert_eq!(sim.driver("0000:03:00.1").as_deref(), Some("vfio-pci"));
    assert!(sim.process_alive(2200));
    assert!(!sim
        .events()
        .iter()
        .any(|e| matches!(e, Event::Signal { pid: 2200, .. })));
    let helper = sim
        .commands()
        .into_iter()
        .find(|argv| argv.get(1).map(String::as_str) == Some("reserve-audio"))
        .expect("the reservation helper was started");
    assert_eq!(
        helper[2..],
        [
            "--card",
            "1",
            "--bus",
            "unix:path=/run/user/1000/bus",
            "--until-vfio",
            "0000:03:00.1",
            "--hold-at-most",
            "8"
        ]
    );
    // Its other card stays open; the lent card's nodes are closed.
    assert_eq!(sim.process_fds(2200), ["/dev/snd/controlC0"]);
}

/// The race seen on Debian 13: WirePlumber let go of the card, then opened its PCM again while
/// its device was re-created and torn down. Asked again through the reservation, it lets go;
/// no signal ever reaches it.
#[test]
fn a_sound_server_that_reopens_the_card_is_asked_again_not_ended() {
    let sim = fixtures::radeon_beside_the_desktop();
    sim.reopens_after_release(2200, "/dev/snd/pcmC1D3p", false);
    detach(&sim, &["03:00.0"]).unwrap();
    assert_eq!(sim.driver("0000:03:00.1").as_deref(), Some("vfio-pci"));
    assert!(sim.process_alive(2200));
    assert!(!signalled(&sim, 2200), "{:#?}", sim.events());
    assert_eq!(
        reservations(&sim),
        2,
        "asked once by the plan, once again by the re-check"
    );
    assert_eq!(sim.process_fds(2200), ["/dev/snd/controlC0"]);
}

/// One that keeps the reopened node past the deadline of the second request is ended then,
/// and only then: the unbind never waits on it.
#[test]
fn a_sound_server_that_keeps_the_reopened_card_is_ended_after_being_asked_again() {
    let sim = fixtures::radeon_beside_the_desktop();
    sim.reopens_after_release(2200, "/dev/snd/pcmC1D3p", true);
    detach(&sim, &["03:00.0"]).unwrap();
    assert_eq!(sim.driver("0000:03:00.1").as_deref(), Some("vfio-pci"));
    assert_eq!(reservations(&sim), 2);
    let asked_again = sim.events().iter().rposition(is_reservation).unwrap();
    let ended = sim
        .events()
        .iter()
        .position(|e| matches!(e, Event::Signal { pid: 2200, .. }))
        .expect("the server that kept the card was ended");
    assert!(asked_again < ended, "{:#?}", sim.events());
    assert!(!sim.process_alive(2200));
}

/// A refused release is no reason to skip the unbind's safety: the refusing server is ended
/// before the unbind, as the plan said.
#[test]
fn a_sound_server_that_refuses_is_ended_before_the_unbind() {
    let sim = fixtures::radeon_beside_the_desktop();
    sim.refuses_release(2200);
    detach(&sim, &["03:00.0"]).unwrap();
    assert_eq!(sim.driver("0000:03:00.1").as_deref(), Some("vfio-pci"));
    assert!(signalled(&sim, 2200));
    assert!(!sim.process_alive(2200));
}

fn is_reservation(e: &Event) -> bool {
    matches!(e, Event::Command { argv } if argv.get(1).map(String::as_str) == Some("reserve-audio"))
}

fn reservations(sim: &pitcrew_sim::SimHost) -> usize {
    sim.events().iter().filter(|e| is_reservation(e)).count()
}

fn signalled(sim: &pitcrew_sim::SimHost, pid: u32) -> bool {
    sim.events()
        .iter()
        .any(|e| matches!(e, Event::Signal { pid: p, .. } if *p == pid))
}
