//! The engine's entry point: read the host, plan, execute with rollback.

use crate::bdf::Bdf;
use crate::exec::lock::{self, LockError};
use crate::exec::{ExecError, Executor, RunError, Timed};
use crate::host::Host;
use crate::plan::{self, Direction, Plan, PlanError};
use crate::policy::Policy;
use crate::snapshot::{ReadError, Snapshot};
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
/// What to hand over, which way and how.
pub struct Request {
    /// Detach or reattach.
    pub direction: Direction,
    /// As given; the engine widens them to their whole IOMMU groups.
    pub devices: Vec<Bdf>,
    /// How what stands in the way is treated.
    pub policy: Policy,
    /// The VM the devices are lent to, for the state record and messages.
    pub owner: Option<String>,
    /// Plan only; change nothing.
    pub dry_run: bool,
    /// A reattach of exactly the functions the record says were lent to `owner`, whatever
    /// `devices` says (the unit's stop).
    pub lent_only: bool,
    /// A reattach also hands functions pitcrew did not lend to the driver the kernel picks.
    pub force: bool,
    /// Fault injection for crash tests: stop dead right after this step.
    #[cfg(feature = "fault-injection")]
    pub crash_after: Option<usize>,
    /// Set from outside (SIGTERM) to stop after the current step and roll back.
    pub cancel: Option<Arc<AtomicBool>>,
}

#[derive(Debug)]
/// What a handover did.
pub struct Outcome {
    /// The plan, as a dry run prints it.
    pub plan: Plan,
    /// Empty for a dry run.
    pub timeline: Vec<Timed>,
}

/// What the user is told at the end: the plan when nothing ran (a dry run, or nothing to do),
/// else one line of what moved where in how long. The steps themselves were each logged once,
/// with their durations, as they ran.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.timeline.is_empty() {
            return write!(f, "{}", self.plan);
        }
        let total: Duration = self.timeline.iter().map(|t| t.took).sum();
        let functions: Vec<String> = self.plan.functions.iter().map(Bdf::to_string).collect();
        let steps = match self.timeline.len() {
            1 => "1 step".to_string(),
            n => format!("{n} steps"),
        };
        match self.plan.direction {
            Direction::Detach => writeln!(
                f,
                "Moved {} to vfio-pci in {} ms ({steps})",
                functions.join(", "),
                total.as_millis()
            ),
            Direction::Reattach => {
                let back: Vec<String> = self
                    .plan
                    .functions
                    .iter()
                    .map(
                        |bdf| match self.plan.originals.get(bdf).cloned().flatten() {
                            Some(driver) => format!("{bdf} to {driver}"),
                            None => format!("{bdf} to the driver the kernel picks"),
                        },
                    )
                    .collect();
                writeln!(
                    f,
                    "Gave back {} in {} ms ({steps})",
                    back.join(", "),
                    total.as_millis()
                )
            }
        }
    }
}

/// Why a handover did not happen; `Plan` means nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// No plan could be made: the request or the host's state does not allow it.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Another run kept the lock.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The host could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A step failed; the run rolled back (see the message for how that went).
    #[error(transparent)]
    Step(Box<ExecError>),
    /// Fault injection stopped the run dead after this step (tests of crash recovery).
    #[cfg(feature = "fault-injection")]
    #[error("stopped after step {after} by fault injection, without rolling back")]
    Interrupted {
        /// The last step that completed.
        after: usize,
    },
}

impl From<RunError> for HandoverError {
    fn from(e: RunError) -> HandoverError {
        match e {
            RunError::Failed(e) => HandoverError::Step(e),
            #[cfg(feature = "fault-injection")]
            RunError::Interrupted { after } => HandoverError::Interrupted { after },
        }
    }
}

/// How long a run waits for another one (the same or another VM's) to finish.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// Plans the request and, unless it is a dry run, carries it out. `Err(Plan)` means nothing was
/// changed; `Err(Step)` that the run failed and says whether its rollback succeeded.
pub fn run(host: &Host, request: &Request) -> Result<Outcome, HandoverError> {
    if request.dry_run {
        let snapshot = Snapshot::read(host)?;
        return Ok(Outcome {
            plan: make_plan(&snapshot, request)?,
            timeline: Vec::new(),
        });
    }
    let _lock = lock::acquire(host, LOCK_WAIT)?;
    host.effects().prepare_writes();
    // Read under the lock, so the record and the host are those the previous run left.
    let reading = Instant::now();
    let snapshot = Snapshot::read(host)?;
    let plan = make_plan(&snapshot, request)?;
    // With the steps' own durations, this says where a handover's time goes.
    tracing::info!(
        "read the host and planned in {} ms",
        reading.elapsed().as_millis()
    );
    // A reattach with nothing left to do still clears the record of what it covers.
    let stale_record = plan.direction == Direction::Reattach
        && plan
            .functions
            .iter()
            .any(|bdf| snapshot.record.lent.contains_key(bdf));
    if plan.is_empty() && !stale_record {
        return Ok(Outcome {
            plan,
            timeline: Vec::new(),
        });
    }
    let executor = Executor {
        host,
        policy: &request.policy,
        owner: request.owner.as_deref(),
        #[cfg(feature = "fault-injection")]
        crash_after: request.crash_after,
        cancel: request.cancel.as_deref(),
    };
    Ok(Outcome {
        timeline: executor.run(&plan, snapshot.record.clone())?,
        plan,
    })
}

fn make_plan(snapshot: &Snapshot, request: &Request) -> Result<Plan, PlanError> {
    let ask = plan::Ask {
        direction: request.direction,
        devices: &request.devices,
        owner: request.owner.as_deref(),
        lent_to: request
            .owner
            .as_deref()
            .filter(|_| request.lent_only && request.direction == Direction::Reattach),
        force: request.force,
    };
    plan::plan(snapshot, &ask, &request.policy)
}
