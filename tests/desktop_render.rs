//! A desktop that holds only a card's render node (KWin's GpuManager, a headless mutter) renders
//! with the card without drawing on it and cannot be asked to let go: a lend fails, naming the
//! process, the node and the fix, and never stops the display manager for it.

use crate::engine::{detach, dry_run, policy, request};
use pitcrew::{handover, Direction, DisplayManagerPolicy, KeepOffOptions};
use pitcrew_sim::{fixtures, Event, ProcessTemplate, SimHost, SESSION_SCOPE};

const RADEON: &str = "0000:03:00.0";

/// The fixture's desktop with a Wayland KWin beside LightDM's Xorg, drawing on the iGPU's card0
/// and holding the Radeon's render node `how` (open or mapped).
fn kwin_rendering_on_the_radeon(
    how: fn(ProcessTemplate, &str) -> ProcessTemplate,
) -> (SimHost, u32) {
    let sim = fixtures::radeon_beside_the_desktop();
    let kwin = ProcessTemplate::new("kwin_wayland").holds("/dev/dri/card0");
    let pid = sim.spawn(SESSION_SCOPE, how(kwin, "/dev/dri/renderD129"));
    (sim, pid)
}

fn keep_off(sim: &SimHost, strict: bool) {
    let options = KeepOffOptions {
        undo: false,
        keep_sound: false,
        strict,
        dry_run: false,
        live: true,
    };
    pitcrew::keep_off(
        &sim.host(),
        &[RADEON.parse().unwrap()],
        &options,
        &mut Vec::new(),
    )
    .unwrap();
}

/// Writes, units, signals: anything but reading.
fn changes(sim: &SimHost) -> Vec<Event> {
    sim.events()
        .into_iter()
        .filter(|e| !matches!(e, Event::Command { argv } if argv[0] == "udevadm"))
        .collect()
}

#[test]
fn a_desktop_holding_only_the_render_node_fails_the_lend_and_changes_nothing() {
    let (sim, kwin) = kwin_rendering_on_the_radeon(ProcessTemplate::holds);
    let err = detach(&sim, &["03:00.0"]).unwrap_err();
    let text = err.to_string();
    for expected in [
        format!("kwin_wayland (pid {kwin}) holding /dev/dri/renderD129"),
        format!("the desktop holds only the render node of {RADEON}"),
        format!("run `pitcrew keep-off {RADEON}`"),
        "then log out and in again (or restart the compositor)".to_string(),
        "display_manager = \"always\"".to_string(),
    ] {
        assert!(text.contains(&expected), "{expected:?} missing from {text}");
    }
    assert_eq!(pitcrew::Error::from(err).exit_code(), 1);
    assert_eq!(changes(&sim), [], "the failed plan changed something");
    assert!(sim.process_alive(kwin));
    assert!(sim.unit_active("lightdm"));
    assert_eq!(sim.driver(RADEON).as_deref(), Some("amdgpu"));
    // The dry run says the same.
    let plan = dry_run(&sim, Direction::Detach, &["03:00.0"]);
    assert!(plan.contains("holds only the render node"), "{plan}");
}

#[test]
fn a_render_node_held_only_by_a_mapping_is_named_so() {
    let (sim, kwin) = kwin_rendering_on_the_radeon(ProcessTemplate::maps);
    let text = detach(&sim, &["03:00.0"]).unwrap_err().to_string();
    let expected = format!("kwin_wayland (pid {kwin}) with /dev/dri/renderD129 mapped");
    assert!(text.contains(&expected), "{expected:?} missing from {text}");
}

#[test]
fn on_a_kept_off_card_the_fix_is_the_next_login_or_strict_mode() {
    let (sim, _) = kwin_rendering_on_the_radeon(ProcessTemplate::holds);
    keep_off(&sim, false);
    let text = detach(&sim, &["03:00.0"]).unwrap_err().to_string();
    for expected in [
        "opened the node before `pitcrew keep-off` took it from the session",
        "log out and in again (or restart the compositor)",
        "run `pitcrew keep-off --strict 0000:03:00.0`",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from {text}");
    }
    keep_off(&sim, true);
    let text = detach(&sim, &["03:00.0"]).unwrap_err().to_string();
    assert!(
        text.contains("before `pitcrew keep-off --strict` made it root's"),
        "{text}"
    );
    assert!(!text.contains("run `pitcrew keep-off"), "{text}");
}

#[test]
fn a_desktop_drawing_on_the_card_still_costs_the_session() {
    let sim = fixtures::radeon_beside_the_desktop();
    sim.spawn(
        SESSION_SCOPE,
        ProcessTemplate::new("kwin_wayland")
            .holds("/dev/dri/card1")
            .holds("/dev/dri/renderD129"),
    );
    let plan = dry_run(&sim, Direction::Detach, &["03:00.0"]);
    assert!(
        plan.contains("stop lightdm.service (the desktop holds the card)"),
        "{plan}"
    );
}

#[test]
fn the_config_saying_always_stops_the_display_manager_instead() {
    let (sim, _) = kwin_rendering_on_the_radeon(ProcessTemplate::holds);
    let mut ask = request(Direction::Detach, &["03:00.0"]);
    ask.policy = pitcrew::Policy {
        display_manager: DisplayManagerPolicy::Always,
        ..policy()
    };
    ask.dry_run = true;
    let plan = handover(&sim.host(), &ask).unwrap().plan.to_string();
    assert!(
        plan.contains("stop lightdm.service (the config says always)"),
        "{plan}"
    );
}

#[test]
fn doctor_fails_the_lend_line_with_the_fix() {
    let (sim, kwin) = kwin_rendering_on_the_radeon(ProcessTemplate::holds);
    let report = pitcrew::doctor(&sim.host(), None);
    let line = report
        .checks
        .iter()
        .find(|c| c.name == format!("gpu {RADEON} lend"))
        .unwrap();
    assert_eq!(line.level, pitcrew::Level::Fail, "{line:?}");
    assert!(
        line.finding.starts_with(&format!(
            "kwin_wayland (pid {kwin}) holding /dev/dri/renderD129"
        )),
        "{line:?}"
    );
    assert!(
        line.fix.as_deref().unwrap().contains("pitcrew keep-off"),
        "{line:?}"
    );
}
