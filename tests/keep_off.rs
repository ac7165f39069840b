//! `pitcrew keep-off` against a simulated host: the rules file, undo, staging, status, and the
//! plan of a card the desktop is kept off.

use crate::engine::{self, dry_run};
use pitcrew::KEEP_OFF_RULES as RULES;
use pitcrew::{
    keep_off as run_keep_off, Direction, KeepOffError, KeepOffOptions, Snapshot, Status,
};
use pitcrew_sim::{fixtures, SimHost};

pub(crate) fn keep_off(sim: &SimHost, devices: &[&str], undo: bool, keep_sound: bool) -> String {
    try_keep_off(sim, devices, undo, keep_sound, true).unwrap()
}

fn try_keep_off(
    sim: &SimHost,
    devices: &[&str],
    undo: bool,
    keep_sound: bool,
    live: bool,
) -> Result<String, KeepOffError> {
    let options = KeepOffOptions {
        undo,
        keep_sound,
        strict: false,
        dry_run: false,
        live,
    };
    keep_off_with(sim, devices, &options)
}

fn keep_off_with(
    sim: &SimHost,
    devices: &[&str],
    options: &KeepOffOptions,
) -> Result<String, KeepOffError> {
    let devices: Vec<_> = devices.iter().map(|d| d.parse().unwrap()).collect();
    let mut out = Vec::new();
    run_keep_off(&sim.host(), &devices, options, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

fn rules(sim: &SimHost) -> Option<String> {
    std::fs::read_to_string(sim.host().path(RULES)).ok()
}

/// The rule lines, without comments.
fn rule_lines(sim: &SimHost) -> Vec<String> {
    rules(sim)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn udevadm_calls(sim: &SimHost) -> Vec<String> {
    sim.commands()
        .into_iter()
        .filter(|argv| argv[0] == "udevadm")
        .map(|argv| argv[1..].join(" "))
        .collect()
}

/// What udev would store after applying the rules to the Radeon's card1 and ALSA card 1.
fn udev_applied_the_rules(sim: &SimHost) {
    let data = sim.host().path("/run/udev/data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("c226:1"),
        "E:ID_SEAT=seat-pitcrew\nG:mutter-device-ignore\n",
    )
    .unwrap();
    std::fs::write(
        data.join("+sound:card1"),
        "E:ACP_IGNORE=1\nE:PULSE_IGNORE=1\n",
    )
    .unwrap();
}

const DRM_RULE: &str = r#"SUBSYSTEM=="drm", KERNEL=="card[0-9]*", KERNELS=="0000:03:00.0", ENV{ID_SEAT}="seat-pitcrew", TAG-="master-of-seat", TAG+="mutter-device-ignore""#;
const RENDER_RULE: &str = r#"ACTION!="remove", SUBSYSTEM=="drm", KERNEL=="renderD[0-9]*", KERNELS=="0000:03:00.0", ENV{ID_SEAT}="seat-pitcrew", TAG+="mutter-device-ignore""#;
const DDC_RULE: &str = r#"ACTION!="remove", SUBSYSTEM=="i2c-dev", KERNELS=="0000:03:00.0", ENV{ID_SEAT}="seat-pitcrew""#;
const SOUND_RULE: &str = r#"ACTION!="remove", SUBSYSTEM=="sound", KERNEL=="card[0-9]*", KERNELS=="0000:03:00.1", ENV{ACP_IGNORE}="1", ENV{PULSE_IGNORE}="1""#;

#[test]
fn a_card_nothing_holds_is_kept_off_at_once() {
    let sim = fixtures::radeon_beside_the_desktop();
    // wireplumber has ALSA card 1 open: its part waits for the sound server's restart.
    sim.exit_process(2200);
    let out = keep_off(&sim, &["03:00.0"], false, false);
    assert_eq!(
        rule_lines(&sim),
        [DRM_RULE, RENDER_RULE, DDC_RULE, SOUND_RULE]
    );
    assert_eq!(
        udevadm_calls(&sim),
        [
            "control --reload",
            "trigger --action=change --settle /sys/bus/pci/devices/0000:03:00.0/drm/card1 /sys/bus/pci/devices/0000:03:00.0/drm/renderD129",
            "trigger --action=change --settle /sys/bus/pci/devices/0000:03:00.1/sound/card1",
        ]
    );
    assert!(
        out.contains("0000:03:00.0: from now on the desktop leaves it alone"),
        "{out}"
    );
    assert!(
        out.contains("PipeWire and PulseAudio leave it alone from now on"),
        "{out}"
    );
    // Nothing else changed on the host.
    assert!(sim.writes_to("/sys/bus/pci/drivers_probe").is_empty());
    assert!(sim.unit_active("lightdm.service"));
}

#[test]
fn cards_the_desktop_holds_are_not_retriggered() {
    let sim = fixtures::radeon_beside_the_desktop();
    let out = keep_off(&sim, &["03:00.0"], false, false);
    // wireplumber holds ALSA card 1: no trigger for it.
    assert_eq!(
        udevadm_calls(&sim),
        [
            "control --reload",
            "trigger --action=change --settle /sys/bus/pci/devices/0000:03:00.0/drm/card1 /sys/bus/pci/devices/0000:03:00.0/drm/renderD129",
        ]
    );
    assert!(
        out.contains("0000:03:00.1 (ALSA card 1) is open in wireplumber (pid 2200)"),
        "{out}"
    );
    assert!(out.contains("once the sound server restarts"), "{out}");

    let sim = fixtures::apu_and_dgpu_sharing_amdgpu();
    let out = keep_off(&sim, &["03:00.0"], false, false);
    // Xorg holds the card: only the sound card, which nothing holds, is re-triggered.
    assert_eq!(
        udevadm_calls(&sim),
        [
            "control --reload",
            "trigger --action=change --settle /sys/bus/pci/devices/0000:03:00.1/sound/card1",
        ]
    );
    assert!(
        out.contains("0000:03:00.0 is open in Xorg (pid 1200)"),
        "{out}"
    );
    assert!(out.contains("at the card's next lend"), "{out}");
    assert!(sim.process_alive(1200));
}

/// The render node and the DDC buses get the card's seat (strict mode: the render node is
/// root's alone), are re-triggered with the card, and `--undo` takes their lines out too.
#[test]
fn render_nodes_and_ddc_buses_are_kept_off_with_the_card() {
    let sim = fixtures::navi_audio_in_own_group();
    sim.exit_process(2600);
    let strict = KeepOffOptions {
        undo: false,
        keep_sound: true,
        strict: true,
        dry_run: false,
        live: true,
    };
    keep_off_with(&sim, &["0b:00.0"], &strict).unwrap();
    assert_eq!(
        rule_lines(&sim),
        [
            r#"SUBSYSTEM=="drm", KERNEL=="card[0-9]*", KERNELS=="0000:0b:00.0", ENV{ID_SEAT}="seat-pitcrew", TAG-="master-of-seat", TAG+="mutter-device-ignore""#,
            r#"ACTION!="remove", SUBSYSTEM=="drm", KERNEL=="renderD[0-9]*", KERNELS=="0000:0b:00.0", ENV{ID_SEAT}="seat-pitcrew", TAG+="mutter-device-ignore", MODE="0600""#,
            r#"ACTION!="remove", SUBSYSTEM=="i2c-dev", KERNELS=="0000:0b:00.0", ENV{ID_SEAT}="seat-pitcrew""#,
        ]
    );
    assert_eq!(
        udevadm_calls(&sim),
        [
            "control --reload",
            "trigger --action=change --settle /sys/bus/pci/devices/0000:0b:00.0/drm/card1 \
             /sys/bus/pci/devices/0000:0b:00.0/drm/renderD129 /sys/class/i2c-dev/i2c-5",
        ]
    );
    let undo = KeepOffOptions {
        undo: true,
        strict: false,
        ..strict
    };
    keep_off_with(&sim, &["0b:00.0"], &undo).unwrap();
    assert_eq!(rules(&sim), None);
}

#[test]
fn keep_sound_leaves_the_hdmi_audio_to_the_host() {
    let sim = fixtures::radeon_beside_the_desktop();
    keep_off(&sim, &["03:00.0"], false, true);
    assert_eq!(rule_lines(&sim), [DRM_RULE, RENDER_RULE, DDC_RULE]);
    assert!(rules(&sim)
        .unwrap()
        .contains("audio=0000:03:00.1 sound=host"));
    // Changing only the sound part re-applies only that.
    sim.exit_process(2200);
    keep_off(&sim, &["03:00.0"], false, false);
    assert_eq!(
        rule_lines(&sim),
        [DRM_RULE, RENDER_RULE, DDC_RULE, SOUND_RULE]
    );
    assert_eq!(
        udevadm_calls(&sim)[2..],
        [
            "control --reload",
            "trigger --action=change --settle /sys/bus/pci/devices/0000:03:00.1/sound/card1",
        ]
    );
}

#[test]
fn undo_takes_the_card_out_and_the_file_goes_with_the_last() {
    let sim = fixtures::radeon_beside_the_desktop();
    sim.exit_process(2200);
    keep_off(&sim, &["03:00.0"], false, false);
    let again = keep_off(&sim, &["0000:03:00.0"], false, false);
    assert!(again.contains("nothing to change"), "{again}");
    let out = keep_off(&sim, &["03:00.0"], true, false);
    assert_eq!(rules(&sim), None);
    assert!(out.contains("remove"), "{out}");
    assert!(out.contains("desktops may use it again"), "{out}");
    assert_eq!(
        udevadm_calls(&sim)[3..],
        [
            "control --reload",
            "trigger --action=change --settle /sys/bus/pci/devices/0000:03:00.0/drm/card1 /sys/bus/pci/devices/0000:03:00.0/drm/renderD129",
            "trigger --action=change --settle /sys/bus/pci/devices/0000:03:00.1/sound/card1",
        ]
    );
    let out = keep_off(&sim, &["03:00.0"], true, false);
    assert!(out.contains("is not kept off"), "{out}");
}

#[test]
fn a_staged_root_gets_the_file_and_nothing_runs() {
    let sim = fixtures::radeon_beside_the_desktop();
    let out = try_keep_off(&sim, &["03:00.0"], false, false, false).unwrap();
    assert_eq!(
        rule_lines(&sim),
        [DRM_RULE, RENDER_RULE, DDC_RULE, SOUND_RULE]
    );
    assert!(udevadm_calls(&sim).is_empty());
    assert!(out.contains("staged root"), "{out}");
}

#[test]
fn bad_input_changes_nothing() {
    let sim = fixtures::radeon_beside_the_desktop();
    for (devices, expected) in [
        (
            &["03:00.1"][..],
            "is not a GPU (its class is 0x040300, audio)",
        ),
        (
            &["03:00.0", "07:00.0"][..],
            "0000:07:00.0: no such PCI device",
        ),
    ] {
        let err = try_keep_off(&sim, devices, false, false, true).unwrap_err();
        assert!(matches!(err, KeepOffError::Input(_)), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
    }
    assert_eq!(rules(&sim), None);
    assert!(sim.commands().is_empty());
}

#[test]
fn a_rules_file_of_someone_else_is_never_overwritten() {
    let sim = fixtures::radeon_beside_the_desktop();
    let path = sim.host().path(RULES);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "SUBSYSTEM==\"drm\", ENV{ID_SEAT}=\"seat1\"\n").unwrap();
    let err = try_keep_off(&sim, &["03:00.0"], false, false, true).unwrap_err();
    assert!(
        err.to_string()
            .contains("not written by `pitcrew keep-off`"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "SUBSYSTEM==\"drm\", ENV{ID_SEAT}=\"seat1\"\n"
    );
}

#[test]
fn status_says_whether_the_rules_hold_and_what_still_has_the_sound_card() {
    let sim = fixtures::radeon_beside_the_desktop();
    keep_off(&sim, &["03:00.0"], false, false);
    let status = Status::of(&Snapshot::read(&sim.host()).unwrap()).to_string();
    assert!(
        status.contains("kept off the desktop (/etc/udev/rules.d/73-pitcrew-keep-off.rules): rule written, not in effect yet"),
        "{status}"
    );
    assert!(
        status.contains("not in effect until the sound server restarts"),
        "{status}"
    );
    assert!(
        status.contains(
            "sound held by pid 2200 (wireplumber) in session-2.scope: /dev/snd/controlC1"
        ),
        "{status}"
    );
    udev_applied_the_rules(&sim);
    sim.exit_process(2200);
    let status = Status::of(&Snapshot::read(&sim.host()).unwrap()).to_string();
    assert!(
        status.contains("rules.d/73-pitcrew-keep-off.rules): the desktop leaves it alone"),
        "{status}"
    );
    assert!(
        status.contains("its sound: sound servers leave it alone"),
        "{status}"
    );
    assert!(!status.contains("sound held by"), "{status}");
    // The iGPU the desktop runs on is not kept off.
    assert_eq!(
        status.matches("kept off the desktop").count(),
        1,
        "{status}"
    );
}

#[test]
fn a_kept_off_card_nothing_of_the_desktop_holds_never_touches_the_display_manager() {
    let sim = fixtures::radeon_beside_the_desktop();
    sim.exit_process(2200);
    keep_off(&sim, &["03:00.0"], false, false);
    udev_applied_the_rules(&sim);
    let plan = dry_run(&sim, Direction::Detach, &["03:00.0"]);
    assert!(!plan.contains("lightdm"), "{plan}");
    // Even where the config says to always stop it: the session is what keep-off protects.
    let mut request = engine::request(Direction::Detach, &["03:00.0"]);
    request.dry_run = true;
    request.policy.display_manager = pitcrew::DisplayManagerPolicy::Always;
    let plan = pitcrew::handover(&sim.host(), &request)
        .unwrap()
        .plan
        .to_string();
    assert!(!plan.contains("lightdm"), "{plan}");
}

#[test]
fn a_kept_off_card_the_desktop_still_holds_still_stops_the_display_manager() {
    let sim = fixtures::apu_and_dgpu_sharing_amdgpu();
    keep_off(&sim, &["03:00.0"], false, false);
    let plan = dry_run(&sim, Direction::Detach, &["03:00.0"]);
    assert!(
        plan.contains("stop sddm.service (the desktop holds the card)"),
        "{plan}"
    );
}
