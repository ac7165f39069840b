//! The one lock over the simulated machine, and the condvar every waiter sleeps on.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::faults::Faults;
use crate::model::Model;
use crate::render;
use crate::sound_servers::SoundServers;
use crate::tree::Tree;
use crate::Event;

pub(crate) struct State {
    pub model: Model,
    pub events: Vec<Event>,
    pub faults: Faults,
    pub sound: SoundServers,
    /// Set when the SimHost is dropped: blocked writers wake up and fail.
    pub closed: bool,
    /// Devices whose lock a waiting unbind holds: every other write about them waits too.
    pub busy: BTreeSet<String>,
    /// Where each waiting write sleeps, by host path, as /proc/<pid>/wchan would say.
    pub waits_in: HashMap<String, &'static str>,
}

pub(crate) struct Shared {
    pub root: PathBuf,
    canonical_root: PathBuf,
    state: Mutex<State>,
    /// Notified after every change (a process ending, a block released, an event recorded).
    pub changed: Condvar,
}

impl Shared {
    pub fn new(root: PathBuf, model: Model) -> io::Result<Shared> {
        let canonical_root = root.canonicalize()?;
        let tree = Tree::new(&root);
        render::render_static(&tree, &model)?;
        render::render(&tree, &model)?;
        Ok(Shared {
            root,
            canonical_root,
            state: Mutex::new(State {
                model,
                events: Vec::new(),
                faults: Faults::default(),
                sound: SoundServers::default(),
                closed: false,
                busy: BTreeSet::new(),
                waits_in: HashMap::new(),
            }),
            changed: Condvar::new(),
        })
    }

    /// A test that panicked while holding the lock must not hide the state from the others.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Renders the changed model and wakes every waiter.
    pub fn commit(&self, state: &State) -> io::Result<()> {
        let result = render::render(&Tree::new(&self.root), &state.model);
        self.changed.notify_all();
        result.map_err(|e| io::Error::new(e.kind(), format!("pitcrew-sim render: {e}")))
    }

    /// A process's /proc entry is rendered once; dropping it has it rendered with its new fds.
    pub fn rerender_processes(&self, pids: &[u32]) {
        for pid in pids {
            let _ = std::fs::remove_dir_all(self.root.join(format!("proc/{pid}")));
        }
    }

    /// The host-absolute spelling (`/sys/...`) of a path the engine resolved under the root.
    pub fn host_path(&self, path: &Path) -> Option<String> {
        let rest = path.strip_prefix(&self.root).ok()?;
        Some(format!("/{}", rest.display()))
    }

    /// Follows symlinks the way the kernel would (`devices/<bdf>/driver/unbind` is the
    /// driver's `unbind`), giving the host-absolute path of the file really written.
    pub fn resolve(&self, host_path: &str) -> io::Result<String> {
        let real = self
            .root
            .join(host_path.trim_start_matches('/'))
            .canonicalize()?;
        let rest = real.strip_prefix(&self.canonical_root).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{host_path} leads outside the simulated root"),
            )
        })?;
        Ok(format!("/{}", rest.display()))
    }
}
