//! The effects of a staged root: every change is refused, so a tree passed with `--root` can
//! be read and planned against but never mistaken for this machine.

use super::effects::{CmdOutput, Effects, Process};
use super::sound::ReserveRequest;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a staged root (`--root DIR`) gets instead of the running kernel: the tree is not this
/// machine, so nothing is run, signalled or written; each refusal has kind `Unsupported`.
pub struct StagedEffects {
    /// The staged tree, named in the refusals.
    pub root: PathBuf,
}

impl StagedEffects {
    fn refuse(&self, what: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "--root {} is a staged tree, not this machine: {what} not done",
                self.root.display()
            ),
        )
    }
}

impl Effects for StagedEffects {
    fn write(&self, path: &Path, value: &str, _limit: Duration) -> io::Result<()> {
        Err(self.refuse(format!("writing {value:?} to {}", path.display())))
    }

    fn run(&self, program: &str, args: &[&str], _timeout: Duration) -> io::Result<CmdOutput> {
        Err(self.refuse(format!("`{program} {}`", args.join(" "))))
    }

    fn process(&self, pid: u32) -> io::Result<Box<dyn Process>> {
        Err(self.refuse(format!("signalling pid {pid}")))
    }

    fn spawn(&self, program: &str, args: &[&str]) -> io::Result<u32> {
        Err(self.refuse(format!("starting `{program} {}`", args.join(" "))))
    }

    fn reserve_audio(&self, request: &ReserveRequest, _timeout: Duration) -> io::Result<String> {
        Err(self.refuse(format!("reserving ALSA card {}", request.card)))
    }
}
