//! Running the engine against a simulated host.

use pitcrew::Direction;
use pitcrew::Policy;
use pitcrew::Snapshot;
use pitcrew::{handover, HandoverError, Outcome, Request};
use pitcrew_sim::SimHost;
use std::time::Duration;

/// Short deadlines keep the fault tests quick; nothing in the sim takes long.
pub fn policy() -> Policy {
    Policy {
        term_timeout: Duration::from_millis(300),
        step_timeout: Duration::from_secs(2),
        ..Policy::default()
    }
}

pub fn request(target: Direction, devices: &[&str]) -> Request {
    Request {
        direction: target,
        devices: devices.iter().map(|d| d.parse().unwrap()).collect(),
        policy: policy(),
        owner: Some("win11".into()),
        dry_run: false,
        lent_only: false,
        force: false,
        crash_after: None,
        cancel: None,
    }
}

pub fn detach(sim: &SimHost, devices: &[&str]) -> Result<Outcome, HandoverError> {
    handover(&sim.host(), &request(Direction::Detach, devices))
}

pub fn reattach(sim: &SimHost, devices: &[&str]) -> Result<Outcome, HandoverError> {
    handover(&sim.host(), &request(Direction::Reattach, devices))
}

pub fn dry_run(sim: &SimHost, target: Direction, devices: &[&str]) -> String {
    let mut request = request(target, devices);
    request.dry_run = true;
    match handover(&sim.host(), &request) {
        Ok(outcome) => outcome.plan.to_string(),
        Err(e) => format!("error: {e}"),
    }
}

/// Every function's driver, for before/after comparisons.
pub fn drivers(sim: &SimHost) -> Vec<(String, Option<String>)> {
    Snapshot::read(&sim.host())
        .unwrap()
        .devices
        .keys()
        .map(|bdf| (bdf.to_string(), sim.driver(&bdf.to_string())))
        .collect()
}

/// Each of `functions` is bound to vfio-pci.
pub fn assert_on_vfio(sim: &SimHost, functions: &[&str]) {
    for bdf in functions {
        assert_eq!(sim.driver(bdf).as_deref(), Some("vfio-pci"), "{bdf}");
    }
}

pub fn loaded_modules(sim: &SimHost) -> Vec<String> {
    Snapshot::read(&sim.host())
        .unwrap()
        .modules
        .into_keys()
        .collect()
}

/// What pitcrew must never do: new_id writes and forced unloads.
pub fn assert_no_forbidden_actions(sim: &SimHost) {
    for event in sim.events() {
        let text = format!("{event:?}");
        assert!(!text.contains("new_id"), "wrote new_id: {text}");
        assert!(!text.contains("\"-f\""), "forced an unload: {text}");
        assert!(!text.contains("disable"), "disabled a unit: {text}");
    }
}

/// Polls `done` for up to 5 s: for what the simulated kernel completes on another thread.
pub fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2)); // poll interval
    }
    true
}

/// The signals the simulated host delivered to `pid`, in order.
pub fn signals_to(sim: &SimHost, pid: u32) -> Vec<pitcrew_sim::Signal> {
    sim.events()
        .into_iter()
        .filter_map(|e| match e {
            pitcrew_sim::Event::Signal { pid: p, signal } if p == pid => Some(signal),
            _ => None,
        })
        .collect()
}

/// What `pitcrew status [ARGS]` prints for the simulated host.
pub fn status(sim: &SimHost, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pitcrew"))
        .arg("--root")
        .arg(sim.root())
        .arg("status")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
