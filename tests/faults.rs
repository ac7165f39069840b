//! What the engine does when the host fights back, asserted on the simulated kernel's state.

use crate::engine::{assert_on_vfio, detach, drivers, loaded_modules, policy, reattach, request};
use pitcrew::{handover, Direction};
use pitcrew_sim::{fixtures, Event, ProcessTemplate, Signal, SimHost, SESSION_SCOPE};
use std::time::{Duration, Instant};

#[test]
fn a_holder_that_ignores_term_is_killed_after_the_deadline() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    sim.ignore_term(2300);
    let start = Instant::now();
    detach(&sim, &["01:00.0"]).unwrap();
    assert!(start.elapsed() >= policy().term_timeout);
    assert!(!sim.process_alive(2300));
    let signals: Vec<Signal> = sim
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Signal { pid: 2300, signal } => Some(signal),
            _ => None,
        })
        .collect();
    assert_eq!(signals, [Signal::Term, Signal::Kill]);
    assert_eq!(sim.driver("0000:01:00.0").as_deref(), Some("vfio-pci"));
}

#[test]
fn a_module_still_in_use_fails_the_detach_and_everything_is_rolled_back() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let drivers_before = drivers(&sim);
    let modules_before = loaded_modules(&sim);
    sim.fail_command(
        &["modprobe", "-r", "nvidia_uvm"],
        "modprobe: FATAL: Module nvidia_uvm is in use.",
    );

    let err = detach(&sim, &["01:00.0"]).unwrap_err();
    let message = err.to_string();
    assert_eq!(pitcrew::Error::from(err).exit_code(), 1);
    assert!(
        message.contains("(unload module nvidia_uvm) failed"),
        "{message}"
    );
    assert!(message.contains("Module nvidia_uvm is in use"), "{message}");
    assert!(message.contains("Rolled back"), "{message}");

    assert_eq!(drivers(&sim), drivers_before);
    assert_eq!(loaded_modules(&sim), modules_before);
    // vfio-pci's load ran beside the unloads and is undone with them.
    let commands = sim.commands();
    let at = |argv: &[&str]| commands.iter().position(|c| c == argv);
    assert!(at(&["modprobe", "vfio_pci"]) < at(&["modprobe", "-r", "vfio_pci"]));
    assert!(at(&["modprobe", "vfio_pci"]).is_some());
    assert!(sim.unit_active("lightdm.service"));
    assert!(sim.unit_active("nvidia-persistenced.service"));
    assert_eq!(sim.driver_override("0000:01:00.1"), None);
    // No fallback to unbinding the card from nvidia after its unload failed.
    assert!(sim
        .writes_to("/sys/bus/pci/drivers/nvidia/unbind")
        .is_empty());
}

/// vfio-pci's load runs beside the unloads, and `modprobe -r nvidia_drm` removes its pre-softdeps:
/// the binding step loads it again, so the lend still ends on vfio-pci.
#[test]
fn a_softdep_that_removes_vfio_pci_beside_the_unloads_does_not_fail_the_detach() {
    let sim = fixtures::nvidia_with_vfio_softdep();
    detach(&sim, &["01:00.0"]).unwrap();
    assert_on_vfio(
        &sim,
        &[
            "0000:01:00.0",
            "0000:01:00.1",
            "0000:01:00.2",
            "0000:01:00.3",
        ],
    );
    assert!(sim.module_loaded("vfio_pci"));
    assert!(!sim.module_loaded("nvidia"));
}

/// The same softdep with vfio-pci loaded before the lend (another card lent earlier): the plan
/// has no load, and the unload still takes vfio-pci away.
#[test]
fn a_softdep_that_removes_a_loaded_vfio_pci_does_not_fail_the_detach() {
    let sim = fixtures::nvidia_with_vfio_softdep();
    let loaded = sim
        .effects()
        .run("modprobe", &["vfio_pci"], Duration::from_secs(1))
        .unwrap();
    assert!(loaded.success && sim.module_loaded("vfio_pci"));
    detach(&sim, &["01:00.0"]).unwrap();
    assert_on_vfio(
        &sim,
        &[
            "0000:01:00.0",
            "0000:01:00.1",
            "0000:01:00.2",
            "0000:01:00.3",
        ],
    );
    assert!(sim.module_loaded("vfio_pci"));
}

/// The same softdep while a VM holds another group on vfio-pci: kmod exits 1 on the in-use
/// pre-softdep after it has unloaded the named module, which is all the step asked for.
#[test]
fn a_softdep_on_a_vfio_pci_in_use_fails_modprobe_but_not_the_detach() {
    let sim = fixtures::nvidia_with_vfio_softdep();
    detach(&sim, &["00:1f.3"]).unwrap();
    let qemu = sim.spawn(
        SESSION_SCOPE,
        ProcessTemplate::new("qemu-system-x86_64").holds("/dev/vfio/15"),
    );
    detach(&sim, &["01:00.0"]).unwrap();
    assert!(!sim.module_loaded("nvidia_drm"));
    assert_on_vfio(&sim, &["0000:00:1f.3", "0000:01:00.0", "0000:01:00.1"]);
    assert!(sim.process_alive(qemu));
}

