//! The steps a plan is made of, each printable for a dry run.

use crate::bdf::Bdf;
use crate::host::holders::{how_held, listed};
use crate::tuning::size_text;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
/// One change to the host; each knows its undo.
pub enum Step {
    /// Stop a service (a systemd unit, an OpenRC service) through the host's service manager.
    StopUnit {
        /// The unit.
        unit: String,
        /// Why, for the plan.
        why: String,
    },
    /// Start a service through the host's service manager.
    StartUnit {
        /// The unit.
        unit: String,
    },
    /// Ask the sound server holding an audio function's ALSA card to release it through the
    /// device reservation protocol, hold the reservation until the function is on vfio-pci, and
    /// wait until no node of the card is open.
    ReleaseSound {
        /// The audio function.
        bdf: Bdf,
        /// Its ALSA card number.
        card: u32,
        /// Who holds the card now, as `comm (pid)`.
        holders: Vec<String>,
    },
    /// SIGTERM through a pidfd, a bounded wait, then SIGKILL.
    EndProcess {
        /// The holder.
        pid: u32,
        /// Its name.
        comm: String,
        /// The card's nodes it holds.
        nodes: BTreeSet<String>,
        /// Those of them it holds only by a mapping (no fd open on them).
        #[serde(skip_serializing_if = "BTreeSet::is_empty")]
        mapped: BTreeSet<String>,
    },
    /// Wait, within the step timeout, for a process that holds the card for a login session
    /// (logind, seatd) to close it, which it does once the session's compositor lets go.
    AwaitRelease {
        /// The broker.
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
    /// Write 0 to the vtconsole's `bind`: the text console leaves every frame buffer, the card's
    /// included, for the dummy console.
    UnbindConsole {
        /// Its sysfs entry (`vtcon1`).
        vtcon: String,
        /// Its driver's name (`(M) frame buffer device`).
        name: String,
    },
    /// Write 1 to its `bind` (found by name): the console comes back on the frame buffers
    /// registered now, unless the kernel already put it there.
    BindConsole {
        /// Its sysfs entry when it was unbound.
        vtcon: String,
        /// Its driver's name.
        name: String,
    },
    /// Unbind the firmware's frame buffer device from its driver, which frees the card memory
    /// it claims (vfio-pci could not reserve the BAR otherwise).
    ReleaseFramebuffer {
        /// The platform device (`efi-framebuffer.0`).
        device: String,
        /// Its driver (`efi-framebuffer`).
        driver: String,
        /// The function whose BAR it sits in.
        bdf: Bdf,
    },
    /// Bind it again: only when no real driver took the card meanwhile.
    RestoreFramebuffer {
        /// The platform device.
        device: String,
        /// The driver it had.
        driver: String,
        /// The function whose BAR it sits in.
        bdf: Bdf,
    },
    /// Start a `systemd-inhibit --what=sleep` holder giving `why`.
    InhibitSleep {
        /// What `systemd-inhibit --list` shows as the reason.
        why: String,
    },
    /// End the holder giving `why`.
    ReleaseInhibitor {
        /// Its reason.
        why: String,
    },
    /// Write a new size to a resizable BAR of a function no driver holds (`resourceN_resize`);
    /// a refusal only warns unless `required`.
    ResizeBar {
        /// The function.
        bdf: Bdf,
        /// The BAR's index.
        bar: usize,
        /// Its size now, in bytes.
        from: u64,
        /// The size wanted, in bytes.
        to: u64,
        /// A refusal fails the step.
        required: bool,
    },
    /// Put a BAR back to the size it had before the lend, unbinding vfio-pci first if it is
    /// still there; a refusal only warns, so the function still goes back to its driver.
    RestoreBar {
        /// The function.
        bdf: Bdf,
        /// The BAR's index.
        bar: usize,
        /// Its size now, in bytes.
        from: u64,
        /// The size it had, in bytes.
        to: u64,
    },
    /// Write the function's reset methods (`reset_method`); a refusal only warns.
    SetResetMethod {
        /// The function.
        bdf: Bdf,
        /// The methods it has now.
        from: String,
        /// The methods wanted.
        to: String,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::StopUnit { unit, why } => write!(f, "stop {unit} ({why})"),
            Step::StartUnit { unit } => write!(f, "start {unit}"),
            Step::EndProcess {
                pid,
                comm,
                nodes,
                mapped,
            } => write!(
                f,
                "end process {pid} ({comm}) {}: TERM, then KILL after the deadline",
                how_held(nodes, mapped)
            ),
            Step::AwaitRelease { pid, comm, nodes } => write!(
                f,
                "wait for {comm} ({pid}) to close {}, which it holds for a login session \
                 (it is never signalled)",
                listed(nodes)
            ),
            Step::ReleaseSound { bdf, card, holders } => write!(
                f,
                "ask {} to release ALSA card {card} of {bdf} through \
                 org.freedesktop.ReserveDevice1.Audio{card}, kept until {bdf} is on vfio-pci",
                holders.join(", ")
            ),
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
            Step::UnbindConsole { vtcon, name } => write!(
                f,
                "unbind the kernel console {vtcon} ({name}) from the frame buffers"
            ),
            Step::BindConsole { vtcon, name } => {
                write!(f, "bind the kernel console {vtcon} ({name}) again")
            }
            Step::ReleaseFramebuffer {
                device,
                driver,
                bdf,
            } => write!(
                f,
                "unbind the firmware frame buffer {device} from {driver}: it holds {bdf}'s memory"
            ),
            Step::RestoreFramebuffer {
                device,
                driver,
                bdf,
            } => write!(
                f,
                "bind the firmware frame buffer {device} to {driver} again ({bdf} has no driver \
                 of its own)"
            ),
            Step::InhibitSleep { why } => write!(
                f,
                "hold a logind sleep inhibitor (\"{why}\") while the card is lent"
            ),
            Step::ReleaseInhibitor { why } => {
                write!(f, "release the sleep inhibitor (\"{why}\")")
            }
            Step::ResizeBar {
                bdf,
                bar,
                from,
                to,
                required,
            } => write!(
                f,
                "resize BAR{bar} of {bdf} from {} to {}{}",
                size_text(*from),
                size_text(*to),
                if *required { " (required)" } else { "" }
            ),
            Step::RestoreBar { bdf, bar, from, to } => write!(
                f,
                "put BAR{bar} of {bdf} back to {} (it is {})",
                size_text(*to),
                size_text(*from)
            ),
            Step::SetResetMethod { bdf, from, to } => {
                write!(f, "set {bdf} reset_method to \"{to}\" (it has \"{from}\")")
            }
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
            Step::UnbindConsole { vtcon, name } => vec![Step::BindConsole {
                vtcon: vtcon.clone(),
                name: name.clone(),
            }],
            Step::BindConsole { vtcon, name } => vec![Step::UnbindConsole {
                vtcon: vtcon.clone(),
                name: name.clone(),
            }],
            Step::ReleaseFramebuffer {
                device,
                driver,
                bdf,
            } => vec![Step::RestoreFramebuffer {
                device: device.clone(),
                driver: driver.clone(),
                bdf: *bdf,
            }],
            Step::RestoreFramebuffer {
                device,
                driver,
                bdf,
            } => vec![Step::ReleaseFramebuffer {
                device: device.clone(),
                driver: driver.clone(),
                bdf: *bdf,
            }],
            Step::InhibitSleep { why } => vec![Step::ReleaseInhibitor { why: why.clone() }],
            Step::ReleaseInhibitor { why } => vec![Step::InhibitSleep { why: why.clone() }],
            Step::ResizeBar {
                bdf, bar, from, to, ..
            } => vec![Step::RestoreBar {
                bdf: *bdf,
                bar: *bar,
                from: *to,
                to: *from,
            }],
            Step::RestoreBar { bdf, bar, from, to } => vec![Step::ResizeBar {
                bdf: *bdf,
                bar: *bar,
                from: *to,
                to: *from,
                required: false,
            }],
            Step::SetResetMethod { bdf, from, to } => vec![Step::SetResetMethod {
                bdf: *bdf,
                from: to.clone(),
                to: from.clone(),
            }],
            // A process cannot be brought back; BindVfio and Restore are undone by the undo of
            // the Release or LeaveVfio that came before them.
            // A released reservation goes back by itself when pitcrew's helper lets go of it.
            Step::EndProcess { .. }
            | Step::AwaitRelease { .. }
            | Step::ReleaseSound { .. }
            | Step::BindVfio { .. }
            | Step::Restore { .. } => vec![],
        }
    }
}
