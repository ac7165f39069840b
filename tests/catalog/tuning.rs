//! What a lend says about the card itself: the resize and reset-method steps in plans and logs,
//! the kernel's refusals, a size the card does not offer, bad config values, and doctor's
//! findings on each function's reset methods and BARs.

use super::handover::run;
use super::Catalog;
use crate::engine::request;
use pitcrew::{handover, Config, Direction, Rebar, ResetMethod, Tuning};
use pitcrew_sim::{errno, fixtures, SimHost};
use std::path::Path;

const CONFIG: &str = "/etc/pitcrew/pitcrew.toml";
const RESIZE: &str = "/sys/bus/pci/devices/0000:03:00.0/resource0_resize";

fn tuned(
    sim: &SimHost,
    direction: Direction,
    tuning: Tuning,
    dry_run: bool,
) -> Result<pitcrew::Outcome, pitcrew::HandoverError> {
    let mut req = request(direction, &["03:00.0"]);
    req.policy.tuning.all = tuning;
    req.dry_run = dry_run;
    handover(&sim.host(), &req)
}

fn rebar(rebar: Rebar, rebar_required: bool) -> Tuning {
    Tuning {
        rebar,
        rebar_required,
        ..Tuning::default()
    }
}

#[test]
fn tuning_messages() {
    let mut c = Catalog::default();
    let smallest = rebar(Rebar::Smallest, false);

    let sim = fixtures::radeon_beside_the_desktop();
    run(&mut c, "rebar smallest: detach --dry-run", &sim, || {
        tuned(&sim, Direction::Detach, smallest.clone(), true)
    });
    run(&mut c, "rebar smallest: detach", &sim, || {
        tuned(&sim, Direction::Detach, smallest.clone(), false)
    });
    run(&mut c, "rebar smallest: reattach --dry-run", &sim, || {
        tuned(&sim, Direction::Reattach, Tuning::default(), true)
    });
    sim.fail_writes(RESIZE, errno::ENOSPC);
    run(&mut c, "restore refused: reattach", &sim, || {
        tuned(&sim, Direction::Reattach, Tuning::default(), false)
    });

    let sim = fixtures::radeon_beside_the_desktop();
    run(&mut c, "a size not offered: detach", &sim, || {
        tuned(
            &sim,
            Direction::Detach,
            rebar(Rebar::Size(16 << 30), false),
            false,
        )
    });
    sim.fail_writes(RESIZE, errno::ENOSPC);
    run(&mut c, "resize refused: detach", &sim, || {
        tuned(&sim, Direction::Detach, smallest.clone(), false)
    });
    let sim = fixtures::radeon_beside_the_desktop();
    sim.fail_writes(RESIZE, errno::ENOSPC);
    run(&mut c, "required resize refused: detach", &sim, || {
        tuned(&sim, Direction::Detach, rebar(Rebar::Smallest, true), false)
    });

    let sim = fixtures::radeon_beside_the_desktop();
    let flr = Tuning {
        reset_method: ResetMethod::Set("flr".into()),
        ..Tuning::default()
    };
    run(&mut c, "reset_method flr: detach", &sim, || {
        tuned(&sim, Direction::Detach, flr.clone(), false)
    });
    run(&mut c, "reset_method flr: reattach", &sim, || {
        tuned(&sim, Direction::Reattach, Tuning::default(), false)
    });

    let root = Path::new("/");
    for (name, text) in [
        (
            "a size that is no power of two",
            "[defaults]\nrebar = \"300M\"\n",
        ),
        (
            "an unknown reset method",
            "[vm.w]\nreset_method = \"reboot\"\n",
        ),
        ("no reset method at all", "[vm.w]\nreset_method = \"\"\n"),
        ("a method twice", "[vm.w]\nreset_method = \"flr bus flr\"\n"),
        (
            "an unknown key in a device table",
            "[vm.w.device.\"0000:03:00.0\"]\nrebar_size = \"8G\"\n",
        ),
    ] {
        let message = Config::parse(text, Path::new(CONFIG))
            .unwrap_err()
            .to_string();
        c.line(&format!("config: {name}"), root, &message);
    }

    let sim = fixtures::radeon_beside_the_desktop();
    crate::doctor::write(&sim, CONFIG, "[defaults]\nrebar = \"16G\"\n");
    for check in pitcrew::doctor(&sim.host(), None).checks {
        if check.name.contains(" reset ") || check.name.contains(" bars ") {
            let line = match &check.fix {
                Some(fix) => format!(
                    "{:?} {}: {} -> {fix}",
                    check.level, check.name, check.finding
                ),
                None => format!("{:?} {}: {}", check.level, check.name, check.finding),
            };
            c.line(&format!("doctor: {}", check.name), sim.root(), &line);
        }
    }

    insta::assert_snapshot!("tuning", c.render());
}
