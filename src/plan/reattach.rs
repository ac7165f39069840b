//! The steps that give functions back to the drivers they had before the detach.

use super::{console, Step};
use crate::bdf::Bdf;
use crate::host::holders::{self, Holder};
use crate::host::pci;
use crate::record;
use crate::snapshot::Snapshot;
use crate::vendor;
use std::collections::{BTreeMap, BTreeSet};

/// Why a reattach is refused before anything moves.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReattachError {
    /// A function parked on vfio-pci that pitcrew did not lend (exit 2 unless `--force`).
    #[error(
        "{bdf} is on vfio-pci but pitcrew did not lend it (it is not in {dir}/state.json): it was \
         parked there before, by the kernel command line (vfio-pci.ids=), driverctl or another \
         tool, so pitcrew leaves it. `pitcrew reattach --force {bdf}` hands it to the driver the \
         kernel picks",
        dir = record::DIR
    )]
    NotLent {
        /// The function.
        bdf: Bdf,
    },
    /// A process (the VM) holds the group's /dev/vfio node (exit 1).
    #[error(
        "a VM still uses IOMMU group {group}: {}. Giving the card back now would pull it from \
         under the running guest; stop the VM (`virsh destroy` or `virsh shutdown`) and reattach \
         then. Nothing was changed",
        list(holders)
    )]
    InUse {
        /// The IOMMU group.
        group: u32,
        /// The processes holding its node.
        holders: Vec<Holder>,
    },
}

fn list(holders: &[Holder]) -> String {
    let shown: Vec<String> = holders.iter().map(Holder::to_string).collect();
    shown.join("; ")
}

fn parked(s: &Snapshot, bdf: &Bdf) -> bool {
    let d = &s.devices[bdf];
    d.on_vfio() || d.driver_override.as_deref() == Some(pci::VFIO_DRIVER)
}

/// The functions among `widened` that pitcrew lent (the record has them); with `force`, also
/// those parked on vfio-pci by someone else. A requested function that is parked but was not
/// lent is refused without `force`: pitcrew gives back only what it took.
pub(super) fn lent_among(
    s: &Snapshot,
    widened: &BTreeSet<Bdf>,
    requested: &[Bdf],
    force: bool,
) -> Result<BTreeSet<Bdf>, ReattachError> {
    if !force {
        if let Some(bdf) = requested
            .iter()
            .find(|bdf| parked(s, bdf) && !s.record.lent.contains_key(bdf))
        {
            return Err(ReattachError::NotLent { bdf: *bdf });
        }
    }
    Ok(widened
        .iter()
        .copied()
        .filter(|bdf| s.record.lent.contains_key(bdf) || (force && parked(s, bdf)))
        .collect())
}

pub(super) fn steps(
    s: &Snapshot,
    functions: &BTreeSet<Bdf>,
    originals: &BTreeMap<Bdf, Option<String>>,
) -> Result<Vec<Step>, ReattachError> {
    // A process holding the group's /dev/vfio node is a VM using it: an unbind from vfio-pci
    // would wait for it, and taking the card from a running guest is never what was meant.
    for bdf in functions {
        let d = &s.devices[bdf];
        if let (true, Some(group)) = (d.on_vfio(), d.iommu_group) {
            let node = BTreeSet::from([format!("/dev/vfio/{group}")]);
            let using = holders::holding(&s.holders, &node);
            if !using.is_empty() {
                return Err(ReattachError::InUse {
                    group,
                    holders: using,
                });
            }
        }
    }
    let mut steps = Vec::new();
    let parked: Vec<Bdf> = functions
        .iter()
        .copied()
        .filter(|bdf| parked(s, bdf))
        .collect();
    steps.extend(parked.iter().map(|bdf| Step::LeaveVfio { bdf: *bdf }));
    // Off vfio-pci and before any host driver can bind (loading its module probes every free
    // function it matches): the kernel resizes a BAR only while no driver holds the function.
    steps.extend(super::tuning::restore(s, functions));

    let (returning, staying): (Vec<_>, Vec<_>) = s
        .record
        .unloaded_modules
        .iter()
        .partition(|u| u.functions.iter().any(|f| functions.contains(f)));
    // Loading in the reverse of the unload order brings the core module first (nvidia before
    // nvidia_modeset before nvidia_drm), as modprobe would.
    steps.extend(
        returning
            .iter()
            .rev()
            .filter(|u| !s.modules.contains_key(&u.module))
            .map(|u| Step::LoadModule {
                module: u.module.clone(),
            }),
    );

    for bdf in functions {
        let current = s.devices[bdf].driver.as_deref();
        let wanted = originals.get(bdf).cloned().flatten();
        let needed = match &wanted {
            Some(driver) => current != Some(driver.as_str()),
            None => parked.contains(bdf),
        };
        if needed {
            steps.push(Step::Restore {
                bdf: *bdf,
                driver: wanted,
            });
        }
    }

    steps.extend(console::restore(s, functions, originals));
    steps.extend(console::uninhibit(s, functions));

    for unit in &s.record.stopped_units {
        let held_down = vendor::PROFILES.iter().any(|p| {
            s.daemon_services(p).contains(unit)
                && staying
                    .iter()
                    .any(|u| p.drivers.contains(&u.module.as_str()))
        });
        if !held_down && !s.running_units.contains(unit) {
            steps.push(Step::StartUnit { unit: unit.clone() });
        }
    }
    Ok(steps)
}
