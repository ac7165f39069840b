//! The real kernel's binding writes (bind, unbind, drivers_probe) go through `pitcrew __write` in
//! a process of its own, one for all the writes of a run: errors come back as the kernel's errno,
//! and a write that never returns is cut off at its deadline and leaves that helper behind.

use pitcrew::{Effects, RealEffects};
use std::time::{Duration, Instant};

fn effects() -> RealEffects {
    RealEffects::with_helper(env!("CARGO_BIN_EXE_pitcrew"))
}

#[test]
fn the_helper_writes_the_whole_value_to_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let attr = dir.path().join("drivers_probe");
    std::fs::write(&attr, "").unwrap();
    effects()
        .write(&attr, "0000:01:00.0", Duration::from_secs(10))
        .unwrap();
    assert_eq!(std::fs::read_to_string(&attr).unwrap(), "0000:01:00.0");
}

#[test]
fn the_helpers_errno_comes_back_as_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = effects()
        .write(
            &dir.path().join("unbind"),
            "0000:01:00.0",
            Duration::from_secs(10),
        )
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(2), "{err}");
}

#[test]
fn a_write_that_never_returns_is_cut_off_at_the_deadline_with_where_it_waits() {
    // Opening a FIFO nobody reads waits in the kernel like an unbind of a busy device.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("unbind");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let err = effects()
        .write(&fifo, "0000:01:00.0", Duration::from_millis(300))
        .unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("the kernel did not return within 300ms (helper pid "),
        "{message}"
    );
    assert!(message.contains(" waits in "), "{message}");
}

/// The write helpers this thread started that still run.
fn helpers() -> Vec<u32> {
    children()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.ends_with(b"\0__write\0"))
        })
        .collect()
}

#[test]
fn one_helper_serves_every_write_until_one_gets_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let effects = effects();
    let probe = dir.path().join("drivers_probe");
    std::fs::write(&probe, "").unwrap();
    let limit = Duration::from_secs(10);
    effects.write(&probe, "0000:01:00.0", limit).unwrap();
    let first = helpers();
    assert_eq!(first.len(), 1, "{first:?}");
    effects.write(&probe, "0000:01:00.1", limit).unwrap();
    let err = effects
        .write(&dir.path().join("unbind"), "0000:01:00.1", limit)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(2), "{err}");
    assert_eq!(helpers(), first, "a second helper was started");

    let fifo = dir.path().join("bind");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let err = effects
        .write(&fifo, "0000:01:00.0", Duration::from_millis(300))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("helper pid {}", first[0])),
        "{err}"
    );
    effects.write(&probe, "0000:02:00.0", limit).unwrap();
    assert_eq!(std::fs::read_to_string(&probe).unwrap(), "0000:02:00.0");
    let now = helpers();
    assert!(
        now.len() == 1 && now != first,
        "the stuck helper was used again: {now:?}"
    );
}

/// Every child of this thread, exited but not reaped ones too.
fn children() -> Vec<u32> {
    let children = std::fs::read_to_string("/proc/thread-self/children").unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

/// systemd logs a helper still in a failed unit's cgroup after pitcrew exited as "remains
/// running": the run's end ends and reaps it.
#[test]
fn the_helper_is_ended_and_reaped_with_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let effects = effects();
    let probe = dir.path().join("drivers_probe");
    std::fs::write(&probe, "").unwrap();
    effects
        .write(&probe, "0000:01:00.0", Duration::from_secs(10))
        .unwrap();
    let helper = helpers();
    assert_eq!(helper.len(), 1, "{helper:?}");
    drop(effects);
    assert!(!children().contains(&helper[0]), "{:?}", children());
}

#[test]
fn only_binding_writes_need_the_helper() {
    let dir = tempfile::tempdir().unwrap();
    let no_helper = RealEffects::with_helper(dir.path().join("no-such-pitcrew"));
    let attr = dir.path().join("driver_override");
    std::fs::write(&attr, "").unwrap();
    no_helper
        .write(&attr, "vfio-pci", Duration::from_secs(10))
        .unwrap();
    assert_eq!(std::fs::read_to_string(&attr).unwrap(), "vfio-pci");
    let unbind = dir.path().join("unbind");
    std::fs::write(&unbind, "").unwrap();
    let err = no_helper
        .write(&unbind, "0000:01:00.0", Duration::from_secs(10))
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot start the write helper"),
        "{err}"
    );
}
