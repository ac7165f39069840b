//! What changes the machine: sysfs writes, commands (modprobe, systemctl) and signals.

use super::drain::drain;
use super::writer::{write_here, Lost, Writer};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// The signals pitcrew sends a holder.
pub enum Signal {
    /// SIGTERM: please exit.
    Term,
    /// SIGKILL, after the deadline.
    Kill,
    /// SIGHUP, which makes libvirt's daemons look for hooks again (their reload).
    Hup,
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
    /// An unbind, a probe or even a driver_override write waits in the kernel for as long as
    /// the device is busy, so the write must not be able to hold the caller: past `limit` this
    /// returns `ErrorKind::TimedOut` saying where the kernel waits, and the write may still
    /// complete later.
    fn write(&self, path: &Path, value: &str, limit: Duration) -> io::Result<()>;
    /// Runs a command, ending it if it outlives `timeout`.
    fn run(&self, program: &str, args: &[&str], timeout: Duration) -> io::Result<CmdOutput>;
    /// Pins process `pid` (a pidfd); ESRCH when it is gone.
    fn process(&self, pid: u32) -> io::Result<Box<dyn Process>>;
    /// Starts a process that outlives pitcrew, in a process group of its own (so a Ctrl-C
    /// meant for pitcrew does not reach it), and returns its pid without waiting for it.
    fn spawn(&self, program: &str, args: &[&str]) -> io::Result<u32>;
    /// Starts the reservation helper (`pitcrew reserve-audio`) as the sound server's user and
    /// returns its first line (`ok ...` or `err ...`); the helper then lives on by itself.
    fn reserve_audio(
        &self,
        request: &super::sound::ReserveRequest,
        timeout: Duration,
    ) -> io::Result<String>;
    /// A handover that may write is about to read the host: a helper the writes need can start
    /// now, while the host is read, instead of on the first write's clock.
    fn prepare_writes(&self) {}
}

/// A write the kernel had not returned from at its deadline: the payload of the `TimedOut`
/// error [`Effects::write`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckWrite {
    /// The helper process still waiting in the kernel (None where the write is not a process).
    pub pid: Option<u32>,
    /// Where it waits, as /proc/<pid>/wchan names it.
    pub wchan: String,
    /// The deadline it missed.
    pub limit: Duration,
}

impl std::fmt::Display for StuckWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = match self.pid {
            Some(pid) => format!("helper pid {pid}"),
            None => "the writer".into(),
        };
        write!(
            f,
            "the kernel did not return within {:?} ({who} waits in {})",
            self.limit, self.wchan
        )
    }
}

impl std::error::Error for StuckWrite {}

impl StuckWrite {
    /// The stuck write an error carries, if it is one.
    pub fn of(error: &io::Error) -> Option<&StuckWrite> {
        error.get_ref()?.downcast_ref()
    }
}

/// The running kernel.
pub struct RealEffects {
    /// The pitcrew binary that runs the write helper; `None` for this very one, looked up when
    /// the first helper starts (the hook, which never writes, does not look).
    helper: Option<PathBuf>,
    /// The run's write helper, started at its first binding write and kept for the next ones;
    /// it ends when this is dropped, and is given up when a write gets stuck.
    writer: Mutex<Option<Writer>>,
}

impl RealEffects {
    /// Writes through this very binary.
    pub fn new() -> RealEffects {
        RealEffects {
            helper: None,
            writer: Mutex::new(None),
        }
    }

    /// Writes through another pitcrew binary (tests, whose own executable is not pitcrew).
    pub fn with_helper(helper: impl Into<PathBuf>) -> RealEffects {
        RealEffects {
            helper: Some(helper.into()),
            writer: Mutex::new(None),
        }
    }

    /// This binary by its path, so the helper shows as `pitcrew` in ps (/proc/self/exe, which
    /// still runs it after an upgrade replaced the file, would show as `exe`).
    fn helper(&self) -> PathBuf {
        self.helper.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .filter(|path| path.exists())
                .unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
        })
    }
}

impl Drop for RealEffects {
    fn drop(&mut self) {
        let kept = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(writer) = kept.take() {
            writer.finish(HELPER_EXIT);
        }
    }
}

/// An idle helper only has to read the end of its pipe and exit.
const HELPER_EXIT: Duration = Duration::from_secs(1);

impl Default for RealEffects {
    fn default() -> RealEffects {
        RealEffects::new()
    }
}

/// Where a process sleeps in the kernel, as /proc/<pid>/wchan names it.
fn wchan(pid: u32) -> String {
    match std::fs::read_to_string(format!("/proc/{pid}/wchan")) {
        Ok(name) if !name.trim().is_empty() && name.trim() != "0" => name.trim().to_string(),
        _ => "a place /proc/<pid>/wchan does not name".into(),
    }
}

/// Kills a child past its deadline, first noting where it waits in the kernel (for the report).
pub(super) fn kill_overdue(pid: u32) -> String {
    let waits_in = wchan(pid);
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("child pid is positive"),
        rustix::process::Signal::KILL,
    );
    waits_in
}

/// The PCI core's binding files: a write to one runs a driver's probe() or remove(), which can
/// wait for as long as anything uses the device (snd_card_free waits for every open file).
const BINDING_FILES: [&str; 3] = ["unbind", "bind", "drivers_probe"];

