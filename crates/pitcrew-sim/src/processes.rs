//! Simulated processes: their lives in the model (started with their fds, ended, brokers letting
//! go of what they held for them) and how the engine sees them through `Effects::process`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use pitcrew::{Process, Signal};

use crate::builder::{FdSpec, MapSpec, ProcessTemplate};
use crate::model::{now_secs, Fd, Model, Proc};
use crate::state::Shared;
use crate::Event;

impl Model {
    /// Creates a process, opening its fds against the nodes present now.
    pub fn insert_process(&mut self, pid: u32, cgroup: &str, template: &ProcessTemplate) {
        let present = self.nodes();
        let mut fds = Vec::new();
        for spec in &template.fds {
            match spec {
                FdSpec::Node(path) => {
                    if let Some(owner) = present.get(path) {
                        fds.push(Fd {
                            target: path.clone(),
                            owner: owner.clone(),
                        });
                    }
                }
                FdSpec::Numbered(prefix) => {
                    for (path, owner) in &present {
                        let numbered = path.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                            !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit())
                        });
                        if numbered {
                            fds.push(Fd {
                                target: path.clone(),
                                owner: owner.clone(),
                            });
                        }
                    }
                }
            }
        }
        let mut mapped = Vec::new();
        let mut other_maps = Vec::new();
        for spec in &template.maps {
            match spec {
                MapSpec::Node(path) => {
                    if let Some(owner) = present.get(path) {
                        mapped.push(Fd {
                            target: path.clone(),
                            owner: owner.clone(),
                        });
                    }
                }
                other => other_maps.push(other.clone()),
            }
        }
        self.processes.insert(
            pid,
            Proc {
                pid,
                comm: template.comm.clone(),
                cmdline: template.cmdline.clone(),
                cgroup: cgroup.to_string(),
                fds,
                mapped,
                other_maps,
                alive: true,
                ignore_term: false,
                started: template
                    .started
                    .unwrap_or_else(|| now_secs().saturating_sub(self.boot_time)),
            },
        );
    }

    pub fn end_process(&mut self, pid: u32) {
        let Some(p) = self.processes.get_mut(&pid) else {
            return;
        };
        p.alive = false;
        let held: Vec<String> = p.fds.iter().map(|f| f.target.clone()).collect();
        self.let_go(pid, &held);
    }

    /// The brokers of `client` close their copies of `nodes`, and so do theirs in turn (systemd's
    /// file descriptor store after logind).
    fn let_go(&mut self, client: u32, nodes: &[String]) {
        let brokers: Vec<u32> = self
            .brokered
            .iter()
            .filter(|(_, c)| *c == client)
            .map(|(broker, _)| *broker)
            .collect();
        for broker in brokers {
            if let Some(b) = self.processes.get_mut(&broker) {
                b.fds.retain(|f| !nodes.contains(&f.target));
            }
            self.let_go(broker, nodes);
        }
    }

    /// Live processes in the unit's cgroup.
    pub fn unit_pids(&self, unit: &str) -> Vec<u32> {
        let cgroup = crate::builder::service_cgroup(self.init, unit);
        self.processes
            .values()
            .filter(|p| p.alive && p.cgroup == cgroup)
            .map(|p| p.pid)
            .collect()
    }
}

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
        // SIGHUP asks a daemon to reload; nothing in the model ends by it.
        let ends =
            p.alive && (signal == Signal::Kill || (signal == Signal::Term && !p.ignore_term));
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
