//! The engine's entry point: read the host, plan, execute with rollback.

use crate::bdf::Bdf;
use crate::exec::{lock, Executor, RunError, Timed};
use crate::host::Host;
use crate::plan::{self, Direction, Plan};
use crate::policy::Policy;
use crate::snapshot::Snapshot;
use crate::Error;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Request {
    pub direction: Direction,
    /// As given; the engine widens them to their whole IOMMU groups.
    pub devices: Vec<Bdf>,
    pub policy: Policy,
    /// The VM the devices are lent to, for the state record and messages.
    pub owner: Option<String>,
    pub dry_run: bool,
    /// Fault injection for crash tests: stop dead right after this step.
    pub crash_after: Option<usize>,
    /// Set from outside (SIGTERM) to stop after the current step and roll back.
    pub cancel: Option<Arc<AtomicBool>>,
}

#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    /// Empty for a dry run.
    pub timeline: Vec<Timed>,
}

/// How long a run waits for another one (the same or another VM's) to finish.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// Plans the request and, unless it is a dry run, carries it out. `Err(Input)` means nothing was
/// changed; `Err(Failed)` that the run failed and says whether its rollback succeeded.
pub fn run(host: &Host, request: &Request) -> Result<Outcome, Error> {
    if request.dry_run {
        let snapshot = read(host)?;
        return Ok(Outcome {
            plan: make_plan(&snapshot, request)?,
            timeline: Vec::new(),
        });
    }
    let _lock = lock::acquire(host, LOCK_WAIT).map_err(|e| Error::Failed(e.to_string()))?;
    // Read under the lock, so the record and the host are those the previous run left.
    let snapshot = read(host)?;
    let plan = make_plan(&snapshot, request)?;
    if plan.is_empty() {
        return Ok(Outcome {
            plan,
            timeline: Vec::new(),
        });
    }
    let executor = Executor {
        host,
        policy: &request.policy,
        owner: request.owner.as_deref(),
        crash_after: request.crash_after,
        cancel: request.cancel.as_deref(),
    };
    let timeline = executor
        .run(&plan, snapshot.record.clone())
        .map_err(|e| match e {
            RunError::Failed(e) => Error::Failed(e.to_string()),
            RunError::Interrupted { after } => Error::Interrupted { after },
        })?;
    Ok(Outcome { plan, timeline })
}

fn read(host: &Host) -> Result<Snapshot, Error> {
    Snapshot::read(host).map_err(|e| Error::Failed(e.to_string()))
}

fn make_plan(snapshot: &Snapshot, request: &Request) -> Result<Plan, Error> {
    plan::plan(
        snapshot,
        request.direction,
        &request.devices,
        &request.policy,
    )
    .map_err(|e| Error::Input(e.to_string()))
}
