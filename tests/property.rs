//! From any state a sequence of detaches, reattaches and crashes can reach, a detach followed by
//! a reattach returns every function to the driver it had at the start.

use crate::engine::{drivers, request};
use pitcrew::handover;
use pitcrew::Direction;
use pitcrew_sim::{fixtures, SimHost};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = (bool, Option<usize>)> {
    (any::<bool>(), proptest::option::of(1usize..20))
}

fn apply(sim: &SimHost, card: &str, to_vfio: bool, crash_after: Option<usize>) {
    let target = if to_vfio {
        Direction::Detach
    } else {
        Direction::Reattach
    };
    let mut req = request(target, &[card]);
    req.crash_after = crash_after;
    match handover(&sim.host(), &req) {
        Ok(_) | Err(pitcrew::HandoverError::Interrupted { .. }) => {}
        Err(e) => panic!("{target:?} of {card} failed: {e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn detach_then_reattach_restores_the_original_drivers(
        fixture in 0usize..4,
        ops in proptest::collection::vec(op(), 0..5),
    ) {
        let (sim, card) = match fixture {
            0 => (fixtures::nvidia_with_audio_and_usbc(), "01:00.0"),
            1 => (fixtures::two_identical_nvidia(), "02:00.0"),
            2 => (fixtures::amd_only_gpu(), "03:00.0"),
            _ => (fixtures::amd_with_audio(), "03:00.0"),
        };
        let before = drivers(&sim);
        for (to_vfio, crash_after) in ops {
            apply(&sim, card, to_vfio, crash_after);
        }
        apply(&sim, card, true, None);
        apply(&sim, card, false, None);
        prop_assert_eq!(drivers(&sim), before);
        let dm = pitcrew::Snapshot::read(&sim.host()).unwrap().display_manager.unwrap();
        prop_assert!(sim.unit_active(&dm), "{} is running", dm);
    }
}
