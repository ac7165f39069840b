//! Injected faults: blocked and failing writes.

use std::thread;
use std::time::Duration;

use crate::common::{errno, exists, LIMIT};
use pitcrew_sim::errno::EIO;
use pitcrew_sim::{fixtures, Event};

const GPU: &str = "0000:01:00.0";
const UNBIND: &str = "/sys/bus/pci/drivers/nvidia/unbind";
const LONG: Duration = Duration::from_secs(30);

#[test]
fn a_blocked_write_takes_effect_only_once_released() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let block = sim.block_writes(UNBIND);
    let host = sim.host();
    thread::scope(|s| {
        let writer = s.spawn(|| host.write(UNBIND, GPU, LIMIT));
        assert!(sim.wait_blocked(UNBIND, LONG));
        // Recorded on entry, not applied yet.
        assert_eq!(sim.writes_to(UNBIND), [GPU]);
        assert_eq!(sim.driver(GPU).as_deref(), Some("nvidia"));
        // Other paths are not blocked meanwhile.
        host.write(
            "/sys/bus/pci/drivers/snd_hda_intel/unbind",
            "0000:01:00.1",
            LIMIT,
        )
        .unwrap();
        block.release();
        writer.join().unwrap().unwrap();
    });
    assert_eq!(sim.driver(GPU), None);
    assert!(!exists(&sim, "/sys/bus/pci/devices/0000:01:00.0/driver"));
}

#[test]
fn wait_blocked_times_out_when_nobody_writes() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let _block = sim.block_writes(UNBIND);
    assert!(!sim.wait_blocked(UNBIND, Duration::from_millis(20)));
}

#[test]
fn dropping_the_sim_frees_a_blocked_writer_with_an_error() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let _block = sim.block_writes(UNBIND);
    let host = sim.host();
    let writer = thread::spawn(move || host.write(UNBIND, GPU, LIMIT));
    assert!(sim.wait_blocked(UNBIND, LONG));
    drop(sim);
    assert!(writer.join().unwrap().is_err());
}

#[test]
fn a_failing_write_returns_its_errno_without_effect() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    sim.fail_writes(UNBIND, EIO);
    assert_eq!(errno(sim.host().write(UNBIND, GPU, LIMIT)), Some(EIO));
    assert_eq!(sim.driver(GPU).as_deref(), Some("nvidia"));
    sim.clear_faults();
    sim.host().write(UNBIND, GPU, LIMIT).unwrap();
    assert_eq!(
        sim.events(),
        [
            Event::Write {
                path: UNBIND.into(),
                value: GPU.into()
            },
            Event::Write {
                path: UNBIND.into(),
                value: GPU.into()
            }
        ]
    );
}
