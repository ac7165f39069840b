//! Waiting for a condition the kernel will make true, with a deadline and a name.

use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("gave up after {waited:?} waiting for {what}")]
pub struct Timeout {
    pub what: String,
    pub waited: Duration,
}

/// Polls `done` until it returns true or `limit` passes. sysfs offers no change notification for
/// driver links, so this polls, starting fast (most bindings finish within a millisecond) and
/// backing off to 20 ms so a slow probe does not spin a core.
pub fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Result<(), Timeout> {
    let start = Instant::now();
    let mut interval = Duration::from_micros(200);
    loop {
        if done() {
            return Ok(());
        }
        let waited = start.elapsed();
        if waited >= limit {
            return Err(Timeout {
                what: what.to_string(),
                waited,
            });
        }
        std::thread::sleep(interval.min(limit - waited)); // poll interval, not a settle delay
        interval = (interval * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_as_soon_as_the_condition_holds() {
        let mut calls = 0;
        until("the third call", Duration::from_secs(5), || {
            calls += 1;
            calls == 3
        })
        .unwrap();
        assert_eq!(calls, 3);
    }

    #[test]
    fn names_what_it_waited_for_when_the_deadline_passes() {
        let err = until("a driver link", Duration::from_millis(5), || false).unwrap_err();
        assert_eq!(err.what, "a driver link");
        assert!(err.waited >= Duration::from_millis(5));
    }
}
