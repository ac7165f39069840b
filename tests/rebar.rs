//! Resizable BARs and reset methods at lend time: the chosen BAR shrunk between the unbind and
//! vfio-pci's bind and put back before the host driver returns, whatever the kernel says to
//! that; a size the card does not offer refused before anything changes; a run killed after the
//! resize converges; reset methods set and restored.

use crate::engine::{policy, request, wait_until};
use pitcrew::{handover, Config, Direction, HandoverError, PlanError, Rebar, ResetMethod, Tuning};
use pitcrew_sim::{errno, fixtures, Builder, DeviceSpec, Event, ModuleSpec, SimHost};
use std::path::Path;

const GPU: &str = "0000:03:00.0";
const AUDIO: &str = "0000:03:00.1";
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn tuned(
    sim: &SimHost,
    direction: Direction,
    tuning: &Tuning,
) -> Result<pitcrew::Outcome, HandoverError> {
    let mut req = request(direction, &["03:00.0"]);
    req.policy.tuning.all = tuning.clone();
    handover(&sim.host(), &req)
}

fn smallest() -> Tuning {
    Tuning {
        rebar: Rebar::Smallest,
        ..Tuning::default()
    }
}

fn plan_text(sim: &SimHost, direction: Direction, tuning: &Tuning) -> String {
    let mut req = request(direction, &["03:00.0"]);
    req.policy.tuning.all = tuning.clone();
    req.dry_run = true;
    handover(&sim.host(), &req).unwrap().plan.to_string()
}

/// The position of the first line of `plan` containing `what`.
fn line_of(plan: &str, what: &str) -> usize {
    plan.lines()
        .position(|l| l.contains(what))
        .unwrap_or_else(|| panic!("{what:?} not in\n{plan}"))
}

