//! Fault injection for the crash tests, compiled only with the `fault-injection` feature (the
//! release build has none of it).

/// The step after which the run should die, from `PITCREW_CRASH_AFTER_STEP`.
pub fn crash_after() -> Option<usize> {
    std::env::var("PITCREW_CRASH_AFTER_STEP")
        .ok()
        .and_then(|n| n.parse().ok())
}

/// Dies the way a crash would, so the next run meets exactly what a kill -9 leaves.
pub fn die() -> ! {
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    unreachable!("SIGKILL cannot be caught")
}
