//! The steps a plan is made of, each printable for a dry run.

use crate::bdf::Bdf;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
/// One change to the host; each knows its undo.
pub enum Step {
    /// Stop a systemd unit.
    StopUnit {
        /// The unit.
        unit: String,
        /// Why, for the plan.
        why: String,
    },
    /// Start a systemd unit.
    StartUnit {
        /// The unit.
        unit: String,
    },
    /// SIGTERM through a pidfd, a bounded wait, then SIGKILL.
    EndProcess {
        /// The holder.
        pid: u32,
        /// Its name.
        comm: String,
        /// The card's nodes it holds.
        nodes: BTreeSet<String>,
    },
    /// Unload a module (modprobe -r).
    UnloadModule {
        /// The module.
        module: String,
        /// What must not be open when modprobe -r runs (the lend's own and shared nodes).
        #[serde(skip_serializing_if = "BTreeSet::is_empty")]
        nodes: BTreeSet<String>,
    },
    /// Load a module (modprobe).
    LoadModule {
        /// The module.
        module: String,
    },
    /// driver_override=vfio-pci, so nothing else can claim the function, then unbind it from its
    /// driver unless a module unload will do that.
    Release {
        /// The function.
        bdf: Bdf,
        /// The host driver it is on, if any.
        driver: Option<String>,
        /// Unbind it here (false when unloading the driver's module does it).
        unbind: bool,
    },
    /// drivers_probe, then wait for the function to sit on vfio-pci.
    BindVfio {
        /// The function.
        bdf: Bdf,
    },
    /// Clear driver_override and leave vfio-pci.
    LeaveVfio {
        /// The function.
        bdf: Bdf,
    },
    /// Put the function back on `driver` (any host driver when unknown): probe, bind if needed,
    /// wait until it is there.
    Restore {
        /// The function.
        bdf: Bdf,
        /// The driver it had; None lets the kernel choose.
        driver: Option<String>,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::StopUnit { unit, why } => write!(f, "stop {unit} ({why})"),
            Step::StartUnit { unit } => write!(f, "start {unit}"),
            Step::EndProcess { pid, comm, nodes } => {
                let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
                write!(
                    f,
                    "end process {pid} ({comm}) holding {}: TERM, then KILL after the deadline",
                    nodes.join(", ")
                )
            }
            Step::UnloadModule { module, .. } => write!(f, "unload module {module}"),
            Step::LoadModule { module } => write!(f, "load module {module}"),
            Step::Release {
                bdf,
                driver,
                unbind,
            } => match (driver, unbind) {
                (Some(driver), true) => {
                    write!(
                        f,
                        "set {bdf} driver_override=vfio-pci, unbind it from {driver}"
                    )
                }
                (Some(driver), false) => write!(
                    f,
                    "set {bdf} driver_override=vfio-pci (unloading {driver} unbinds it)"
                ),
                (None, _) => write!(f, "set {bdf} driver_override=vfio-pci"),
            },
            Step::BindVfio { bdf } => write!(f, "probe {bdf}: bind it to vfio-pci"),
            Step::LeaveVfio { bdf } => {
                write!(f, "clear {bdf} driver_override, unbind it from vfio-pci")
            }
            Step::Restore { bdf, driver } => match driver {
                Some(driver) => write!(f, "bind {bdf} to {driver}"),
                None => write!(f, "probe {bdf}: bind it to its host driver"),
            },
        }
    }
}

impl Step {
    /// What puts the host back as it was before this step; empty when nothing can or needs to.
    pub fn undo(&self) -> Vec<Step> {
        match self {
            Step::StopUnit { unit, .. } => vec![Step::StartUnit { unit: unit.clone() }],
            Step::StartUnit { unit } => vec![Step::StopUnit {
                unit: unit.clone(),
                why: "rolling back".into(),
            }],
            Step::UnloadModule { module, .. } => vec![Step::LoadModule {
                module: module.clone(),
            }],
            Step::LoadModule { module } => vec![Step::UnloadModule {
                module: module.clone(),
                nodes: BTreeSet::new(),
            }],
            Step::Release { bdf, driver, .. } => vec![Step::Restore {
                bdf: *bdf,
                driver: driver.clone(),
            }],
            Step::LeaveVfio { bdf } => vec![
                Step::Release {
                    bdf: *bdf,
                    driver: None,
                    unbind: true,
                },
                Step::BindVfio { bdf: *bdf },
            ],
            // A process cannot be brought back; BindVfio and Restore are undone by the undo of
            // the Release or LeaveVfio that came before them.
            Step::EndProcess { .. } | Step::BindVfio { .. } | Step::Restore { .. } => vec![],
        }
    }
}
