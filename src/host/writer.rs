//! The write helper: one `pitcrew __write` process per handover does its binding writes, taking
//! them over a pipe. A write the kernel does not return from leaves that process in D state,
//! not pitcrew; it is then given up and the next write starts a new one. Starting one process
//! per handover instead of one per write matters: under QEMU without KVM a start of pitcrew
//! costs tens of milliseconds, as much as the write itself.
//!
//! A request is `PATH\0VALUE\0` on the helper's stdin; the answer one line on its stdout, `0`
//! or the errno of the failed write.

use super::effects::{kill_overdue, StuckWrite};
use std::ffi::OsStr;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The hidden subcommand that runs the write helper.
pub const WRITE_HELPER: &str = "__write";

/// What the helper does for each request: sysfs wants the whole value in one write(2), on a
/// file that already exists. The errno is what the parent rebuilds the error from.
pub fn write_here(path: &Path, value: &[u8]) -> Result<(), i32> {
    let result = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut file| file.write_all(value));
    result.map_err(|e| {
        e.raw_os_error()
            .unwrap_or(rustix::io::Errno::IO.raw_os_error())
    })
}

/// The helper's side: serves requests until pitcrew closes the pipe (its run is over, or it
/// died: either way nothing is left to write).
pub fn serve(requests: &mut impl BufRead, answers: &mut impl Write) -> io::Result<()> {
    loop {
        let mut path = Vec::new();
        if requests.read_until(0, &mut path)? == 0 {
            return Ok(());
        }
        let mut value = Vec::new();
        requests.read_until(0, &mut value)?;
        // A request cut short is one pitcrew did not finish sending: it is not written.
        if path.pop() != Some(0) || value.pop() != Some(0) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "a request cut short",
            ));
        }
        let errno = match write_here(Path::new(OsStr::from_bytes(&path)), &value) {
            Ok(()) => 0,
            Err(errno) => errno,
        };
        writeln!(answers, "{errno}")?;
        answers.flush()?;
    }
}

/// pitcrew's side: a running helper, idle between requests.
pub struct Writer {
    child: Child,
    requests: ChildStdin,
    answers: ChildStdout,
}

/// Why a helper is given up.
pub enum Lost {
    /// The kernel did not return within the deadline: the helper stays where it waits.
    Stuck(StuckWrite),
    /// It died or answered nonsense.
    Gone(io::Error),
}

impl Writer {
    /// Starts `program __write`. Its own process group keeps a Ctrl-C meant for pitcrew away from
    /// it: pitcrew answers that by rolling back, which needs the helper.
    pub fn start(program: &Path) -> io::Result<Writer> {
        let mut child = Command::new(program)
            .arg(WRITE_HELPER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot start the write helper {}: {e}", program.display()),
                )
            })?;
        let requests = child.stdin.take().expect("piped");
        let answers = child.stdout.take().expect("piped");
        Ok(Writer {
            child,
            requests,
            answers,
        })
    }

    /// Ends an idle helper: closing its requests ends it, and it is reaped here, so that it does
    /// not outlive pitcrew (systemd logs a process left in a stopped unit's cgroup). Only a
    /// helper that answered its last request gets here: a stuck one is never waited for.
    pub fn finish(self, limit: Duration) {
        let Writer {
            mut child,
            requests,
            answers,
        } = self;
        drop(requests);
        drop(answers);
        let _ = crate::wait::until("the write helper to exit", limit, || {
            !matches!(child.try_wait(), Ok(None))
        });
    }

    /// Whether it still runs (nobody killed it since its last answer).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Has the helper write `value` to `path`: `Ok` with the write's own result once it
    /// answered, `Err` when the helper is of no further use.
    pub fn write(
        &mut self,
        path: &Path,
        value: &str,
        limit: Duration,
    ) -> Result<io::Result<()>, Lost> {
        let mut request = path.as_os_str().as_bytes().to_vec();
        request.push(0);
        request.extend_from_slice(value.as_bytes());
        request.push(0);
        // One request at a time, a few hundred bytes: the pipe has room even when the helper is
        // stuck, so this never waits.
        self.requests
            .write_all(&request)
            .map_err(|e| Lost::Gone(gone(e)))?;
        let deadline = Instant::now() + limit;
        let mut answer = Vec::new();
        while !answer.ends_with(b"\n") {
            if !self.readable_before(deadline).map_err(Lost::Gone)? {
                return Err(Lost::Stuck(StuckWrite {
                    pid: Some(self.child.id()),
                    wchan: kill_overdue(self.child.id()),
                    limit,
                }));
            }
            let mut chunk = [0u8; 32];
            match self.answers.read(&mut chunk) {
                Ok(0) => return Err(Lost::Gone(gone(io::ErrorKind::UnexpectedEof.into()))),
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Lost::Gone(gone(e))),
            }
        }
        let text = String::from_utf8_lossy(&answer);
        match text.trim().parse::<i32>() {
            Ok(0) => Ok(Ok(())),
            Ok(errno) => Ok(Err(io::Error::from_raw_os_error(errno))),
            Err(_) => Err(Lost::Gone(io::Error::other(format!(
                "the write helper answered {:?}",
                text.trim()
            )))),
        }
    }

    /// Waits for the answer until `deadline`; false when it passed first.
    fn readable_before(&self, deadline: Instant) -> io::Result<bool> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let mut fds = [PollFd::new(&self.answers, PollFlags::IN)];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let left = Timespec::try_from(left)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "timeout too large"))?;
            // poll is not restarted after a signal handler ran (SIGTERM, SIGHUP): wait out the
            // rest of the deadline.
            match poll(&mut fds, Some(&left)) {
                Ok(ready) => return Ok(ready > 0),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn gone(e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("the write helper went away before it answered: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_is_answered_with_its_errno_until_the_pipe_closes() {
        let dir = tempfile::tempdir().unwrap();
        let attr = dir.path().join("drivers_probe");
        std::fs::write(&attr, "").unwrap();
        let missing = dir.path().join("unbind");
        let mut requests = Vec::new();
        for (path, value) in [(&attr, "0000:01:00.0"), (&missing, "0000:01:00.1")] {
            requests.extend_from_slice(path.as_os_str().as_bytes());
            requests.push(0);
            requests.extend_from_slice(value.as_bytes());
            requests.push(0);
        }
        let mut answers = Vec::new();
        serve(&mut requests.as_slice(), &mut answers).unwrap();
        assert_eq!(String::from_utf8(answers).unwrap(), "0\n2\n");
        assert_eq!(std::fs::read_to_string(&attr).unwrap(), "0000:01:00.0");
    }

    #[test]
    fn a_request_cut_short_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let attr = dir.path().join("unbind");
        std::fs::write(&attr, "").unwrap();
        let mut request = attr.as_os_str().as_bytes().to_vec();
        request.extend_from_slice(b"\x000000:01");
        let mut answers = Vec::new();
        assert!(serve(&mut request.as_slice(), &mut answers).is_err());
        assert!(answers.is_empty());
        assert_eq!(std::fs::read_to_string(&attr).unwrap(), "");
    }
}
