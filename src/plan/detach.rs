//! The steps that move functions from their host drivers to vfio-pci.

use super::Step;
use crate::bdf::Bdf;
use crate::policy::{DisplayManagerPolicy, Policy};
use crate::snapshot::Snapshot;
use crate::vendor;
use std::collections::BTreeSet;

/// Processes whose names say they draw the desktop: with a display manager, they are its.
const DISPLAY_SERVERS: &[&str] = &[
    "Xorg",
    "X",
    "Xwayland",
    "gnome-shell",
    "kwin_wayland",
    "kwin_x11",
    "sway",
    "weston",
    "Hyprland",
    "gamescope",
    "cage",
    "labwc",
    "wayfire",
    "mutter",
    "cosmic-comp",
];

pub(super) fn steps(s: &Snapshot, functions: &BTreeSet<Bdf>, policy: &Policy) -> Vec<Step> {
    let moving: Vec<Bdf> = functions
        .iter()
        .copied()
        .filter(|bdf| !s.devices[bdf].on_vfio())
        .collect();
    let unload = modules_to_unload(s, functions, &moving);
    let unloaded_drivers: BTreeSet<&str> = moving
        .iter()
        .filter_map(|bdf| s.devices[bdf].driver.as_deref())
        .filter(|driver| unload.contains(&s.module_of(driver)))
        .collect();

    let vendors: BTreeSet<u16> = moving.iter().map(|bdf| s.devices[bdf].vendor).collect();
    let mut nodes: BTreeSet<String> = moving.iter().flat_map(|bdf| s.own_nodes(*bdf)).collect();
    let mut daemons: Vec<&str> = Vec::new();
    for profile in vendors.iter().map(|v| vendor::profile(*v)) {
        if profile.drivers.iter().any(|d| unloaded_drivers.contains(d)) {
            nodes.extend(profile.shared_nodes.iter().map(|n| n.to_string()));
        }
        daemons.extend(
            profile
                .daemons
                .iter()
                .copied()
                .filter(|unit| s.running_units.contains(*unit)),
        );
    }
    let holders: Vec<_> = s
        .holders
        .iter()
        .filter(|h| h.nodes.iter().any(|n| nodes.contains(n)))
        .collect();

    let dm = s.display_manager.as_deref();
    let dm_running = dm.is_some_and(|dm| s.running_units.contains(dm));
    let dm_holds = holders
        .iter()
        .any(|h| h.unit.as_deref() == dm || DISPLAY_SERVERS.contains(&h.comm.as_str()));
    let stop_dm = dm_running
        && !moving.is_empty()
        && match policy.display_manager {
            DisplayManagerPolicy::Always => true,
            DisplayManagerPolicy::Never => false,
            DisplayManagerPolicy::Auto => dm_holds,
        };

    let mut steps = Vec::new();
    for unit in &daemons {
        steps.push(Step::StopUnit {
            unit: unit.to_string(),
            why: "it keeps the driver busy".into(),
        });
    }
    if let (true, Some(dm)) = (stop_dm, dm) {
        steps.push(Step::StopUnit {
            unit: dm.to_string(),
            why: match policy.display_manager {
                DisplayManagerPolicy::Always => "the config says always".into(),
                _ => "the desktop holds the card".into(),
            },
        });
    }
    let stopping: Vec<String> = steps
        .iter()
        .filter_map(|step| match step {
            Step::StopUnit { unit, .. } => Some(unit.clone()),
            _ => None,
        })
        .collect();
    for holder in holders {
        // Stopping its unit ends it, and the unit comes back by the same path it left.
        if !holder.unit.as_ref().is_some_and(|u| stopping.contains(u)) {
            steps.push(Step::EndProcess {
                pid: holder.pid,
                comm: holder.comm.clone(),
                nodes: holder.nodes.intersection(&nodes).cloned().collect(),
            });
        }
    }
    for bdf in &moving {
        let driver = s.devices[bdf].driver.clone();
        let unbind = driver
            .as_deref()
            .is_some_and(|d| !unloaded_drivers.contains(d));
        steps.push(Step::Release {
            bdf: *bdf,
            driver,
            unbind,
        });
    }
    steps.extend(
        unload
            .into_iter()
            .map(|module| Step::UnloadModule { module }),
    );
    if !moving.is_empty() && !s.vfio_available() {
        steps.push(Step::LoadModule {
            module: "vfio_pci".into(),
        });
    }
    steps.extend(moving.iter().map(|bdf| Step::BindVfio { bdf: *bdf }));

    // Units stopped by this plan, or by an earlier run that crashed, come back now; a vendor's
    // daemons stay down while its modules are unloaded (they would fail, or load them again).
    let modules_gone = |profile: &vendor::Profile| {
        profile.drivers.iter().any(|d| {
            unloaded_drivers.contains(d) || s.record.unloaded_modules.iter().any(|m| m.module == *d)
        })
    };
    let stopped_here: Vec<String> = steps
        .iter()
        .filter_map(|step| match step {
            Step::StopUnit { unit, .. } => Some(unit.clone()),
            _ => None,
        })
        .collect();
    let mut restart: Vec<String> = stopped_here.clone();
    restart.extend(
        s.record
            .stopped_units
            .iter()
            .filter(|unit| !stopped_here.contains(unit) && !s.running_units.contains(*unit))
            .cloned(),
    );
    for unit in restart {
        let held_down = vendor::PROFILES
            .iter()
            .any(|p| p.daemons.contains(&unit.as_str()) && modules_gone(p));
        if !held_down {
            steps.push(Step::StartUnit { unit });
        }
    }
    steps
}

/// The GPU drivers' modules that can go because nothing outside `functions` is bound to them,
/// dependents first. Only display drivers: they are the ones that cling to a card (NVIDIA's
/// unbind can hang while its stack is loaded); companion functions (audio, USB-C) move alone,
/// which costs the kernel far less than unloading and reloading their modules.
fn modules_to_unload(s: &Snapshot, functions: &BTreeSet<Bdf>, moving: &[Bdf]) -> Vec<String> {
    let mut order = Vec::new();
    let gpu_drivers = moving
        .iter()
        .map(|bdf| &s.devices[bdf])
        .filter(|d| d.is_display())
        .filter_map(|d| d.driver.as_deref());
    for driver in gpu_drivers {
        let module = s.module_of(driver);
        if order.contains(&module) || !s.modules.contains_key(&module) {
            continue;
        }
        let mut stack = Vec::new();
        dependents_first(s, &module, &mut stack);
        let serves_others = s.devices.values().any(|d| {
            !functions.contains(&d.bdf)
                && d.driver
                    .as_deref()
                    .is_some_and(|drv| stack.contains(&s.module_of(drv)))
        });
        let builtin = stack.iter().any(|m| s.builtin_modules.contains(m));
        if !serves_others && !builtin {
            order.extend(
                stack
                    .into_iter()
                    .filter(|m| !order.contains(m))
                    .collect::<Vec<_>>(),
            );
        }
    }
    order
}

fn dependents_first(s: &Snapshot, module: &str, out: &mut Vec<String>) {
    if out.iter().any(|m| m == module) {
        return;
    }
    if let Some(info) = s.modules.get(module) {
        for user in &info.used_by {
            dependents_first(s, user, out);
        }
    }
    out.push(module.to_string());
}
