//! The steps that change a lent function itself: the size of its resizable BAR and its reset
//! methods on the way to vfio-pci (while no driver holds it), and back from the record on the
//! way home, before its host driver binds.

use super::Step;
use crate::bdf::Bdf;
use crate::host::rebar::ResizableBar;
use crate::snapshot::Snapshot;
use crate::tuning::{config_size, LendTuning, Rebar, ResetMethod};
use std::collections::BTreeSet;

/// A setting the card cannot follow; found before anything changes (exit 2).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TuningError {
    /// The size the config asks for is not one the card offers for that BAR.
    #[error(
        "the config asks for BAR{bar} of {bdf} to be {wanted}, which the card does not offer \
         (it offers {offered}): set rebar to one of those, \"smallest\" or \"keep\" in {config}. \
         Nothing was changed",
        wanted = config_size(*.wanted),
        offered = .offered.iter().map(|b| config_size(*b)).collect::<Vec<_>>().join(", "),
        config = crate::config::CONFIG_PATH
    )]
    NotOffered {
        /// The function.
        bdf: Bdf,
        /// The BAR's index.
        bar: usize,
        /// The size asked for, in bytes.
        wanted: u64,
        /// The sizes offered, in bytes.
        offered: Vec<u64>,
    },
}

/// The BAR a `rebar` setting is about: the largest 64-bit prefetchable one the capability covers,
/// by the most it offers (a GPU's VRAM, never its doorbell or register BARs), whatever the vendor.
pub fn chosen(bars: &[ResizableBar]) -> Option<&ResizableBar> {
    bars.iter()
        .filter(|bar| bar.prefetchable_64 && bar.offered != 0)
        .max_by_key(|bar| (bar.sizes().last().copied(), bar.size))
}

/// The size `rebar` asks of `bar`; None for `keep`.
pub fn wanted(rebar: Rebar, bar: &ResizableBar) -> Option<u64> {
    match rebar {
        Rebar::Keep => None,
        Rebar::Smallest => bar.sizes().first().copied(),
        Rebar::Size(bytes) => Some(bytes),
    }
}

/// For each function on its way to vfio-pci: its chosen BAR resized and its reset methods set
/// as the config says, where they differ from what it has now (so a run after a crash does not
/// write them again). A function without a `reset_method` file has no method to set.
pub(super) fn lend(
    s: &Snapshot,
    functions: &BTreeSet<Bdf>,
    tuning: &LendTuning,
) -> Result<Vec<Step>, TuningError> {
    let mut steps = Vec::new();
    for bdf in functions.iter().filter(|bdf| !s.devices[bdf].on_vfio()) {
        let d = &s.devices[bdf];
        let t = tuning.of(*bdf);
        if let Some(bar) = chosen(&d.resizable_bars) {
            if let Some(to) = wanted(t.rebar, bar) {
                if !bar.offers(to) {
                    return Err(TuningError::NotOffered {
                        bdf: *bdf,
                        bar: bar.bar,
                        wanted: to,
                        offered: bar.sizes(),
                    });
                }
                if to != bar.size {
                    steps.push(Step::ResizeBar {
                        bdf: *bdf,
                        bar: bar.bar,
                        from: bar.size,
                        to,
                        required: t.rebar_required,
                    });
                }
            }
        }
        if let (ResetMethod::Set(to), Some(from)) = (&t.reset_method, &d.reset_method) {
            if to != from {
                steps.push(Step::SetResetMethod {
                    bdf: *bdf,
                    from: from.clone(),
                    to: to.clone(),
                });
            }
        }
    }
    Ok(steps)
}

/// What the record says the functions had before the lend, where they differ now.
pub(super) fn restore(s: &Snapshot, functions: &BTreeSet<Bdf>) -> Vec<Step> {
    let mut steps = Vec::new();
    for bdf in functions {
        let (Some(lent), Some(d)) = (s.record.lent.get(bdf), s.devices.get(bdf)) else {
            continue;
        };
        for (bar, size) in &lent.bars {
            let now = d.resizable_bars.iter().find(|b| b.bar == *bar);
            if let Some(now) = now.filter(|now| now.size != *size) {
                steps.push(Step::RestoreBar {
                    bdf: *bdf,
                    bar: *bar,
                    from: now.size,
                    to: *size,
                });
            }
        }
        if let (Some(had), Some(now)) = (&lent.reset_method, &d.reset_method) {
            if had != now {
                steps.push(Step::SetResetMethod {
                    bdf: *bdf,
                    from: now.clone(),
                    to: had.clone(),
                });
            }
        }
    }
    steps
}
