//! Runs a plan: each step under a deadline, logged with its duration, recorded as it completes,
//! and undone in reverse when a later one fails.

mod ahead;
mod console;
mod error;
mod guard;
pub mod lock;
mod perform;
mod tuning;

use ahead::{join, loads_beside, Ahead};
pub use error::{ExecError, Rollback, RunError, StepError};

use crate::bdf::Bdf;
use crate::host::{pci, Host};
use crate::plan::{Direction, Plan, Step};
use crate::policy::Policy;
use crate::record::{self, Lent, Record, ReleasedFramebuffer, UnboundConsole, Unloaded};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// What the kernel did not return from during a run.
#[derive(Default)]
struct Stuck {
    devices: BTreeSet<Bdf>,
    modules: BTreeSet<String>,
}

impl Stuck {
    /// Also written to the record with the helper's pid: while it lives, later runs neither
    /// read nor write the device (even reading driver_override waits on the device lock).
    fn note(&mut self, failure: &StepError, record: &mut Record) {
        if let StepError::Stuck {
            devices,
            module,
            helper,
            ..
        } = failure
        {
            self.devices.extend(devices.iter().copied());
            self.modules.extend(module.iter().cloned());
            if let Some(pid) = helper {
                record.stuck.extend(devices.iter().map(|bdf| (*bdf, *pid)));
            }
        }
    }

    /// Whether a step would write to something the kernel is stuck on.
    fn touches(&self, step: &Step) -> bool {
        match step {
            Step::Release { bdf, .. }
            | Step::BindVfio { bdf }
            | Step::LeaveVfio { bdf }
            | Step::Restore { bdf, .. }
            | Step::ResizeBar { bdf, .. }
            | Step::RestoreBar { bdf, .. }
            | Step::SetResetMethod { bdf, .. } => self.devices.contains(bdf),
            Step::LoadModule { module } | Step::UnloadModule { module, .. } => {
                self.modules.contains(module)
            }
            _ => false,
        }
    }
}

