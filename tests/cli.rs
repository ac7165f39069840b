//! The built binary against a simulated host's tree: what a user sees, and its exit codes.

use pitcrew_sim::fixtures;
use std::process::{Command, Output};

fn pitcrew(root: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pitcrew"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn status_shows_the_gpu_its_group_drivers_and_holders() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let out = pitcrew(sim.root(), &["status"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    for expected in [
        "GPU 0000:01:00.0 (NVIDIA), IOMMU group 12",
        "0000:01:00.1  10de:22ba  audio      snd_hda_intel",
        "held by pid 2300 (python3) in session-2.scope: /dev/nvidia-uvm, /dev/nvidia0, /dev/nvidiactl",
        "held by pid 1200 (Xorg) in lightdm.service: /dev/dri/card1, /dev/nvidia-modeset, /dev/nvidia0, /dev/nvidiactl",
        "Display manager: lightdm.service (running)",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from\n{stdout}"
        );
    }
}

#[test]
fn status_json_is_valid_json() {
    let sim = fixtures::amd_with_audio();
    let out = pitcrew(sim.root(), &["status", "--json"]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let gpus = json["gpus"].as_array().unwrap();
    assert!(gpus
        .iter()
        .any(|g| g["address"] == "0000:03:00.0" && g["iommu_group"] == 14));
}

#[test]
fn dry_run_prints_the_plan_and_a_staged_root_is_never_changed() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let out = pitcrew(sim.root(), &["detach", "01:00.0", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("Move 0000:01:00.0, 0000:01:00.1"),
        "{stdout}"
    );
    assert!(stdout.contains("unload module nvidia\n"), "{stdout}");

    let out = pitcrew(sim.root(), &["detach", "01:00.0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("only --dry-run can plan against it"));
    assert_eq!(sim.driver("0000:01:00.0").as_deref(), Some("nvidia"));
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    for (args, says) in [
        (
            &["detach", "1:0.0", "--dry-run"][..],
            "is not a PCI address",
        ),
        (
            &["detach", "09:00.0", "--dry-run"][..],
            "no PCI device 0000:09:00.0",
        ),
        (&["reattach", "00:01.0", "--dry-run"][..], "is a PCI bridge"),
        (&["detach", "--dry-run"][..], "required"),
    ] {
        let out = pitcrew(sim.root(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}
