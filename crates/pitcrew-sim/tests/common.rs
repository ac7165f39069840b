//! Helpers shared by the sim's tests.

use std::collections::BTreeMap;
use std::fs;

use pitcrew_sim::SimHost;

/// How long a write may take before the engine would call it stuck; nothing here takes long.
pub const LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

pub fn read(sim: &SimHost, path: &str) -> String {
    fs::read_to_string(sim.root().join(path.trim_start_matches('/')))
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
}

pub fn link(sim: &SimHost, path: &str) -> Option<String> {
    fs::read_link(sim.root().join(path.trim_start_matches('/')))
        .ok()
        .map(|t| t.to_string_lossy().into_owned())
}

pub fn exists(sim: &SimHost, path: &str) -> bool {
    fs::symlink_metadata(sim.root().join(path.trim_start_matches('/'))).is_ok()
}

pub fn entries(sim: &SimHost, path: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(sim.root().join(path.trim_start_matches('/')))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub fn errno(result: std::io::Result<()>) -> Option<i32> {
    result.err().and_then(|e| e.raw_os_error())
}

pub fn run(sim: &SimHost, program: &str, args: &[&str]) -> pitcrew::CmdOutput {
    sim.host()
        .effects()
        .run(program, args, std::time::Duration::from_secs(5))
        .unwrap()
}

/// /proc/modules, /sys/module/*/refcnt and holders/ all tell the same story, like the kernel.
pub fn assert_modules_consistent(sim: &SimHost) {
    let text = read(sim, "/proc/modules");
    let mut listed = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 6, "{line:?}");
        assert_eq!(&fields[4..], ["Live", "0x0000000000000000"], "{line:?}");
        let name = fields[0];
        fields[1].parse::<u64>().expect("size");
        let refcnt: usize = fields[2].parse().expect("refcnt");
        let mut used_by: Vec<String> = if fields[3] == "-" {
            Vec::new()
        } else {
            assert!(fields[3].ends_with(','), "{line:?}");
            fields[3]
                .trim_end_matches(',')
                .split(',')
                .map(String::from)
                .collect()
        };
        used_by.sort();
        let dir = format!("/sys/module/{name}");
        assert_eq!(read(sim, &format!("{dir}/refcnt")), format!("{refcnt}\n"));
        assert_eq!(read(sim, &format!("{dir}/initstate")), "live\n");
        assert_eq!(entries(sim, &format!("{dir}/holders")), used_by, "{name}");
        assert!(refcnt >= used_by.len(), "{line:?}");
        assert!(sim.module_loaded(name));
        assert_eq!(sim.module_refcnt(name), Some(refcnt));
        listed.insert(name.to_string(), ());
    }
    for name in entries(sim, "/sys/module") {
        let builtin = !exists(sim, &format!("/sys/module/{name}/refcnt"));
        assert_eq!(listed.contains_key(&name), !builtin, "{name}");
    }
}

/// Takes the fixtures' NVIDIA GPU (01:00.0) off nvidia with driver_override=vfio-pci, the state
/// a detach leaves it in before vfio-pci claims it.
pub fn park_for_vfio(sim: &SimHost) {
    let host = sim.host();
    host.write("/sys/bus/pci/drivers/nvidia/unbind", "0000:01:00.0", LIMIT)
        .unwrap();
    host.write(
        "/sys/bus/pci/devices/0000:01:00.0/driver_override",
        "vfio-pci",
        LIMIT,
    )
    .unwrap();
}