#[test]
fn smallest_shrinks_the_vram_bar_between_unbind_and_bind_and_the_reattach_puts_it_back() {
    let sim = fixtures::radeon_beside_the_desktop();
    let plan = plan_text(&sim, Direction::Detach, &smallest());
    let resize = line_of(&plan, "resize BAR0 of 0000:03:00.0 from 8 GiB to 256 MiB");
    assert!(line_of(&plan, "unload module amdgpu") < resize, "{plan}");
    assert!(
        resize < line_of(&plan, "probe 0000:03:00.0: bind it to vfio-pci"),
        "{plan}"
    );
    assert!(
        !plan.contains("BAR2"),
        "the doorbell BAR is never the one: {plan}"
    );

    tuned(&sim, Direction::Detach, &smallest()).unwrap();
    assert_eq!(sim.driver(GPU).as_deref(), Some("vfio-pci"));
    assert_eq!(sim.bar_size(GPU, 0), Some(256 * MIB));
    assert_eq!(sim.bar_size(GPU, 2), Some(2 * MIB));
    let status = pitcrew::Status::of(&pitcrew::Snapshot::read(&sim.host()).unwrap());
    let json = serde_json::to_string(&status).unwrap();
    assert!(
        json.contains(r#""restores_bars":{"0":8589934592}"#),
        "{json}"
    );
    assert_eq!(
        sim.writes_to(&format!("/sys/bus/pci/devices/{GPU}/resource0_resize")),
        ["8"]
    );

    let back = plan_text(&sim, Direction::Reattach, &smallest());
    let restore = line_of(
        &back,
        "put BAR0 of 0000:03:00.0 back to 8 GiB (it is 256 MiB)",
    );
    assert!(
        line_of(&back, "unbind it from vfio-pci") < restore,
        "{back}"
    );
    assert!(
        restore < line_of(&back, "bind 0000:03:00.0 to amdgpu"),
        "{back}"
    );
    tuned(&sim, Direction::Reattach, &smallest()).unwrap();
    assert_eq!(sim.bar_size(GPU, 0), Some(8 * GIB));
    assert_eq!(sim.driver(GPU).as_deref(), Some("amdgpu"));
}

#[test]
fn a_size_the_card_does_not_offer_is_refused_before_anything_changes() {
    let sim = fixtures::radeon_beside_the_desktop();
    let sixteen = Tuning {
        rebar: Rebar::Size(16 * GIB),
        ..Tuning::default()
    };
    match tuned(&sim, Direction::Detach, &sixteen) {
        Err(HandoverError::Plan(e @ PlanError::Tuning(_))) => {
            assert!(e.is_input(), "bad input, exit 2");
            let text = e.to_string();
            assert!(
                text.contains("BAR0 of 0000:03:00.0 to be 16G")
                    && text.contains("256M, 512M, 1G, 2G, 4G, 8G"),
                "{text}"
            );
        }
        other => panic!("expected the refusal, got {other:?}"),
    }
    assert!(
        sim.events()
            .iter()
            .all(|e| !matches!(e, Event::Write { .. } | Event::Command { .. })),
        "{:?}",
        sim.events()
    );
}

#[test]
fn a_restore_the_kernel_refuses_still_gives_the_card_back_to_its_driver() {
    let sim = fixtures::radeon_beside_the_desktop();
    tuned(&sim, Direction::Detach, &smallest()).unwrap();
    sim.fail_writes(
        &format!("/sys/bus/pci/devices/{GPU}/resource0_resize"),
        errno::ENOSPC,
    );
    let outcome = tuned(&sim, Direction::Reattach, &Tuning::default()).unwrap();
    assert!(outcome.to_string().contains("0000:03:00.0 to amdgpu"));
    assert_eq!(sim.driver(GPU).as_deref(), Some("amdgpu"));
    assert_eq!(sim.driver(AUDIO).as_deref(), Some("snd_hda_intel"));
    assert_eq!(sim.bar_size(GPU, 0), Some(256 * MIB));
    let record = pitcrew::Record::load(&sim.host()).unwrap();
    assert!(record.lent.is_empty(), "{record:?}");
}

#[test]
fn a_failure_after_the_resize_rolls_the_size_back() {
    let sim = fixtures::radeon_beside_the_desktop();
    sim.fail_command(
        &["modprobe", "vfio_pci"],
        "modprobe: ERROR: could not insert 'vfio_pci'",
    );
    let err = tuned(&sim, Direction::Detach, &smallest()).unwrap_err();
    assert!(matches!(err, HandoverError::Step(_)), "{err}");
    sim.clear_faults();
    assert_eq!(sim.bar_size(GPU, 0), Some(8 * GIB));
    assert!(wait_until(|| sim.driver(GPU).as_deref() == Some("amdgpu")));
}

#[test]
fn a_refused_resize_warns_and_the_lend_goes_on_unless_required() {
    // A 256 MiB BAR the bridge window above cannot grow past 4 GiB.
    let build = || {
        Builder::new()
            .module(ModuleSpec::new("amdgpu").drivers(&["amdgpu"]))
            .module(
                ModuleSpec::new("vfio_pci")
                    .drivers(&["vfio-pci"])
                    .unloaded(),
            )
            .device(
                DeviceSpec::new(GPU, 0x1002, 0x73bf, 0x030000)
                    .driver("amdgpu")
                    .group(14)
                    .bar(0, 256 * MIB)
                    .resizable(0, 0x3f00)
                    .bar_window(4 * GIB),
            )
            .build()
    };
    let eight = Tuning {
        rebar: Rebar::Size(8 * GIB),
        ..Tuning::default()
    };
    let sim = build();
    tuned(&sim, Direction::Detach, &eight).unwrap();
    assert_eq!(sim.driver(GPU).as_deref(), Some("vfio-pci"));
    assert_eq!(
        sim.bar_size(GPU, 0),
        Some(256 * MIB),
        "ENOSPC keeps the size"
    );

    let sim = build();
    let required = Tuning {
        rebar_required: true,
        ..eight
    };
    let err = tuned(&sim, Direction::Detach, &required).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("BAR0 of 0000:03:00.0 stays at 256 MiB")
            && text.contains("ENOSPC")
            && text.contains("rebar_required"),
        "{text}"
    );
    assert_eq!(sim.driver(GPU).as_deref(), Some("amdgpu"));
}

