//! Signals and waiting, as the engine sees processes through `Effects::process`.

use std::thread;
use std::time::Duration;

use crate::common::exists;
use pitcrew::Signal;
use pitcrew_sim::errno::ESRCH;
use pitcrew_sim::{fixtures, Event};

const LONG: Duration = Duration::from_secs(30);

#[test]
fn a_gone_pid_is_esrch() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let effects = sim.effects();
    assert_eq!(
        effects.process(4242).err().and_then(|e| e.raw_os_error()),
        Some(ESRCH)
    );
    sim.exit_process(2300);
    assert_eq!(
        effects.process(2300).err().and_then(|e| e.raw_os_error()),
        Some(ESRCH)
    );
}

#[test]
fn term_ends_a_process_and_removes_its_proc_dir() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let before = sim.module_refcnt("nvidia").unwrap();
    let python = sim.effects().process(2300).unwrap();
    python.signal(Signal::Term).unwrap();
    assert!(python.wait_exit(Duration::ZERO).unwrap());
    assert!(!sim.process_alive(2300));
    assert!(!exists(&sim, "/proc/2300"));
    assert_eq!(sim.module_refcnt("nvidia"), Some(before - 1));
    // Signalling a process that already exited is harmless, like a pidfd.
    python.signal(Signal::Kill).unwrap();
    assert_eq!(
        sim.events(),
        [
            Event::Signal {
                pid: 2300,
                signal: Signal::Term
            },
            Event::Signal {
                pid: 2300,
                signal: Signal::Kill
            }
        ]
    );
}

#[test]
fn an_ignored_term_leaves_it_running_until_kill() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    sim.ignore_term(2300);
    let python = sim.effects().process(2300).unwrap();
    python.signal(Signal::Term).unwrap();
    assert!(!python.wait_exit(Duration::from_millis(20)).unwrap());
    assert!(sim.process_alive(2300));
    assert!(exists(&sim, "/proc/2300/fd"));
    python.signal(Signal::Kill).unwrap();
    assert!(python.wait_exit(Duration::ZERO).unwrap());
}

#[test]
fn wait_exit_wakes_when_another_thread_ends_the_process() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    sim.ignore_term(1200);
    let xorg = sim.effects().process(1200).unwrap();
    thread::scope(|s| {
        let waiter = s.spawn(move || xorg.wait_exit(LONG).unwrap());
        sim.exit_process(1200);
        assert!(waiter.join().unwrap());
    });
}

#[test]
fn wait_exit_wakes_when_the_unit_is_stopped() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    let persistenced = sim.effects().process(900).unwrap();
    thread::scope(|s| {
        let waiter = s.spawn(move || persistenced.wait_exit(LONG).unwrap());
        let out = sim
            .effects()
            .run("systemctl", &["stop", "nvidia-persistenced"], LONG)
            .unwrap();
        assert!(out.success);
        assert!(waiter.join().unwrap());
    });
}
