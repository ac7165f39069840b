//! Processes that hold a node of the card only by a mapping (mapped, then closed the fd), found
//! in /proc/<pid>/maps by the node's device and inode, never by the name on the line.

use crate::engine::{detach, dry_run, signals_to, status};
use pitcrew::Direction;
use pitcrew_sim::{fixtures, ProcessTemplate, Signal, SimHost, SESSION_SCOPE};
use std::os::unix::fs::MetadataExt;

const RADEON: &str = "0000:03:00.0";
const RENDER: &str = "/dev/dri/renderD129";

/// The device (major, minor) and inode of a node's file under the simulated root.
fn identity(sim: &SimHost, node: &str) -> (u32, u32, u64) {
    let meta = std::fs::metadata(sim.root().join(node.trim_start_matches('/'))).unwrap();
    let dev = meta.dev();
    (rustix::fs::major(dev), rustix::fs::minor(dev), meta.ino())
}

#[test]
fn a_process_that_only_mapped_the_render_node_is_listed_planned_for_and_ended() {
    let sim = fixtures::radeon_beside_the_desktop();
    let game = sim.spawn(
        SESSION_SCOPE,
        ProcessTemplate::new("game")
            .maps(RENDER)
            .ordinary_mappings(400),
    );
    assert!(sim.process_fds(game).is_empty(), "it has no fd on the node");

    let text = status(&sim, &[]);
    let line = format!("held by pid {game} (game) in session-2.scope: {RENDER} (mapped)");
    assert!(text.contains(&line), "{line:?} missing from\n{text}");
    let json: serde_json::Value = serde_json::from_str(&status(&sim, &["--json"])).unwrap();
    let gpu = json["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["address"] == RADEON)
        .unwrap();
    let holder = gpu["holders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["pid"] == game)
        .unwrap();
    assert_eq!(holder["nodes"], serde_json::json!([RENDER]));
    assert_eq!(holder["mapped"], serde_json::json!([RENDER]));

    let plan = dry_run(&sim, Direction::Detach, &["03:00.0"]);
    let step = format!("end process {game} (game) with {RENDER} mapped: TERM");
    assert!(plan.contains(&step), "{step:?} missing from\n{plan}");

    detach(&sim, &["03:00.0"]).unwrap();
    assert!(!sim.process_alive(game));
    assert_eq!(signals_to(&sim, game), [Signal::Term]);
    assert_eq!(sim.driver(RADEON).as_deref(), Some("vfio-pci"));
}

/// One that maps the render node between the plan and the module's unload is found by the
/// check before it, and ended under the same policy.
#[test]
fn a_mapping_made_after_the_plan_is_ended_before_the_unload() {
    let sim = fixtures::radeon_beside_the_desktop();
    sim.spawn_on_write(
        &format!("/sys/bus/pci/devices/{RADEON}/driver_override"),
        SESSION_SCOPE,
        ProcessTemplate::new("vkcube").maps(RENDER),
    );
    detach(&sim, &["03:00.0"]).unwrap();
    assert!(sim.pids_of("vkcube").is_empty(), "the late mapper survived");
    assert!(!sim.module_loaded("amdgpu"));
}

#[test]
fn a_file_with_the_nodes_inode_on_another_device_or_with_its_name_is_no_holder() {
    let sim = fixtures::radeon_beside_the_desktop();
    let (major, minor, inode) = identity(&sim, RENDER);
    let decoys = [
        // The same inode on another filesystem.
        ProcessTemplate::new("same-inode").maps_file(major + 1, minor, inode, "/home/u/a.bin"),
        // The node's name on a line whose device and inode are another file's.
        ProcessTemplate::new("same-name").maps_file(major, minor, inode + (1 << 40), RENDER),
        // The node's device and inode as text in a file's name.
        ProcessTemplate::new("in-the-name").maps_file(
            major + 1,
            minor,
            7,
            &format!("/tmp/x {major:02x}:{minor:02x} {inode} y"),
        ),
    ];
    let pids: Vec<u32> = decoys
        .into_iter()
        .map(|template| sim.spawn(SESSION_SCOPE, template.ordinary_mappings(20)))
        .collect();
    let text = status(&sim, &[]);
    let plan = dry_run(&sim, Direction::Detach, &["03:00.0"]);
    for pid in &pids {
        assert!(!text.contains(&format!("pid {pid} ")), "{text}");
        assert!(!plan.contains(&format!("process {pid} ")), "{plan}");
    }
    detach(&sim, &["03:00.0"]).unwrap();
    for pid in pids {
        assert!(signals_to(&sim, pid).is_empty(), "{pid} was signalled");
    }
}
