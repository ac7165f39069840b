//! Runs a plan: each step under a deadline, logged with its duration, recorded as it completes,
//! and undone in reverse when a later one fails.

mod error;
pub mod lock;
mod perform;

pub use error::{ExecError, Rollback, RunError, StepError};

use crate::bdf::Bdf;
use crate::host::{pci, Host};
use crate::plan::{Direction, Plan, Step};
use crate::policy::Policy;
use crate::record::{self, Lent, Record, Unloaded};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A step's share of the run: what it was and how long it took.
#[derive(Debug, Clone)]
pub struct Timed {
    /// The step.
    pub step: Step,
    /// How long it took.
    pub took: Duration,
}

pub struct Executor<'a> {
    pub host: &'a Host,
    pub policy: &'a Policy,
    pub owner: Option<&'a str>,
    /// Fault injection for crash tests: stop dead after this step, as a kill -9 would, leaving
    /// the record as it stands and rolling nothing back.
    #[cfg(feature = "fault-injection")]
    pub crash_after: Option<usize>,
    /// When set (by SIGTERM), the run stops after the step under way and rolls back.
    pub cancel: Option<&'a AtomicBool>,
}

impl Executor<'_> {
    /// Runs `plan`, keeping `record` (as read with the plan's snapshot) up to date on disk.
    pub fn run(&self, plan: &Plan, mut record: Record) -> Result<Vec<Timed>, RunError> {
        if plan.direction == Direction::Detach {
            for (bdf, driver) in &plan.originals {
                record.lent.entry(*bdf).or_insert_with(|| Lent {
                    driver: driver.clone(),
                    owner: self.owner.map(str::to_string),
                });
            }
        }
        self.save(&record);
        let total = plan.steps.len();
        let mut timeline = Vec::new();
        for (index, step) in plan.steps.iter().enumerate() {
            let number = index + 1;
            let cancelled = self.cancel.is_some_and(|c| c.load(Ordering::SeqCst));
            let outcome = if cancelled {
                Err(StepError::Cancelled)
            } else {
                self.timed(step)
            };
            match outcome {
                Ok(took) => {
                    tracing::info!("[{number}/{total}] {step} ({} ms)", took.as_millis());
                    note(&mut record, step, plan);
                    self.save(&record);
                    timeline.push(Timed {
                        step: step.clone(),
                        took,
                    });
                    #[cfg(feature = "fault-injection")]
                    if self.crash_after == Some(number) {
                        return Err(RunError::Interrupted { after: number });
                    }
                }
                Err(cause) => {
                    tracing::error!("[{number}/{total}] {step} failed: {cause}");
                    // A failed step is undone too: it may have done half its work.
                    let end = if cancelled { index } else { index + 1 };
                    let rollback = self.roll_back(&plan.steps[..end], &mut record, plan);
                    return Err(RunError::Failed(Box::new(ExecError {
                        number,
                        total,
                        step: step.clone(),
                        cause,
                        rollback,
                    })));
                }
            }
        }
        if plan.direction == Direction::Reattach {
            for bdf in &plan.functions {
                record.lent.remove(bdf);
            }
        }
        self.save(&record);
        Ok(timeline)
    }

    fn roll_back(&self, done: &[Step], record: &mut Record, plan: &Plan) -> Rollback {
        let mut errors = Vec::new();
        for step in done.iter().rev() {
            for undo in step.undo() {
                match self.timed(&undo) {
                    Ok(took) => {
                        tracing::info!("rollback: {undo} ({} ms)", took.as_millis());
                        note(record, &undo, plan);
                    }
                    Err(cause) => {
                        tracing::error!("rollback: {undo} failed: {cause}");
                        errors.push((undo, cause));
                    }
                }
            }
        }
        if errors.is_empty() {
            if plan.direction == Direction::Detach {
                for bdf in &plan.functions {
                    record.lent.remove(bdf);
                }
            }
            self.save(record);
            Rollback::Done
        } else {
            self.save(record);
            Rollback::Failed(errors)
        }
    }

    /// Runs a step on a thread of its own, so a write the kernel never returns from (an unbind
    /// stuck in a driver) still ends the run at the deadline; that thread is left behind.
    fn timed(&self, step: &Step) -> Result<Duration, StepError> {
        let limit = self.deadline(step);
        let (tx, rx) = mpsc::channel();
        let (host, policy, job) = (self.host.clone(), self.policy.clone(), step.clone());
        let start = Instant::now();
        std::thread::spawn(move || {
            let _ = tx.send(perform::perform(&host, &job, &policy));
        });
        match rx.recv_timeout(limit) {
            Ok(result) => result.map(|()| start.elapsed()),
            Err(_) => Err(StepError::Blocked {
                limit,
                pid: std::process::id(),
            }),
        }
    }

    /// Inner waits use the step timeout and report precisely; this outer bound is a little
    /// longer so it only fires on a call that blocks.
    fn deadline(&self, step: &Step) -> Duration {
        let margin = Duration::from_secs(1);
        match step {
            Step::EndProcess { .. } => self.policy.term_timeout + perform::KILL_GRACE + margin,
            _ => self.policy.step_timeout + margin,
        }
    }

    fn save(&self, record: &Record) {
        if let Err(e) = record.save(self.host) {
            tracing::warn!("cannot write the state record under {}: {e}", record::DIR);
        }
    }
}

/// What a completed step changes in the record.
fn note(record: &mut Record, step: &Step, plan: &Plan) {
    match step {
        Step::StopUnit { unit, .. } if !record.stopped_units.contains(unit) => {
            record.stopped_units.push(unit.clone())
        }
        Step::StartUnit { unit } => record.stopped_units.retain(|u| u != unit),
        Step::UnloadModule { module } if module != pci::VFIO_MODULE => {
            record.unloaded_modules.push(Unloaded {
                module: module.clone(),
                functions: plan.functions.iter().copied().collect::<Vec<Bdf>>(),
            })
        }
        Step::LoadModule { module } => record.unloaded_modules.retain(|u| &u.module != module),
        _ => {}
    }
}
