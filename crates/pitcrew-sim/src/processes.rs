//! Simulated processes as the engine sees them through `Effects::process`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use pitcrew::{Process, Signal};

use crate::state::Shared;
use crate::Event;

/// A handle on one simulated pid; pids are never reused, so it stays pinned like a pidfd.
pub(crate) struct SimProcess {
    pub shared: Arc<Shared>,
    pub pid: u32,
}

impl Process for SimProcess {
    /// Like a pidfd: signalling a process that already exited succeeds and does nothing.
    fn signal(&self, signal: Signal) -> io::Result<()> {
        let mut state = self.shared.lock();
        state.events.push(Event::Signal {
            pid: self.pid,
            signal,
        });
        let Some(p) = state.model.processes.get(&self.pid) else {
            return Ok(());
        };
        let ends = p.alive && (signal == Signal::Kill || !p.ignore_term);
        if ends {
            state.model.end_process(self.pid);
        }
        self.shared.commit(&state)
    }

    fn wait_exit(&self, timeout: Duration) -> io::Result<bool> {
        let state = self.shared.lock();
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(state, timeout, |s| !s.closed && alive(s, self.pid))
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(!alive(&state, self.pid))
    }
}

fn alive(state: &crate::state::State, pid: u32) -> bool {
    state.model.processes.get(&pid).is_some_and(|p| p.alive)
}