#[test]
fn a_detach_killed_after_the_resize_converges_on_the_next_run() {
    let sim = fixtures::radeon_beside_the_desktop();
    let plan = plan_text(&sim, Direction::Detach, &smallest());
    let after = line_of(&plan, "resize BAR0"); // the plan's first line is its title
    let mut req = request(Direction::Detach, &["03:00.0"]);
    req.policy.tuning.all = smallest();
    req.crash_after = Some(after);
    assert!(matches!(
        handover(&sim.host(), &req),
        Err(HandoverError::Interrupted { .. })
    ));
    assert_eq!(sim.bar_size(GPU, 0), Some(256 * MIB));
    assert!(!plan_text(&sim, Direction::Detach, &smallest()).contains("resize"));
    tuned(&sim, Direction::Detach, &smallest()).unwrap();
    assert_eq!(sim.driver(GPU).as_deref(), Some("vfio-pci"));
    assert_eq!(
        sim.writes_to(&format!("/sys/bus/pci/devices/{GPU}/resource0_resize")),
        ["8"],
        "written once"
    );
    tuned(&sim, Direction::Reattach, &Tuning::default()).unwrap();
    assert_eq!(sim.bar_size(GPU, 0), Some(8 * GIB));
    assert_eq!(sim.driver(GPU).as_deref(), Some("amdgpu"));
}

#[test]
fn reset_methods_are_set_for_the_lend_and_put_back() {
    let sim = fixtures::radeon_beside_the_desktop();
    let mut req = request(Direction::Detach, &["03:00.0"]);
    req.policy.tuning.devices.insert(
        AUDIO.parse().unwrap(),
        Tuning {
            reset_method: ResetMethod::Set("flr".into()),
            ..Tuning::default()
        },
    );
    // The GPU has no FLR: the kernel refuses, the lend goes on with its bus reset.
    req.policy.tuning.all.reset_method = ResetMethod::Set("flr".into());
    handover(&sim.host(), &req).unwrap();
    assert_eq!(sim.reset_method(AUDIO).as_deref(), Some("flr"));
    assert_eq!(sim.reset_method(GPU).as_deref(), Some("bus"));
    assert_eq!(sim.driver(GPU).as_deref(), Some("vfio-pci"));
    let status = pitcrew::Status::of(&pitcrew::Snapshot::read(&sim.host()).unwrap());
    let json = serde_json::to_string(&status).unwrap();
    assert!(
        json.contains(r#""restores_reset_method":"flr bus""#),
        "{json}"
    );

    let back = plan_text(&sim, Direction::Reattach, &Tuning::default());
    assert!(
        line_of(
            &back,
            "set 0000:03:00.1 reset_method to \"flr bus\" (it has \"flr\")"
        ) < line_of(&back, "bind 0000:03:00.1 to snd_hda_intel"),
        "{back}"
    );
    tuned(&sim, Direction::Reattach, &Tuning::default()).unwrap();
    assert_eq!(sim.reset_method(AUDIO).as_deref(), Some("flr bus"));
    assert_eq!(sim.driver(AUDIO).as_deref(), Some("snd_hda_intel"));
}

#[test]
fn the_config_reads_rebar_and_reset_method_per_vm_and_device() {
    let text = r#"
[defaults]
rebar = "smallest"

[vm."win11"]
reset_method = "device_specific, bus"

[vm."win11".device."0000:03:00.0"]
rebar = "8G"
rebar_required = true
"#;
    let config = Config::parse(text, Path::new("/etc/pitcrew/pitcrew.toml")).unwrap();
    let tuning = &config.vms.values().next().unwrap().policy.tuning;
    assert_eq!(tuning.all.rebar, Rebar::Smallest);
    assert_eq!(
        tuning.all.reset_method,
        ResetMethod::Set("device_specific bus".into())
    );
    let gpu = tuning.of(GPU.parse().unwrap());
    assert_eq!(gpu.rebar, Rebar::Size(8 * GIB));
    assert!(gpu.rebar_required);
    assert_eq!(gpu.reset_method, tuning.all.reset_method);
    for (bad, line, says) in [
        (
            "[defaults]\nrebar = \"300M\"\n",
            2,
            "\"300M\" is not a BAR size",
        ),
        (
            "[vm.\"a\"]\n\nreset_method = \"reboot\"\n",
            3,
            "\"reboot\" is no reset method",
        ),
        (
            "[vm.\"a\".device.\"0000:03:00.0\"]\nrebar = \"keep\"\nsize = 1\n",
            3,
            "unknown field",
        ),
    ] {
        let err = Config::parse(bad, Path::new("/etc/pitcrew/pitcrew.toml")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("/etc/pitcrew/pitcrew.toml:{line}: ")) && text.contains(says),
            "{text}"
        );
    }
    let _ = policy();
}
