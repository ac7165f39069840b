//! Injected failures: writes that block or fail, commands that fail.

use std::collections::HashMap;
use std::sync::Arc;

use crate::builder::ProcessTemplate;
use crate::state::Shared;

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
