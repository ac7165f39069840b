//! Snapshot + target -> an ordered list of steps. Pure: reads nothing, changes nothing.

mod detach;
mod reattach;
pub mod select;
pub mod step;

pub use select::SelectError;
pub use step::Step;

use crate::bdf::Bdf;
use crate::policy::Policy;
use crate::snapshot::Snapshot;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Which way a handover moves functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// To vfio-pci, lent to a VM.
    Detach,
    /// Back to the host drivers they had.
    Reattach,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
/// An ordered list of steps that carries out a request, printable as a dry run.
pub struct Plan {
    /// Detach or reattach.
    pub direction: Direction,
    /// Every function the request covers, after widening to IOMMU groups.
    pub functions: BTreeSet<Bdf>,
    /// The host driver each function had before pitcrew touched it (None: unbound or unknown).
    pub originals: BTreeMap<Bdf, Option<String>>,
    /// The steps, in order; empty when there is nothing to do.
    pub steps: Vec<Step>,
}

impl Plan {
    /// True when the host is already where the request wants it.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

pub fn plan(
    snapshot: &Snapshot,
    direction: Direction,
    requested: &[Bdf],
    policy: &Policy,
) -> Result<Plan, SelectError> {
    let functions = select::select(snapshot, requested)?;
    let originals = functions
        .iter()
        .map(|bdf| (*bdf, original_driver(snapshot, *bdf)))
        .collect();
    let steps = match direction {
        Direction::Detach => detach::steps(snapshot, &functions, policy),
        Direction::Reattach => reattach::steps(snapshot, &functions, &originals),
    };
    Ok(Plan {
        direction,
        functions,
        originals,
        steps,
    })
}

/// What the record says a function had, or else what it has now unless that is vfio-pci.
fn original_driver(snapshot: &Snapshot, bdf: Bdf) -> Option<String> {
    if let Some(lent) = snapshot.record.lent.get(&bdf) {
        return lent.driver.clone();
    }
    snapshot
        .devices
        .get(&bdf)
        .filter(|d| d.on_host_driver())
        .and_then(|d| d.driver.clone())
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let functions: Vec<String> = self.functions.iter().map(Bdf::to_string).collect();
        let goal = match self.direction {
            Direction::Detach => "to vfio-pci",
            Direction::Reattach => "back to the host drivers",
        };
        if self.steps.is_empty() {
            return writeln!(f, "{} already {goal}: nothing to do", functions.join(", "));
        }
        writeln!(f, "Move {} {goal}:", functions.join(", "))?;
        for (n, step) in self.steps.iter().enumerate() {
            writeln!(f, "{:>3}. {step}", n + 1)?;
        }
        Ok(())
    }
}
