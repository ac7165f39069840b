//! What changes the machine: sysfs writes, commands (modprobe, systemctl) and signals.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// The signals pitcrew sends a holder.
pub enum Signal {
    /// SIGTERM: please exit.
    Term,
    /// SIGKILL, after the deadline.
    Kill,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
/// What a finished command left.
pub struct CmdOutput {
    /// It exited with 0.
    pub success: bool,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

/// A process pinned at the moment it was looked up, so a recycled pid is never signalled.
pub trait Process: Send {
    /// Sends `signal` to the pinned process; one that is already gone is not an error.
    fn signal(&self, signal: Signal) -> io::Result<()>;
    /// Waits until the process has exited or `timeout` passed; true when it is gone.
    fn wait_exit(&self, timeout: Duration) -> io::Result<bool>;
}

/// Everything that changes the machine; tests put a simulated kernel behind it.
pub trait Effects: Send + Sync {
    /// Writes `value` to an existing attribute at `path` (already resolved under the root).
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
    /// Runs a command, ending it if it outlives `timeout`.
    fn run(&self, program: &str, args: &[&str], timeout: Duration) -> io::Result<CmdOutput>;
    /// Pins process `pid` (a pidfd); ESRCH when it is gone.
    fn process(&self, pid: u32) -> io::Result<Box<dyn Process>>;
}

/// The running kernel.
pub struct RealEffects;

impl Effects for RealEffects {
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        // sysfs wants the whole value in one write(2), on a file that already exists.
        let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.write_all(value.as_bytes())
    }

    fn run(&self, program: &str, args: &[&str], timeout: Duration) -> io::Result<CmdOutput> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let pid = child.id();
        let (done_tx, done_rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut out = String::new();
            let mut err = String::new();
            let _ = stdout.read_to_string(&mut out);
            let _ = stderr.read_to_string(&mut err);
            let status = child.wait();
            let _ = done_tx.send(());
            (status, out, err)
        });
        if done_rx.recv_timeout(timeout).is_err() {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid as i32).expect("child pid is positive"),
                rustix::process::Signal::KILL,
            );
            let _ = reader.join();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{program} {} did not finish within {timeout:?}",
                    args.join(" ")
                ),
            ));
        }
        let (status, stdout, stderr) = reader.join().expect("reader thread");
        Ok(CmdOutput {
            success: status?.success(),
            stdout,
            stderr,
        })
    }

    fn process(&self, pid: u32) -> io::Result<Box<dyn Process>> {
        let pid = rustix::process::Pid::from_raw(pid as i32)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?;
        let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        Ok(Box::new(PidFd(fd)))
    }
}

/// What a staged root (`--root DIR`) gets instead of the running kernel: the tree is not this
/// machine, so nothing is run, signalled or written; each refusal has kind `Unsupported`.
pub struct StagedEffects {
    /// The staged tree, named in the refusals.
    pub root: std::path::PathBuf,
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
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        Err(self.refuse(format!("writing {value:?} to {}", path.display())))
    }

    fn run(&self, program: &str, args: &[&str], _timeout: Duration) -> io::Result<CmdOutput> {
        Err(self.refuse(format!("`{program} {}`", args.join(" "))))
    }

    fn process(&self, pid: u32) -> io::Result<Box<dyn Process>> {
        Err(self.refuse(format!("signalling pid {pid}")))
    }
}

struct PidFd(OwnedFd);

impl Process for PidFd {
    fn signal(&self, signal: Signal) -> io::Result<()> {
        let signal = match signal {
            Signal::Term => rustix::process::Signal::TERM,
            Signal::Kill => rustix::process::Signal::KILL,
        };
        match rustix::process::pidfd_send_signal(&self.0, signal) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn wait_exit(&self, timeout: Duration) -> io::Result<bool> {
        // A pidfd becomes readable when its process exits: no polling loop needed.
        let mut fds = [rustix::event::PollFd::new(
            &self.0,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec::try_from(timeout)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "timeout too large"))?;
        let ready = rustix::event::poll(&mut fds, Some(&timeout))?;
        Ok(ready > 0)
    }
}
