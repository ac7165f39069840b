//! Injected failures: writes that block or fail, commands that fail.

use std::collections::HashMap;
use std::sync::Arc;

use crate::builder::ProcessTemplate;
use crate::state::Shared;
use crate::SimHost;
use std::time::Duration;

#[derive(Default)]
pub(crate) struct Faults {
    /// Active blocks: id -> host path.
    pub blocks: HashMap<u64, String>,
    next_block: u64,
    /// Writers currently stuck on each path, so a test can wait for the engine to get there.
    pub waiting: HashMap<String, usize>,
    pub failing_writes: HashMap<String, i32>,
    pub failing_commands: Vec<(Vec<String>, String)>,
    /// Processes to start on the first write to a path: (path, cgroup, template).
    pub spawns: Vec<(String, String, ProcessTemplate)>,
}

impl Faults {
    pub fn is_blocked(&self, path: &str) -> bool {
        self.blocks.values().any(|p| p == path)
    }

    pub fn add_block(&mut self, path: &str) -> u64 {
        self.next_block += 1;
        self.blocks.insert(self.next_block, path.to_string());
        self.next_block
    }

    /// The stderr of the first injected failure whose argv prefix matches.
    pub fn command_failure(&self, argv: &[String]) -> Option<&str> {
        self.failing_commands
            .iter()
            .find(|(prefix, _)| argv.starts_with(prefix))
            .map(|(_, stderr)| stderr.as_str())
    }
}

/// Keeps writes to one path blocked until released or dropped.
#[must_use = "the block lifts as soon as this is dropped"]
pub struct WriteBlock {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: u64,
}

impl WriteBlock {
    /// Lets the blocked writers (and any later ones) through.
    pub fn release(self) {}
}

impl Drop for WriteBlock {
    fn drop(&mut self) {
        self.shared.lock().faults.blocks.remove(&self.id);
        self.shared.changed.notify_all();
    }
}

/// The faults a test injects.
impl SimHost {
    /// Writes to `path` (host-absolute) block until the returned guard is released or dropped,
    /// or this SimHost is dropped (then they fail).
    pub fn block_writes(&self, path: &str) -> WriteBlock {
        let id = self.shared.lock().faults.add_block(path);
        WriteBlock {
            shared: self.shared.clone(),
            id,
        }
    }

    /// Waits until some writer is blocked on `path`; false if none got there within `timeout`.
    pub fn wait_blocked(&self, path: &str, timeout: Duration) -> bool {
        let state = self.shared.lock();
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(state, timeout, |s| {
                s.faults.waiting.get(path).copied().unwrap_or(0) == 0
            })
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.faults.waiting.get(path).copied().unwrap_or(0) > 0
    }

    /// Every later write to `path` fails with `errno` (see [`errno`]) without effect.
    pub fn fail_writes(&self, path: &str, errno: i32) {
        let mut state = self.shared.lock();
        state.faults.failing_writes.insert(path.to_string(), errno);
    }

    /// Every later command whose argv starts with `argv_prefix` fails with `stderr`.
    pub fn fail_command(&self, argv_prefix: &[&str], stderr: &str) {
        let prefix = argv_prefix.iter().map(|a| a.to_string()).collect();
        let mut state = self.shared.lock();
        state
            .faults
            .failing_commands
            .push((prefix, stderr.to_string()));
    }

    /// Lifts injected write and command failures (blocks stay with their guards).
    pub fn clear_faults(&self) {
        let mut state = self.shared.lock();
        state.faults.failing_writes.clear();
        state.faults.failing_commands.clear();
    }
}
