//! A run killed between any two steps leaves a state the next run converges from.

use crate::engine::{assert_on_vfio, detach, drivers, reattach, request};
use pitcrew::handover;
use pitcrew::Direction;
use pitcrew_sim::{fixtures, SimHost};

fn crash(sim: &SimHost, target: Direction, after: usize) {
    let mut req = request(target, &["01:00.0"]);
    req.crash_after = Some(after);
    match handover(&sim.host(), &req) {
        Err(pitcrew::HandoverError::Interrupted { .. }) => {}
        other => panic!("expected the injected crash after step {after}, got {other:?}"),
    }
}

fn steps(sim: &SimHost, target: Direction) -> usize {
    let mut req = request(target, &["01:00.0"]);
    req.dry_run = true;
    handover(&sim.host(), &req).unwrap().plan.steps.len()
}

fn assert_lent(sim: &SimHost) {
    assert_on_vfio(
        sim,
        &[
            "0000:01:00.0",
            "0000:01:00.1",
            "0000:01:00.2",
            "0000:01:00.3",
        ],
    );
    assert!(sim.unit_active("lightdm.service"), "the desktop came back");
}

fn assert_home(sim: &SimHost, before: &[(String, Option<String>)]) {
    assert_eq!(drivers(sim), before);
    assert!(sim.unit_active("lightdm.service"));
    assert!(sim.unit_active("nvidia-persistenced.service"));
    for module in ["nvidia", "nvidia_drm", "nvidia_modeset", "nvidia_uvm"] {
        assert!(sim.module_loaded(module), "{module}");
    }
}

#[test]
fn a_detach_killed_after_any_step_completes_on_the_next_run() {
    let total = steps(&fixtures::nvidia_with_audio_and_usbc(), Direction::Detach);
    for after in 1..total {
        let sim = fixtures::nvidia_with_audio_and_usbc();
        let before = drivers(&sim);
        crash(&sim, Direction::Detach, after);
        detach(&sim, &["01:00.0"]).unwrap_or_else(|e| panic!("after step {after}: {e}"));
        assert_lent(&sim);
        reattach(&sim, &["01:00.0"]).unwrap();
        assert_home(&sim, &before);
    }
}

#[test]
fn a_detach_killed_after_any_step_can_be_undone_by_a_reattach() {
    let total = steps(&fixtures::nvidia_with_audio_and_usbc(), Direction::Detach);
    for after in 1..total {
        let sim = fixtures::nvidia_with_audio_and_usbc();
        let before = drivers(&sim);
        crash(&sim, Direction::Detach, after);
        reattach(&sim, &["01:00.0"]).unwrap_or_else(|e| panic!("after step {after}: {e}"));
        assert_home(&sim, &before);
    }
}

#[test]
fn a_reattach_killed_after_any_step_completes_on_the_next_run() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    detach(&sim, &["01:00.0"]).unwrap();
    let total = steps(&sim, Direction::Reattach);
    for after in 1..total {
        let sim = fixtures::nvidia_with_audio_and_usbc();
        let before = drivers(&sim);
        detach(&sim, &["01:00.0"]).unwrap();
        crash(&sim, Direction::Reattach, after);
        reattach(&sim, &["01:00.0"]).unwrap_or_else(|e| panic!("after step {after}: {e}"));
        assert_home(&sim, &before);
    }
}
