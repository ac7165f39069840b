//! The `Effects` the engine is handed: it records every call, applies injected faults, then lets
//! the simulated kernel act and re-renders the tree.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pitcrew::{CmdOutput, Effects, Process};

use crate::errno::{EINVAL, ESRCH};
use crate::processes::SimProcess;
use crate::state::{Shared, State};
use crate::{commands, kernel, Event};

pub(crate) struct SimEffects {
    pub shared: Arc<Shared>,
}

impl Effects for SimEffects {
    /// Recorded on entry (before any block), so the log shows what the engine attempted.
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let shared = &self.shared;
        let Some(host_path) = shared.host_path(path) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is outside the simulated root (errno {EINVAL})",
                    path.display()
                ),
            ));
        };
        let mut state = shared.lock();
        state.events.push(Event::Write {
            path: host_path.clone(),
            value: value.to_string(),
        });
        state = wait_unblocked(shared, state, &host_path);
        if state.closed {
            return Err(io::Error::other(
                "pitcrew-sim: the simulated host was dropped",
            ));
        }
        if let Some(&errno) = state.faults.failing_writes.get(&host_path) {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let target = shared.resolve(&host_path)?;
        let result = kernel::write(&mut state.model, &target, value);
        shared.commit(&state)?;
        result
    }

    /// Commands complete instantly, so `timeout` never expires.
    fn run(&self, program: &str, args: &[&str], _timeout: Duration) -> io::Result<CmdOutput> {
        let argv: Vec<String> = std::iter::once(program)
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let mut state = self.shared.lock();
        state.events.push(Event::Command { argv: argv.clone() });
        if let Some(stderr) = state.faults.command_failure(&argv) {
            let output = CmdOutput {
                success: false,
                stdout: String::new(),
                stderr: stderr.to_string(),
            };
            self.shared.changed.notify_all();
            return Ok(output);
        }
        let output = commands::run(&mut state.model, &argv);
        self.shared.commit(&state)?;
        Ok(output)
    }

    fn process(&self, pid: u32) -> io::Result<Box<dyn Process>> {
        let state = self.shared.lock();
        match state.model.processes.get(&pid) {
            Some(p) if p.alive => Ok(Box::new(SimProcess {
                shared: self.shared.clone(),
                pid,
            })),
            _ => Err(io::Error::from_raw_os_error(ESRCH)),
        }
    }
}

/// Sleeps on the condvar while `path` is blocked, counting itself as waiting so a test can
/// tell the engine reached the write.
fn wait_unblocked<'a>(
    shared: &'a Shared,
    mut state: std::sync::MutexGuard<'a, State>,
    path: &str,
) -> std::sync::MutexGuard<'a, State> {
    if state.closed || !state.faults.is_blocked(path) {
        return state;
    }
    *state.faults.waiting.entry(path.to_string()).or_default() += 1;
    shared.changed.notify_all();
    state = shared
        .changed
        .wait_while(state, |s| !s.closed && s.faults.is_blocked(path))
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(n) = state.faults.waiting.get_mut(path) {
        *n -= 1;
    }
    state
}
