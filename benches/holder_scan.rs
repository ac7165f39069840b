//! The holder scan on a busy desktop: 500 processes of 5,000 mappings each (a desktop with
//! browsers), two of them holding the lent card's render node, one by an fd and one only by a
//! mapping. Times `Snapshot::read`, whose walk of /proc reads every process's fds and memory
//! map; everything else it reads is a handful of sysfs files here.
//!
//! `cargo bench --bench holder_scan`. Not a test: it asserts no time, it prints them.

use pitcrew::Snapshot;
use pitcrew_sim::{Builder, DeviceSpec, ModuleSpec, ProcessTemplate, SESSION_SCOPE};
use std::time::{Duration, Instant};

const PROCESSES: u32 = 500;
const MAPPINGS: usize = 5_000;
const RUNS: usize = 10;
const RENDER: &str = "/dev/dri/renderD129";

fn main() {
    let mut builder = Builder::new()
        .module(ModuleSpec::new("drm"))
        .module(
            ModuleSpec::new("amdgpu")
                .deps(&["drm"])
                .drivers(&["amdgpu"])
                .drm_for(&["amdgpu"]),
        )
        .device(
            DeviceSpec::new("0000:03:00.0", 0x1002, 0x73bf, 0x030000)
                .driver("amdgpu")
                .group(14)
                .drm_card(1),
        );
    for n in 0..PROCESSES {
        let mut process = ProcessTemplate::new(&format!("app{n}")).ordinary_mappings(MAPPINGS);
        process = match n {
            100 => process.holds(RENDER),
            400 => process.maps(RENDER),
            _ => process,
        };
        builder = builder.process(10_000 + n, SESSION_SCOPE, process);
    }
    let built = Instant::now();
    let sim = builder.build();
    eprintln!(
        "built {PROCESSES} processes of {MAPPINGS} mappings in {:.1?}",
        built.elapsed()
    );
    let host = sim.host();
    let mut times: Vec<Duration> = (0..=RUNS)
        .map(|_| {
            let start = Instant::now();
            let snapshot = Snapshot::read(&host).expect("read the simulated host");
            let took = start.elapsed();
            let holders: Vec<u32> = snapshot.holders.iter().map(|h| h.pid).collect();
            assert_eq!(holders, [10_100, 10_400], "the holders found");
            took
        })
        .collect();
    // The first run warms the caches the others find warm.
    times.remove(0);
    times.sort();
    println!(
        "holder scan of {PROCESSES} processes x {MAPPINGS} mappings: median {:.1?}, min {:.1?}, max {:.1?} ({RUNS} runs)",
        times[RUNS / 2],
        times[0],
        times[RUNS - 1]
    );
}