impl Executor<'_> {
    /// Runs `plan`, keeping `record` (as read with the plan's snapshot) up to date on disk.
    pub fn run(&self, plan: &Plan, mut record: Record) -> Result<Vec<Timed>, RunError> {
        if plan.direction == Direction::Detach {
            for (bdf, driver) in &plan.originals {
                record.lent.entry(*bdf).or_insert_with(|| Lent {
                    driver: driver.clone(),
                    owner: self.owner.map(str::to_string),
                    ..Lent::default()
                });
            }
        }
        self.save(&record);
        let timeline = std::thread::scope(|scope| self.steps(scope, plan, &mut record))?;
        if plan.direction == Direction::Reattach {
            for bdf in &plan.functions {
                record.lent.remove(bdf);
            }
            // Back or not (a real driver took the card, the kernel rebound the console), there is
            // nothing more to give back for these functions.
            let ours = |functions: &[Bdf]| functions.iter().any(|f| plan.functions.contains(f));
            record.unbound_consoles.retain(|c| !ours(&c.functions));
            record.released_framebuffers.retain(|r| !ours(&r.functions));
        }
        self.save(&record);
        Ok(timeline)
    }

    /// The plan's steps in order, but for vfio-pci's load, which starts beside the module
    /// unloads right before it (see [`loads_beside`]); on a failure, what ran is rolled back.
    fn steps<'scope>(
        &'scope self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        plan: &'scope Plan,
        record: &mut Record,
    ) -> Result<Vec<Timed>, RunError> {
        let total = plan.steps.len();
        let mut timeline = Vec::new();
        let stuck = RefCell::new(Stuck::default());
        let mut ahead: Option<(usize, Ahead<'scope>)> = None;
        for (index, step) in plan.steps.iter().enumerate() {
            let number = index + 1;
            let cancelled = self.cancel.is_some_and(|c| c.load(Ordering::SeqCst));
            if ahead.is_none() && !cancelled {
                if let Some(load) = loads_beside(&plan.steps, index) {
                    let load_step = &plan.steps[load];
                    ahead = Some((load, scope.spawn(move || self.timed(load_step))));
                }
            }
            // A step started ahead has run whatever happened since: its outcome is taken.
            let started = ahead.take_if(|(at, _)| *at == index);
            let was_ahead = started.is_some();
            let waited = Instant::now();
            let outcome = match started {
                Some((_, handle)) => join(handle).map(|took| {
                    tracing::info!(
                        "[{number}/{total}] {step} ({} ms, beside the unloads before it)",
                        took.as_millis()
                    );
                    // What it added to the run: the wait for it once they were done.
                    waited.elapsed()
                }),
                None if cancelled => Err(StepError::Cancelled),
                None => self.timed(step).inspect(|took| {
                    tracing::info!("[{number}/{total}] {step} ({} ms)", took.as_millis())
                }),
            };
            match outcome {
                Ok(took) => {
                    self.done(record, step, plan);
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
                    // Said once, by the error the run returns (step, cause and rollback).
                    tracing::debug!("[{number}/{total}] {step} failed: {cause}");
                    stuck.borrow_mut().note(&cause, record);
                    // A failed step is undone too: it may have done half its work.
                    let end = if cancelled && !was_ahead {
                        index
                    } else {
                        index + 1
                    };
                    let mut undo = plan.steps[..end].to_vec();
                    // One started ahead and not reached yet is rolled back too once it is done.
                    if let Some((at, handle)) = ahead.take() {
                        match join(handle) {
                            Ok(_) => {
                                self.done(record, &plan.steps[at], plan);
                                undo.push(plan.steps[at].clone());
                            }
                            Err(cause) => stuck.borrow_mut().note(&cause, record),
                        }
                    }
                    let rollback = self.roll_back(&undo, record, plan, &stuck);
                    return Err(RunError::Failed(Box::new(ExecError {
                        number,
                        total,
                        step: step.clone(),
                        cause,
                        stuck: stuck.into_inner().devices.into_iter().collect(),
                        rollback,
                    })));
                }
            }
        }
        Ok(timeline)
    }

    /// Notes a step that completed in the record, on disk only when that changed: most steps
    /// change nothing the record keeps, and the file already says what a run killed right now
    /// would need.
    fn done(&self, record: &mut Record, step: &Step, plan: &Plan) {
        let before = record.clone();
        note(record, step, plan);
        if *record != before {
            self.save(record);
        }
    }

    fn roll_back(
        &self,
        done: &[Step],
        record: &mut Record,
        plan: &Plan,
        stuck: &RefCell<Stuck>,
    ) -> Rollback {
        let mut errors = Vec::new();
        for step in done.iter().rev() {
            for undo in step.undo() {
                if stuck.borrow().touches(&undo) {
                    tracing::warn!("rollback: {undo}: left alone, the kernel is stuck on it");
                    continue;
                }
                match self.timed(&undo) {
                    Ok(took) => {
                        tracing::info!("rollback: {undo} ({} ms)", took.as_millis());
                        note(record, &undo, plan);
                    }
                    Err(cause) => {
                        // Said once, by the error the run returns.
                        tracing::debug!("rollback: {undo} failed: {cause}");
                        stuck.borrow_mut().note(&cause, record);
                        errors.push((undo, cause));
                    }
                }
            }
        }
        let stuck = stuck.borrow();
        if errors.is_empty() {
            if plan.direction == Direction::Detach {
                // What the kernel is stuck on stays recorded: a later reattach gives it back.
                for bdf in plan.functions.iter().filter(|b| !stuck.devices.contains(b)) {
                    record.lent.remove(bdf);
                }
            }
            self.save(record);
            if stuck.devices.is_empty() && stuck.modules.is_empty() {
                Rollback::Done
            } else {
                Rollback::Partly
            }
        } else {
            self.save(record);
            Rollback::Failed(errors)
        }
    }

    /// Every call that can wait in the kernel (a sysfs write, modprobe, systemctl) runs in a
    /// process of its own under the step timeout, so the step itself runs here: a write the
    /// kernel never returns from leaves its helper behind, not a thread of pitcrew.
    fn timed(&self, step: &Step) -> Result<Duration, StepError> {
        let start = Instant::now();
        perform::perform(self.host, step, self.policy).map(|()| start.elapsed())
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
        Step::UnloadModule { module, .. } if module != pci::VFIO_MODULE => {
            record.unloaded_modules.push(Unloaded {
                module: module.clone(),
                functions: plan.functions.iter().copied().collect::<Vec<Bdf>>(),
            })
        }
        Step::LoadModule { module } => record.unloaded_modules.retain(|u| &u.module != module),
        Step::UnbindConsole { vtcon, name }
            if !record.unbound_consoles.iter().any(|c| &c.vtcon == vtcon) =>
        {
            record.unbound_consoles.push(UnboundConsole {
                vtcon: vtcon.clone(),
                name: name.clone(),
                functions: plan.functions.iter().copied().collect(),
            })
        }
        Step::BindConsole { vtcon, .. } => record.unbound_consoles.retain(|c| &c.vtcon != vtcon),
        Step::ReleaseFramebuffer {
            device,
            driver,
            bdf,
        } if !record
            .released_framebuffers
            .iter()
            .any(|r| &r.device == device) =>
        {
            record.released_framebuffers.push(ReleasedFramebuffer {
                device: device.clone(),
                driver: driver.clone(),
                bdf: *bdf,
                functions: plan.functions.iter().copied().collect(),
            })
        }
        Step::RestoreFramebuffer { device, .. } => {
            record.released_framebuffers.retain(|r| &r.device != device)
        }
        Step::ResizeBar { bdf, .. }
        | Step::RestoreBar { bdf, .. }
        | Step::SetResetMethod { bdf, .. } => {
            if let Some(lent) = record.lent.get_mut(bdf) {
                tuning::note(lent, step);
            }
        }
        _ => {}
    }
}
