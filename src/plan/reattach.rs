//! The steps that give functions back to the drivers they had before the detach.

use super::Step;
use crate::bdf::Bdf;
use crate::host::pci;
use crate::snapshot::Snapshot;
use crate::vendor;
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn steps(
    s: &Snapshot,
    functions: &BTreeSet<Bdf>,
    originals: &BTreeMap<Bdf, Option<String>>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let parked: Vec<Bdf> = functions
        .iter()
        .copied()
        .filter(|bdf| {
            let d = &s.devices[bdf];
            d.on_vfio() || d.driver_override.as_deref() == Some(pci::VFIO_DRIVER)
        })
        .collect();
    steps.extend(parked.iter().map(|bdf| Step::LeaveVfio { bdf: *bdf }));

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

    for unit in &s.record.stopped_units {
        let held_down = vendor::PROFILES.iter().any(|p| {
            p.daemons.contains(&unit.as_str())
                && staying
                    .iter()
                    .any(|u| p.drivers.contains(&u.module.as_str()))
        });
        if !held_down && !s.running_units.contains(unit) {
            steps.push(Step::StartUnit { unit: unit.clone() });
        }
    }
    steps
}
