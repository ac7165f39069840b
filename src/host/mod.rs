//! The machine pitcrew works on, seen through one root directory.
//!
//! Every path pitcrew reads (/sys, /proc, /dev, /etc, /run) resolves under `root`, so the same code
//! runs on a real host (`/`), against a staged tree, and in tests. Everything that changes the
//! machine goes through [`Effects`], which tests replace with a simulated kernel.

mod acl;
pub mod console;
mod devname;
mod drain;
mod effects;
pub mod holders;
pub mod inhibit;
pub mod init;
pub mod keepoff;
pub mod libvirt;
mod maps;
pub mod modules;
pub mod nodes;
pub mod pci;
pub mod procs;
pub mod rebar;
pub mod sound;
mod staged;
pub mod udev;
mod writer;

pub use effects::{CmdOutput, Effects, Process, RealEffects, Signal, StuckWrite};
pub use writer::{serve as serve_writes, WRITE_HELPER};

use crate::untrusted;
use staged::StagedEffects;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone)]
/// The machine under one root directory, with the effects that change it.
pub struct Host {
    root: PathBuf,
    effects: Arc<dyn Effects>,
}

impl Host {
    /// A host over `root` whose changes go through `effects`.
    pub fn new(root: impl Into<PathBuf>, effects: Arc<dyn Effects>) -> Host {
        Host {
            root: root.into(),
            effects,
        }
    }

    /// The running machine under `root`. With a root other than `/` the paths describe a staged
    /// tree, not this machine: every change (a unit started, a process signalled, a module or
    /// sysfs attribute touched) is refused, whatever the command.
    pub fn real(root: impl Into<PathBuf>) -> Host {
        let root = root.into();
        if root == Path::new("/") {
            Host::new(root, Arc::new(RealEffects::new()))
        } else {
            let effects = Arc::new(StagedEffects { root: root.clone() });
            Host::new(root, effects)
        }
    }

    /// The directory every host path resolves under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when the root is not `/`: changes would not reach the kernel the paths describe.
    pub fn is_staged(&self) -> bool {
        self.root != Path::new("/")
    }

    /// The uid that files steering what runs as root must belong to. On the real host that is
    /// root. A staged root (`--root DIR`, the test trees) belongs to whoever built it, so there
    /// it is the user running pitcrew: checks still refuse files that others can change.
    pub fn owner(&self) -> u32 {
        if self.is_staged() {
            rustix::process::geteuid().as_raw()
        } else {
            0
        }
    }

    /// What changes the machine.
    pub fn effects(&self) -> &dyn Effects {
        self.effects.as_ref()
    }

    /// Resolves an absolute path of the host (`/sys/...`) under the root.
    pub fn path(&self, absolute: impl AsRef<Path>) -> PathBuf {
        let absolute = absolute.as_ref();
        self.root
            .join(absolute.strip_prefix("/").unwrap_or(absolute))
    }

    /// Reads a small text file (a sysfs attribute), trimmed of its trailing newline. Errors name
    /// the file, and so the device whose directory it is in.
    pub fn read(&self, absolute: impl AsRef<Path>) -> io::Result<String> {
        let text = untrusted::read_text(&self.path(absolute), untrusted::ATTRIBUTE_LIMIT)?;
        Ok(text.trim_end_matches('\n').to_string())
    }

    /// The last component of a symlink's target (a driver or group link in sysfs).
    pub fn link_name(&self, absolute: impl AsRef<Path>) -> Option<String> {
        let target = std::fs::read_link(self.path(absolute)).ok()?;
        target
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
    }

    /// Writes a sysfs attribute through the effects (the real kernel or a simulation), giving
    /// up after `limit` (see [`Effects::write`]).
    pub fn write(
        &self,
        absolute: impl AsRef<Path>,
        value: &str,
        limit: std::time::Duration,
    ) -> io::Result<()> {
        self.effects.write(&self.path(absolute), value, limit)
    }
}
