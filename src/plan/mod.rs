//! Snapshot + target -> an ordered list of steps. Pure: reads nothing, changes nothing.

mod console;
mod desktop;
mod detach;
mod reattach;
pub mod select;
pub mod step;
pub mod tuning;

pub use detach::watched_nodes;
pub use reattach::ReattachError;
pub use select::SelectError;
pub use step::Step;
pub use tuning::TuningError;

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
    /// Every function the request covers: for a detach, the requested ones widened to their
    /// slots and IOMMU groups; for a reattach, those of them pitcrew lent.
    pub functions: BTreeSet<Bdf>,
    /// The host driver each function pitcrew moves had before (None: unbound or unknown).
    /// Functions already parked on vfio-pci before a detach are not in it: they were not lent.
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

/// What a run was asked to act on.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// Detach or reattach.
    pub direction: Direction,
    /// The devices as given.
    pub devices: &'a [Bdf],
    /// The VM a detach lends the devices to: the sleep inhibitor gives it as the reason.
    pub owner: Option<&'a str>,
    /// A reattach of exactly what the record says was lent to this VM (the unit's stop).
    pub lent_to: Option<&'a str>,
    /// A reattach also hands functions pitcrew did not lend to the driver the kernel picks.
    pub force: bool,
}

/// Why no plan could be made; nothing was changed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// The devices cannot be handed over.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// The reattach is refused.
    #[error(transparent)]
    Reattach(#[from] ReattachError),
    /// The config asks the card for what it cannot do.
    #[error(transparent)]
    Tuning(#[from] TuningError),
    /// The desktop holds the card's render node and no card node: it renders with the card
    /// without drawing on it, and has no way to let go of it (src/plan/desktop.rs).
    #[error(
        "{holders}: the desktop holds only the render node of {gpu}, not a display node; it \
         does not draw on the card, and KWin and mutter let go of a render node only when the \
         kernel removes it, so pitcrew does not end the session for it and lends nothing: \
         {fix}; or set `display_manager = \"always\"` for this VM in the config to have the \
         sessions ended at each lend"
    )]
    DesktopRenders {
        /// The function whose render node it holds.
        gpu: Bdf,
        /// Each desktop process and the render nodes it holds.
        holders: String,
        /// What keeps the desktop off the card from its next start.
        fix: String,
    },
    /// The desktop holds the card and the config forbids ending it.
    #[error(
        "{holders}: the desktop holds {gpu} and the config says `display_manager = \"never\"`, \
         so pitcrew ends neither the display manager nor the desktop and lends nothing: log out \
         first, or run `pitcrew keep-off {gpu}` and log in again so that the desktop leaves the \
         card alone, or set `display_manager = \"auto\"` for this VM"
    )]
    DesktopKept {
        /// The display function the desktop holds.
        gpu: Bdf,
        /// Each desktop process and what it holds of the card.
        holders: String,
    },
    /// A write of an earlier run is still stuck in the kernel on one of the functions.
    #[error(
        "{bdf} is still busy in the kernel: a write of an earlier run waits there (helper pid \
         {pid}; /proc/{pid}/wchan says where). pitcrew leaves it alone until that write returns: \
         end what holds the function's nodes (`pitcrew status` lists them), then try again"
    )]
    Stuck {
        /// The function.
        bdf: Bdf,
        /// The write helper still waiting on it.
        pid: u32,
    },
}

impl PlanError {
    /// Bad input (exit 2), as opposed to a host that is not in a state to do it (exit 1).
    pub fn is_input(&self) -> bool {
        !matches!(
            self,
            PlanError::Reattach(ReattachError::InUse { .. })
                | PlanError::Stuck { .. }
                | PlanError::DesktopRenders { .. }
                | PlanError::DesktopKept { .. }
        )
    }
}

/// Refuses to plan anything about a function a stuck write still waits on.
fn not_stuck(snapshot: &Snapshot, functions: &BTreeSet<Bdf>) -> Result<(), PlanError> {
    match functions
        .iter()
        .find_map(|bdf| Some((*bdf, snapshot.devices[bdf].stuck_helper?)))
    {
        Some((bdf, pid)) => Err(PlanError::Stuck { bdf, pid }),
        None => Ok(()),
    }
}

/// Plans `ask` against `snapshot` under `policy`.
pub fn plan(snapshot: &Snapshot, ask: &Ask, policy: &Policy) -> Result<Plan, PlanError> {
    match ask.direction {
        Direction::Detach => {
            let functions = select::select(snapshot, ask.devices)?;
            not_stuck(snapshot, &functions)?;
            let tuned = tuning::lend(snapshot, &functions, &policy.tuning)?;
            let originals = functions
                .iter()
                .filter(|bdf| !snapshot.devices[bdf].on_vfio())
                .map(|bdf| (*bdf, original_driver(snapshot, *bdf)))
                .collect();
            Ok(Plan {
                direction: Direction::Detach,
                steps: detach::steps(snapshot, &functions, policy, ask.owner, tuned)?,
                functions,
                originals,
            })
        }
        Direction::Reattach => {
            let functions = match ask.lent_to {
                Some(vm) => snapshot
                    .record
                    .lent
                    .iter()
                    .filter(|(bdf, lent)| {
                        lent.owner.as_deref() == Some(vm) && snapshot.devices.contains_key(bdf)
                    })
                    .map(|(bdf, _)| *bdf)
                    .collect(),
                None => {
                    let widened = select::select(snapshot, ask.devices)?;
                    reattach::lent_among(snapshot, &widened, ask.devices, ask.force)?
                }
            };
            not_stuck(snapshot, &functions)?;
            let originals = functions
                .iter()
                .map(|bdf| (*bdf, original_driver(snapshot, *bdf)))
                .collect();
            Ok(Plan {
                direction: Direction::Reattach,
                steps: reattach::steps(snapshot, &functions, &originals)?,
                functions,
                originals,
            })
        }
    }
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
        let (goal, already) = match self.direction {
            Direction::Detach => ("to vfio-pci", "on vfio-pci"),
            Direction::Reattach => ("back to the host drivers", "back on the host drivers"),
        };
        if self.functions.is_empty() {
            return writeln!(f, "pitcrew has lent none of these: nothing to give back");
        }
        if self.steps.is_empty() {
            return writeln!(
                f,
                "{} already {already}: nothing to do",
                functions.join(", ")
            );
        }
        writeln!(f, "Move {} {goal}:", functions.join(", "))?;
        for (n, step) in self.steps.iter().enumerate() {
            writeln!(f, "{:>3}. {step}", n + 1)?;
        }
        Ok(())
    }
}
