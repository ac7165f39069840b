//! `status` and `doctor` on a kept-off card, node by node: whether udev applied the rule (the
//! seat in its database), whether the session's ACL is still on the node, who still has it
//! (open or mapped), and Plasma's powerdevil on the card's DDC bus.

use pitcrew::KeepOffOptions;
use pitcrew_sim::{fixtures, ProcessTemplate, SimHost, SESSION_SCOPE};
use std::process::Command;

const NAVI: &str = "0000:0b:00.0";

/// The Navi desktop kept off the card, udev having applied the rule to card1 only, the
/// session's ACL still on renderD129, and a game that mapped it; returns the game's pid.
fn half_applied() -> (SimHost, u32) {
    let sim = fixtures::navi_audio_in_own_group();
    let options = KeepOffOptions {
        undo: false,
        keep_sound: false,
        strict: false,
        dry_run: false,
        live: true,
    };
    pitcrew::keep_off(
        &sim.host(),
        &[NAVI.parse().unwrap()],
        &options,
        &mut Vec::new(),
    )
    .unwrap();
    let data = sim.host().path("/run/udev/data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("c226:1"), "E:ID_SEAT=seat-pitcrew\n").unwrap();
    std::fs::write(
        data.join("c226:129"),
        "E:ID_FOR_SEAT=drm-pci-0000_0b_00_0\n",
    )
    .unwrap();
    sim.grant_acl("/dev/dri/renderD129", 1000);
    let game = sim.spawn(
        SESSION_SCOPE,
        ProcessTemplate::new("game").maps("/dev/dri/renderD129"),
    );
    (sim, game)
}

fn pitcrew(sim: &SimHost, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pitcrew"))
        .arg("--root")
        .arg(sim.root())
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn status_shows_each_kept_off_node_its_seat_acl_and_holders() {
    let (sim, game) = half_applied();
    let text = pitcrew(&sim, &["status"]);
    for expected in [
        "  /dev/dri/card1: kept off (seat-pitcrew)\n".to_string(),
        "  /dev/dri/renderD129: not yet: udev has it on seat0 (the rule applies at its next \
         event); its ACL still lets uid 1000 open it\n"
            .to_string(),
        format!(
            "    still held by pid {game} (game) in session-2.scope: /dev/dri/renderD129 (mapped)"
        ),
        "  /dev/i2c-5: not yet: udev has it on seat0".to_string(),
        "    still held by pid 2600 (powerdevil) in session-2.scope: /dev/i2c-5\n".to_string(),
        "  powerdevil (pid 2600) holds its DDC bus: set POWERDEVIL_NO_DDCUTIL=1 in the Plasma \
         session's environment"
            .to_string(),
        "or log out and in again: under the keep-off rule it no longer gets the buses".to_string(),
    ] {
        assert!(
            text.contains(&expected),
            "{expected:?} missing from\n{text}"
        );
    }

    let json: serde_json::Value =
        serde_json::from_str(&pitcrew(&sim, &["status", "--json"])).unwrap();
    let gpu = json["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["address"] == NAVI)
        .unwrap();
    let nodes = gpu["kept_off"]["nodes"].as_array().unwrap();
    let render = nodes
        .iter()
        .find(|n| n["node"] == "/dev/dri/renderD129")
        .unwrap();
    assert_eq!(render["kind"], "render");
    assert_eq!(render["in_effect"], false);
    assert_eq!(render["seat"], serde_json::Value::Null);
    assert_eq!(render["acl_users"], serde_json::json!([1000]));
    assert_eq!(render["holders"][0]["pid"], game);
    assert_eq!(
        render["holders"][0]["mapped"],
        serde_json::json!(["/dev/dri/renderD129"])
    );
    let card = nodes
        .iter()
        .find(|n| n["node"] == "/dev/dri/card1")
        .unwrap();
    assert_eq!(
        (&card["kind"], &card["seat"], &card["in_effect"]),
        (&"card".into(), &"seat-pitcrew".into(), &true.into())
    );
    let ddc = nodes.iter().find(|n| n["node"] == "/dev/i2c-5").unwrap();
    assert_eq!(ddc["kind"], "ddc");
    assert_eq!(ddc["sys"], "/sys/class/i2c-dev/i2c-5");
}

#[test]
fn doctor_gives_a_line_per_node_still_in_reach_of_the_session_and_for_powerdevil() {
    let (sim, game) = half_applied();
    let report = pitcrew::doctor(&sim.host(), None);
    let line = |name: &str| {
        report
            .checks
            .iter()
            .find(|c| c.name == format!("gpu {NAVI} {name}"))
            .cloned()
    };
    assert!(
        line("keep-off /dev/dri/card1").is_none(),
        "card1 is kept off, nothing to say"
    );
    let render = line("keep-off /dev/dri/renderD129").unwrap();
    assert_eq!(render.level, pitcrew::Level::Warn);
    assert_eq!(
        render.finding,
        format!(
            "udev still has it on seat0; its ACL still lets uid 1000 open it; game (pid {game}) \
             has it mapped"
        )
    );
    let fix = render.fix.unwrap();
    assert!(
        fix.starts_with(&format!(
            "`udevadm trigger --action=change /sys/bus/pci/devices/{NAVI}/drm/renderD129` applies the rule"
        )),
        "{fix}"
    );
    assert!(
        fix.contains("the next lend ends what still holds it"),
        "{fix}"
    );
    let ddc = line("ddc").unwrap();
    assert_eq!(ddc.level, pitcrew::Level::Warn);
    assert!(
        ddc.finding
            .starts_with("powerdevil (pid 2600) has /dev/i2c-5"),
        "{ddc:?}"
    );
    assert!(ddc.fix.unwrap().contains("POWERDEVIL_NO_DDCUTIL=1"));
}

#[test]
fn without_keep_off_doctor_offers_it_for_powerdevil() {
    let sim = fixtures::navi_audio_in_own_group();
    let report = pitcrew::doctor(&sim.host(), None);
    let ddc = report
        .checks
        .iter()
        .find(|c| c.name == format!("gpu {NAVI} ddc"))
        .unwrap();
    assert!(
        ddc.fix.as_deref().unwrap().ends_with(&format!(
            "or run `pitcrew keep-off {NAVI}` and log out and in again"
        )),
        "{ddc:?}"
    );
}
