//! The `Effects` the engine is handed: it records every call, applies injected faults, then lets
//! the simulated kernel act and re-renders the tree.

use std::io;
use std::path::Path;
use std::sync::{mpsc, Arc, MutexGuard};
use std::time::Duration;

use pitcrew::{CmdOutput, Effects, Process, StuckWrite};

use crate::builder::ProcessTemplate;
use crate::errno::{EINVAL, ESRCH};
use crate::processes::SimProcess;
use crate::state::{Shared, State};
use crate::{commands, kernel, Event};

/// Where the engine runs in the simulation: a root login's session.
const CALLER_SCOPE: &str = "/user.slice/user-0.slice/session-1.scope";

pub(crate) struct SimEffects {
    pub shared: Arc<Shared>,
}

impl Effects for SimEffects {
    /// On a thread of its own, as pitcrew's helper process runs it: past `limit` the caller
    /// gets `TimedOut` and the write goes on waiting, and completes once the kernel would let it.
    fn write(&self, path: &Path, value: &str, limit: Duration) -> io::Result<()> {
        let shared = self.shared.clone();
        let Some(host_path) = shared.host_path(path) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is outside the simulated root (errno {EINVAL})",
                    path.display()
                ),
            ));
        };
        let (tx, rx) = mpsc::channel();
        let (job_path, value) = (host_path.clone(), value.to_string());
        std::thread::spawn(move || {
            let _ = tx.send(write_now(&shared, &job_path, &value));
        });
        match rx.recv_timeout(limit) {
            Ok(result) => result,
            Err(_) => {
                let state = self.shared.lock();
                let wchan = state.waits_in.get(&host_path).copied().unwrap_or("?");
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    StuckWrite {
                        pid: None,
                        wchan: wchan.to_string(),
                        limit,
                    },
                ))
            }
        }
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
        state.model.settle_console();
        self.shared.commit(&state)?;
        Ok(output)
    }

    /// The process starts in the caller's session; one whose argv matches an injected command
    /// failure exits at once, as `systemd-inhibit` does when logind refuses.
    fn spawn(&self, program: &str, args: &[&str]) -> io::Result<u32> {
        let argv: Vec<String> = std::iter::once(program)
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let mut state = self.shared.lock();
        state.events.push(Event::Spawn { argv: argv.clone() });
        let argv_refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        let name = program.rsplit('/').next().unwrap_or(program);
        let template = ProcessTemplate::new(name).cmdline(&argv_refs);
        let pid = state.model.spawn(CALLER_SCOPE, &template);
        if state.faults.command_failure(&argv).is_some() {
            state.model.end_process(pid);
        }
        self.shared.commit(&state)?;
        Ok(pid)
    }

    /// Plays the sound servers' side of the reservation ([`crate::sound_servers`]).
    fn reserve_audio(
        &self,
        request: &pitcrew::ReserveRequest,
        _timeout: Duration,
    ) -> io::Result<String> {
        let mut state = self.shared.lock();
        state.events.push(Event::Command {
            argv: std::iter::once("pitcrew".to_string())
                .chain(request.args())
                .collect(),
        });
        let State { model, sound, .. } = &mut *state;
        let (line, changed) = sound.reserve(model, request.card, &request.until_vfio.to_string());
        self.shared.rerender_processes(&changed);
        self.shared.commit(&state)?;
        Ok(line)
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

/// Recorded on entry (before any block), so the log shows what the engine attempted.
fn write_now(shared: &Shared, host_path: &str, value: &str) -> io::Result<()> {
    let mut state = shared.lock();
    state.events.push(Event::Write {
        path: host_path.to_string(),
        value: value.to_string(),
    });
    if let Some(index) = state.faults.spawns.iter().position(|s| s.0 == host_path) {
        let (_, cgroup, template) = state.faults.spawns.remove(index);
        state.model.spawn(&cgroup, &template);
        shared.commit(&state)?;
    }
    let State { model, sound, .. } = &mut *state;
    let reopened = sound.reopen(model);
    if !reopened.is_empty() {
        shared.rerender_processes(&reopened);
        shared.commit(&state)?;
    }
    state = wait_unblocked(shared, state, host_path);
    if state.closed {
        return Err(io::Error::other(
            "pitcrew-sim: the simulated host was dropped",
        ));
    }
    if let Some(&errno) = state.faults.failing_writes.get(host_path) {
        return Err(io::Error::from_raw_os_error(errno));
    }
    let target = shared.resolve(host_path)?;
    state = wait_for_kernel(shared, state, host_path, &target, value);
    if state.closed {
        return Err(io::Error::other(
            "pitcrew-sim: the simulated host was dropped",
        ));
    }
    let result = kernel::write(&mut state.model, &target, value);
    state.model.settle_console();
    shared.commit(&state)?;
    result
}

/// Waits as the kernel would: an unbind until nothing holds the device's sound, I2C or vfio
/// nodes, and any write about a device while such an unbind holds its lock.
fn wait_for_kernel<'a>(
    shared: &'a Shared,
    mut state: MutexGuard<'a, State>,
    host_path: &str,
    target: &str,
    value: &str,
) -> MutexGuard<'a, State> {
    let device = kernel::device_of(target, value);
    let mut holding_lock = false;
    loop {
        if state.closed {
            break;
        }
        let locked_by_other =
            !holding_lock && device.as_ref().is_some_and(|d| state.busy.contains(d));
        let wchan = if locked_by_other {
            Some("device_lock")
        } else {
            kernel::unbind_target(target, value).and_then(|bdf| state.model.unbind_waits_in(&bdf))
        };
        let Some(wchan) = wchan else { break };
        if !locked_by_other && !holding_lock {
            holding_lock = true;
            state.busy.extend(device.clone());
        }
        state.waits_in.insert(host_path.to_string(), wchan);
        *state
            .faults
            .waiting
            .entry(host_path.to_string())
            .or_default() += 1;
        shared.changed.notify_all();
        state = shared
            .changed
            .wait(state)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(n) = state.faults.waiting.get_mut(host_path) {
            *n -= 1;
        }
    }
    if holding_lock {
        if let Some(d) = &device {
            state.busy.remove(d);
        }
        shared.changed.notify_all();
    }
    state.waits_in.remove(host_path);
    state
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
    state.waits_in.insert(path.to_string(), "an injected block");
    shared.changed.notify_all();
    state = shared
        .changed
        .wait_while(state, |s| !s.closed && s.faults.is_blocked(path))
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(n) = state.faults.waiting.get_mut(path) {
        *n -= 1;
    }
    state.waits_in.remove(path);
    state
}
