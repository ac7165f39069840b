//! Fuzzing on stable Rust: for each target, inputs are either built from its grammar or mutated
//! from inputs that reached a new outcome, and every input must keep the target's invariants
//! (no panic, errors one bounded line, escaping as systemd does it). Deterministic for a seed.

mod mutate;
pub mod rng;
pub mod targets;

use rng::Rng;
use std::collections::BTreeSet;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// How long a run goes on.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// This many inputs per target.
    Cases(u64),
    /// This long in all, shared evenly between the targets.
    Time(Duration),
}

/// One input a target must handle: it either keeps the invariants, returning a short
/// description of the outcome (new outcomes steer the mutations), or says what broke.
pub trait Target {
    fn name(&self) -> &'static str;
    /// Known-good and known-tricky inputs to start from.
    fn seeds(&self) -> Vec<Vec<u8>>;
    /// Tokens of the format, inserted by mutations.
    fn dictionary(&self) -> &'static [&'static str];
    /// An input built from the format's grammar.
    fn generate(&mut self, rng: &mut Rng) -> Vec<u8>;
    fn check(&mut self, input: &[u8]) -> Result<String, String>;
    /// Checks that are cheaper in batches (an external oracle); called at the end too.
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// How many inputs an external oracle confirmed; `None` when it had none or it is absent.
    fn oracle_checked(&self) -> Option<u64> {
        None
    }
}

/// An input that broke an invariant or panicked.
#[derive(Debug, Clone)]
pub struct Crash {
    pub target: &'static str,
    pub input: Vec<u8>,
    pub what: String,
}

#[derive(Debug, Default)]
pub struct Report {
    /// Per target: its name, the inputs run and the distinct outcomes seen.
    pub targets: Vec<(&'static str, u64, usize)>,
    pub crashes: Vec<Crash>,
    /// Strings whose escaping `systemd-escape` confirmed; `None` when it is not installed.
    pub escape_oracle: Option<u64>,
}

impl Report {
    pub fn executions(&self) -> u64 {
        self.targets.iter().map(|t| t.1).sum()
    }
}

/// Keeps at most this many inputs per target to mutate from.
const POOL: usize = 512;
/// Remembers at most this many outcomes per target (a long run must not grow without bound).
const OUTCOMES: usize = 100_000;

/// Runs every target within `budget`, starting from `seed`.
pub fn run(budget: Budget, seed: u64) -> Report {
    let mut targets = targets::all();
    let mut report = Report::default();
    let share = match budget {
        Budget::Time(total) => Some(total / targets.len() as u32),
        Budget::Cases(_) => None,
    };
    // Panics are expected findings here: keep their messages, not their noise.
    let quiet = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    for (n, target) in targets.iter_mut().enumerate() {
        let mut rng = Rng::new(seed ^ (n as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let deadline = share.map(|share| Instant::now() + share);
        let cases = match budget {
            Budget::Cases(cases) => cases,
            Budget::Time(_) => u64::MAX,
        };
        let (executions, outcomes) = fuzz_one(
            target.as_mut(),
            &mut rng,
            cases,
            deadline,
            &mut report.crashes,
        );
        report.targets.push((target.name(), executions, outcomes));
        if let Some(n) = target.oracle_checked() {
            *report.escape_oracle.get_or_insert(0) += n;
        }
    }
    panic::set_hook(quiet);
    report
}

fn fuzz_one(
    target: &mut dyn Target,
    rng: &mut Rng,
    cases: u64,
    deadline: Option<Instant>,
    crashes: &mut Vec<Crash>,
) -> (u64, usize) {
    let mut pool = target.seeds();
    let mut seen = BTreeSet::new();
    let mut executions = 0;
    let name = target.name();
    let record = |input: &[u8], what: String, crashes: &mut Vec<Crash>| {
        // One example of each kind of failure is enough to act on.
        let kind = outcome_of(&what);
        if !crashes
            .iter()
            .any(|c| c.target == name && outcome_of(&c.what) == kind)
        {
            crashes.push(Crash {
                target: name,
                input: input.to_vec(),
                what,
            });
        }
    };
    while executions < cases && deadline.is_none_or(|d| Instant::now() < d) {
        let input = if executions < pool.len() as u64 {
            pool[executions as usize].clone()
        } else if rng.one_in(3) {
            target.generate(rng)
        } else {
            let base = rng.pick(&pool).clone();
            mutate::mutate(rng, &base, target.dictionary(), &pool)
        };
        executions += 1;
        match panic::catch_unwind(AssertUnwindSafe(|| target.check(&input))) {
            Ok(Ok(outcome)) => {
                if seen.len() < OUTCOMES && seen.insert(outcome) {
                    if pool.len() >= POOL {
                        let i = rng.below(pool.len());
                        pool[i] = input;
                    } else {
                        pool.push(input);
                    }
                }
            }
            Ok(Err(what)) => record(&input, what, crashes),
            Err(panic) => record(&input, format!("panic: {}", panic_text(&panic)), crashes),
        }
        if executions % 256 == 0 {
            if let Err(what) = target.flush() {
                record(b"(batch)", what, crashes);
            }
        }
    }
    if let Err(what) = target.flush() {
        record(b"(batch)", what, crashes);
    }
    (executions, seen.len())
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

/// An error message pitcrew shows: one line, no control characters, at most `max` bytes.
pub fn one_bounded_line(what: &str, message: &str, max: usize) -> Result<(), String> {
    if message.len() > max {
        return Err(format!(
            "{what}: message of {} bytes (at most {max})",
            message.len()
        ));
    }
    if let Some(c) = message.chars().find(|c| c.is_control()) {
        return Err(format!("{what}: control character {c:?} in the message"));
    }
    Ok(())
}

/// A coarse name for an outcome: the message with its numbers and quoted parts dropped (from
/// a quote to the last of its kind, so escaped quotes inside do not matter), so "line 3" and
/// "line 4" are one outcome and new kinds of error stand out.
pub fn outcome_of(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '\'' | '"' | '`' => {
                if let Some(end) = rest.rfind(c) {
                    rest = &rest[end + 1..];
                }
            }
            c if c.is_ascii_digit() => {}
            c => out.push(c),
        }
        if out.len() > 200 {
            break;
        }
    }
    out
}

/// A scratch directory in memory when there is one: the hook and record targets write a file
/// per input, and a disk would make them crawl.
pub fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("a temporary directory")
}