#[test]
fn a_write_that_blocks_is_cut_off_at_the_deadline_never_repeated_and_the_rest_rolled_back() {
    let sim = fixtures::apu_and_dgpu_sharing_amdgpu();
    let unbind = "/sys/bus/pci/drivers/snd_hda_intel/unbind";
    let block = sim.block_writes(unbind);
    let mut req = request(Direction::Detach, &["03:00.0"]);
    req.policy.step_timeout = Duration::from_millis(300);

    let start = Instant::now();
    let err = pitcrew::Error::from(handover(&sim.host(), &req).unwrap_err());
    assert_eq!(err.exit_code(), 1);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let err = err.to_string();
    for expected in [
        "(set 0000:03:00.1 driver_override=vfio-pci, unbind it from snd_hda_intel) failed",
        "did not return within 300ms (the writer waits in an injected block)",
        "pitcrew does not touch 0000:03:00.1 again",
        "Rolled back everything else",
    ] {
        assert!(err.contains(expected), "{expected:?} missing from {err}");
    }
    // Everything else is back; the stuck function got no second write.
    assert_eq!(sim.driver("0000:03:00.0").as_deref(), Some("amdgpu"));
    assert_eq!(sim.driver_override("0000:03:00.0"), None);
    assert!(sim.unit_active("sddm.service"));
    let about_audio = sim
        .events()
        .into_iter()
        .filter(|e| format!("{e:?}").contains("03:00.1"))
        .count();
    assert_eq!(about_audio, 2, "{:?}", sim.events());
    // The record still holds it, so a reattach gives it back once the kernel lets go.
    block.release();
    assert!(wait_until(|| sim.driver("0000:03:00.1").is_none()));
    reattach(&sim, &["03:00.0"]).unwrap();
    assert_eq!(sim.driver("0000:03:00.1").as_deref(), Some("snd_hda_intel"));
    assert_eq!(sim.driver_override("0000:03:00.1"), None);
}

fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    crate::engine::wait_until(&mut done)
}

#[test]
fn a_failure_late_in_the_plan_rolls_back_every_earlier_step() {
    let sim = fixtures::amd_with_audio();
    let drivers_before = drivers(&sim);
    sim.fail_command(
        &["modprobe", "vfio_pci"],
        "modprobe: FATAL: Module vfio_pci not found.",
    );

    let err = detach(&sim, &["03:00.0"]).unwrap_err().to_string();
    assert!(err.contains("(load module vfio_pci) failed"), "{err}");
    assert_eq!(drivers(&sim), drivers_before);
    assert!(sim.module_loaded("amdgpu"));
    assert!(sim.unit_active("gdm.service"));
    let status = pitcrew::Status::of(&pitcrew::Snapshot::read(&sim.host()).unwrap());
    assert!(status.lent.is_empty(), "nothing is recorded as lent");
}

#[test]
fn bad_input_changes_nothing() {
    let sim = fixtures::group_with_unrelated_device();
    for devices in [&["05:00.0"][..], &["0a:00.0"][..]] {
        let err = detach(&sim, devices).unwrap_err();
        let message = err.to_string();
        assert_eq!(pitcrew::Error::from(err).exit_code(), 2, "{message}");
    }
    assert!(sim.events().is_empty(), "{:?}", sim.events());
}

#[test]
fn a_cancelled_run_stops_before_the_next_step_and_rolls_back() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let sim = fixtures::apu_and_dgpu_sharing_amdgpu();
    let before = drivers(&sim);
    let mut req = request(Direction::Detach, &["03:00.0"]);
    req.cancel = Some(Arc::new(AtomicBool::new(true)));
    let err = handover(&sim.host(), &req).unwrap_err().to_string();
    assert!(err.contains("cancelled by SIGTERM"), "{err}");
    assert_eq!(drivers(&sim), before);
    assert!(sim.unit_active("sddm.service"));
}

#[test]
fn a_later_run_leaves_a_function_alone_while_a_stuck_write_helper_still_waits_on_it() {
    let sim = fixtures::apu_and_dgpu_sharing_amdgpu();
    let helper = stuck_helper_left_behind(&sim);
    let record = sim.root().join("run/pitcrew/state.json");

    let err = pitcrew::Error::from(detach(&sim, &["03:00.0"]).unwrap_err());
    assert_eq!(err.exit_code(), 1);
    assert!(
        err.to_string().contains(&format!(
            "0000:03:00.1 is still busy in the kernel: a write of an earlier run waits there \
             (helper pid {helper}"
        )),
        "{err}"
    );
    assert!(sim
        .events()
        .iter()
        .all(|e| !matches!(e, Event::Write { .. })));

    // Once the helper is gone the write has returned, and the function is fair game again.
    sim.exit_process(helper);
    detach(&sim, &["03:00.0"]).unwrap();
    assert_eq!(sim.driver("0000:03:00.1").as_deref(), Some("vfio-pci"));
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(!text.contains("stuck"), "{text}");
}

/// What a run whose unbind of 03:00.1's audio function got stuck leaves: the record names the
/// write helper, which still lives. Returns its pid.
pub(crate) fn stuck_helper_left_behind(sim: &SimHost) -> u32 {
    let helper = sim.spawn(
        SESSION_SCOPE,
        ProcessTemplate::new("pitcrew").cmdline(&[
            "/usr/bin/pitcrew",
            "__write",
            "/sys/bus/pci/drivers/snd_hda_intel/unbind",
            "0000:03:00.1",
        ]),
    );
    let record = sim.root().join("run/pitcrew/state.json");
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();
    std::fs::set_permissions(
        record.parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    std::fs::write(
        &record,
        format!(r#"{{"stuck": {{"0000:03:00.1": {helper}}}}}"#),
    )
    .unwrap();
    helper
}