impl Effects for RealEffects {
    /// Starts the run's write helper ahead of its first write: under QEMU without KVM its
    /// start-up takes tens of milliseconds, which then overlap the snapshot and the plan instead
    /// of adding to the first unbind. One that fails to start is left to that write to report.
    fn prepare_writes(&self) {
        let mut kept = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.is_none() {
            *kept = Writer::start(&self.helper()).ok();
        }
    }

    /// A binding write runs in the helper process (see [`super::writer`]), not a thread: one the
    /// kernel never returns from leaves a process in D state that pitcrew can walk away from,
    /// where a stuck thread would keep pitcrew itself from exiting. Other attributes (driver_override) only take the
    /// device lock for a moment and are written here: the lock is held for long only by a
    /// binding write under way, and pitcrew writes nothing about a device one of its helpers is
    /// stuck on (the state record keeps them).
    fn write(&self, path: &Path, value: &str, limit: Duration) -> io::Result<()> {
        let binding = path
            .file_name()
            .is_some_and(|name| BINDING_FILES.iter().any(|b| name == *b));
        if !binding {
            return write_here(path, value.as_bytes()).map_err(io::Error::from_raw_os_error);
        }
        let mut kept = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut writer = match kept
            .take()
            .and_then(|mut writer| writer.running().then_some(writer))
        {
            Some(writer) => writer,
            None => Writer::start(&self.helper())?,
        };
        match writer.write(path, value, limit) {
            Ok(result) => {
                *kept = Some(writer);
                result
            }
            // A write in a killable sleep ended with the kill; one in an uninterruptible sleep
            // stays until the kernel lets go, and its helper is reaped by init after pitcrew.
            Err(Lost::Stuck(stuck)) => Err(io::Error::new(io::ErrorKind::TimedOut, stuck)),
            Err(Lost::Gone(e)) => Err(e),
        }
    }

    fn run(&self, program: &str, args: &[&str], timeout: Duration) -> io::Result<CmdOutput> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let out = drain(child.stdout.take().expect("piped"));
        let err = drain(child.stderr.take().expect("piped"));
        let pid = child.id();
        // The command's exit ends the wait, not its pipes' end: a daemon it starts may keep
        // them (an LSB script that OpenRC runs in the caller's context hands them on).
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done_tx.send(child.wait());
        });
        let Ok(status) = done_rx.recv_timeout(timeout) else {
            let waits_in = kill_overdue(pid);
            // Not joined: a command stuck in the kernel (modprobe -r waiting on a busy device)
            // survives SIGKILL, and its waiter would wait with it.
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{program} {} did not finish within {timeout:?} (pid {pid} waits in \
                     {waits_in})",
                    args.join(" ")
                ),
            ));
        };
        Ok(CmdOutput {
            success: status?.success(),
            stdout: out.take(),
            stderr: err.take(),
        })
    }

    fn reserve_audio(
        &self,
        request: &super::sound::ReserveRequest,
        timeout: Duration,
    ) -> io::Result<String> {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(std::env::current_exe()?)
            .args(request.args())
            .uid(request.uid)
            .gid(request.gid)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(timeout) {
            Ok(line) if !line.is_empty() => Ok(line.trim_end().to_string()),
            Ok(_) => Err(io::Error::other("the helper exited without a word")),
            Err(_) => {
                let _ = child.kill();
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the helper said nothing within {timeout:?}"),
                ))
            }
        }
    }

    fn process(&self, pid: u32) -> io::Result<Box<dyn Process>> {
        let pid = rustix::process::Pid::from_raw(pid as i32)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?;
        let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        Ok(Box::new(PidFd(fd)))
    }

    fn spawn(&self, program: &str, args: &[&str]) -> io::Result<u32> {
        use std::os::unix::process::CommandExt;
        // Its stderr is pitcrew's: under the unit, the journal.
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()?;
        Ok(child.id())
    }
}

struct PidFd(OwnedFd);

impl Process for PidFd {
    fn signal(&self, signal: Signal) -> io::Result<()> {
        let signal = match signal {
            Signal::Term => rustix::process::Signal::TERM,
            Signal::Kill => rustix::process::Signal::KILL,
            Signal::Hup => rustix::process::Signal::HUP,
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
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let left = rustix::event::Timespec::try_from(left)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "timeout too large"))?;
            // poll is never restarted after a signal handler ran (a SIGTERM asking for the
            // rollback, a SIGHUP from a closed terminal): wait out the rest.
            match rustix::event::poll(&mut fds, Some(&left)) {
                Ok(ready) => return Ok(ready > 0),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon started by the command (as an LSB script run by OpenRC starts lightdm) keeps
    /// the pipes: the command's exit still ends the wait, with what it said.
    #[test]
    fn a_daemon_holding_the_pipes_does_not_hold_the_command() {
        let started = std::time::Instant::now();
        let out = RealEffects::new()
            .run(
                "sh",
                &["-c", "sleep 30 & echo started; echo warn >&2"],
                Duration::from_secs(10),
            )
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(out.success);
        assert_eq!(out.stdout, "started\n");
        assert_eq!(out.stderr, "warn\n");
    }
}
