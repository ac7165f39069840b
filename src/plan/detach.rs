//! The steps that move functions from their host drivers to vfio-pci.

use super::{console, desktop, PlanError, Step};
use crate::bdf::Bdf;
use crate::host::holders::Holder;
use crate::host::{pci, sound};
use crate::policy::{DisplayManagerPolicy, Policy};
use crate::snapshot::Snapshot;
use crate::vendor;
use std::collections::BTreeSet;

/// The functions of `functions` that are not on vfio-pci yet.
fn moving(s: &Snapshot, functions: &BTreeSet<Bdf>) -> Vec<Bdf> {
    functions
        .iter()
        .copied()
        .filter(|bdf| !s.devices[bdf].on_vfio())
        .collect()
}

/// Drivers of moving functions that go away with their modules.
fn unloaded_drivers<'a>(s: &'a Snapshot, moving: &[Bdf], unload: &[String]) -> BTreeSet<&'a str> {
    moving
        .iter()
        .filter_map(|bdf| s.devices[bdf].driver.as_deref())
        .filter(|driver| unload.contains(&s.module_of(driver)))
        .collect()
}

/// Every node whose holder would make the kernel wait while `functions` leave their drivers:
/// each moving function's own nodes, and the vendor's shared ones (/dev/nvidiactl, /dev/kfd)
/// when its modules are unloaded.
pub fn watched_nodes(s: &Snapshot, functions: &BTreeSet<Bdf>) -> BTreeSet<String> {
    let moving = moving(s, functions);
    let unload = modules_to_unload(s, functions, &moving);
    nodes_of(s, &moving, &unloaded_drivers(s, &moving, &unload))
}

fn nodes_of(s: &Snapshot, moving: &[Bdf], unloaded_drivers: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut nodes: BTreeSet<String> = moving.iter().flat_map(|bdf| s.own_nodes(*bdf)).collect();
    // The firmware's frame buffer on the card is its node too while it is there.
    nodes.extend(console::framebuffer_nodes(
        s,
        &moving.iter().copied().collect(),
    ));
    let vendors: BTreeSet<u16> = moving.iter().map(|bdf| s.devices[bdf].vendor).collect();
    for profile in vendors.into_iter().map(vendor::profile) {
        if profile.drivers.iter().any(|d| unloaded_drivers.contains(d)) {
            nodes.extend(profile.shared_nodes.iter().map(|n| n.to_string()));
        }
    }
    nodes
}

pub(super) fn steps(
    s: &Snapshot,
    functions: &BTreeSet<Bdf>,
    policy: &Policy,
    owner: Option<&str>,
    tuned: Vec<Step>,
) -> Result<Vec<Step>, PlanError> {
    let moving = moving(s, functions);
    let unload = modules_to_unload(s, functions, &moving);
    let unloaded_drivers = unloaded_drivers(s, &moving, &unload);
    let profiles: BTreeSet<u16> = moving.iter().map(|bdf| s.devices[bdf].vendor).collect();
    let profiles: Vec<&vendor::Profile> = profiles.into_iter().map(vendor::profile).collect();
    let nodes = nodes_of(s, &moving, &unloaded_drivers);
    let holders: Vec<&Holder> = s
        .holders
        .iter()
        .filter(|h| !h.nodes.is_disjoint(&nodes))
        .collect();
    // A compute card (3D controller) has no screen: the desktop never has to go for it.
    let display_moves = moving.iter().any(|bdf| s.devices[bdf].is_display());
    // The config asking for the display manager to go always is the one case a desktop that
    // only renders with the card may be ended for it.
    if !(display_moves && policy.display_manager == DisplayManagerPolicy::Always) {
        desktop::refuse_render_only(s, &holders, &nodes, &moving)?;
    }
    if display_moves && policy.display_manager == DisplayManagerPolicy::Never {
        desktop::refuse_never(s, &holders, &nodes, &moving)?;
    }

    // Held first, so the host cannot suspend halfway through the handover either.
    let mut steps: Vec<Step> = console::inhibit(s, owner, policy.inhibit_sleep)
        .into_iter()
        .collect();
    if !moving.is_empty() {
        let kept_off = moving
            .iter()
            .filter(|bdf| s.devices[bdf].is_display())
            .all(|bdf| s.keep_off.contains_key(bdf));
        steps.extend(units_to_stop(
            s,
            &profiles,
            &holders,
            policy,
            display_moves,
            headless(s, functions),
            kept_off,
        ));
    }
    steps.extend(sound_releases(s, &moving));
    let stopping: Vec<String> = steps
        .iter()
        .filter_map(|step| match step {
            Step::StopUnit { unit, .. } => Some(unit.clone()),
            _ => None,
        })
        .collect();
    // Stopping its unit ends a holder, and the unit comes back by the same path it left; where
    // the service manager leaves a stopped service's processes, those still holding are ended.
    let (mut brokers, others): (Vec<&Holder>, Vec<&Holder>) = holders
        .into_iter()
        .filter(|h| !(s.stop_ends_cgroup && stopping.iter().any(|u| h.in_system_unit(u))))
        .partition(|h| h.is_broker());
    brokers.sort_by_key(|h| h.is_service_manager());
    for holder in others {
        steps.push(Step::EndProcess {
            pid: holder.pid,
            comm: holder.comm.clone(),
            nodes: holder.nodes.intersection(&nodes).cloned().collect(),
            mapped: holder.mapped.intersection(&nodes).cloned().collect(),
        });
    }
    // After the sessions' compositors have gone: that is when logind lets go of their devices.
    for broker in brokers {
        steps.push(Step::AwaitRelease {
            pid: broker.pid,
            comm: broker.comm.clone(),
            nodes: broker.nodes.intersection(&nodes).cloned().collect(),
        });
    }
    steps.extend(console::release(s, &moving.iter().copied().collect()));
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
    steps.extend(unload.into_iter().map(|module| Step::UnloadModule {
        module,
        nodes: nodes.clone(),
    }));
    // Between the host driver's unbind and vfio-pci's bind: the kernel resizes a BAR only while
    // no driver holds the function, and the guest sees the size it had when vfio-pci bound.
    // Before vfio-pci loads, too: registering it binds every function reserved for it.
    steps.extend(tuned);
    if !moving.is_empty() && !s.vfio_available() {
        steps.push(Step::LoadModule {
            module: pci::VFIO_MODULE.into(),
        });
    }
    steps.extend(moving.iter().map(|bdf| Step::BindVfio { bdf: *bdf }));
    steps.extend(units_to_restart(
        s,
        &stopping,
        &unloaded_drivers,
        headless(s, functions),
    ));
    Ok(steps)
}

/// A sound server holding an ALSA card of a moving function is asked to let go of it through
/// the reservation protocol before anything is ended or unbound.
fn sound_releases(s: &Snapshot, moving: &[Bdf]) -> Vec<Step> {
    let mut steps = Vec::new();
    for bdf in moving {
        for card in s.sound_cards.get(bdf).into_iter().flatten() {
            let holders: Vec<String> = s
                .holders
                .iter()
                .filter(|h| h.nodes.iter().any(|n| sound::is_node_of(*card, n)))
                .map(|h| format!("{} ({})", h.comm, h.pid))
                .collect();
            if !holders.is_empty() {
                steps.push(Step::ReleaseSound {
                    bdf: *bdf,
                    card: *card,
                    holders,
                });
            }
        }
    }
    steps
}

/// True when no display card stays with the host (a compute card does not count: it has no
/// screen): a display manager started then would find no card and fail, so it stays stopped
/// until the reattach brings the card back.
fn headless(s: &Snapshot, functions: &BTreeSet<Bdf>) -> bool {
    !s.devices
        .values()
        .any(|d| d.is_display() && !functions.contains(&d.bdf) && d.on_host_driver())
}

/// The vendors' daemons that keep the driver busy, then the display manager when the policy
/// says so (by default: when the desktop holds the card) and a display card moves. A card kept
/// off the desktop that nothing of the desktop holds never costs the session, whatever the
/// policy.
fn units_to_stop(
    s: &Snapshot,
    profiles: &[&vendor::Profile],
    holders: &[&Holder],
    policy: &Policy,
    display_moves: bool,
    headless: bool,
    kept_off: bool,
) -> Vec<Step> {
    let mut steps: Vec<Step> = profiles
        .iter()
        .flat_map(|p| s.daemon_services(p))
        .filter(|unit| s.running_units.contains(unit))
        .map(|unit| Step::StopUnit {
            unit,
            why: "it keeps the driver busy".into(),
        })
        .collect();
    let Some(dm) = s.display_manager.as_deref().filter(|_| display_moves) else {
        return steps;
    };
    let holds = holders.iter().any(|h| desktop::is_desktop(h, Some(dm)));
    let why = match policy.display_manager {
        _ if kept_off && !holds => None,
        DisplayManagerPolicy::Always => Some("the config says always"),
        DisplayManagerPolicy::Auto if holds => Some("the desktop holds the card"),
        _ => None,
    };
    if let (Some(why), true) = (why, s.running_units.contains(dm)) {
        let until = if headless {
            "; it is the host's only display, so the desktop comes back at reattach"
        } else {
            ""
        };
        steps.push(Step::StopUnit {
            unit: dm.to_string(),
            why: format!("{why}{until}"),
        });
    }
    steps
}

/// Units stopped by this plan, or by an earlier run that crashed, come back at the end, except
/// those the reattach starts instead: a vendor's daemons while its modules are unloaded (they
/// would fail, or load them again), and the display manager when no display is left.
fn units_to_restart(
    s: &Snapshot,
    stopping: &[String],
    unloaded_drivers: &BTreeSet<&str>,
    headless: bool,
) -> Vec<Step> {
    let modules_gone = |profile: &vendor::Profile| {
        profile.drivers.iter().any(|d| {
            unloaded_drivers.contains(d) || s.record.unloaded_modules.iter().any(|m| m.module == *d)
        })
    };
    let left_stopped = s
        .record
        .stopped_units
        .iter()
        .filter(|unit| !stopping.contains(unit) && !s.running_units.contains(*unit));
    stopping
        .iter()
        .chain(left_stopped)
        .filter(|unit| {
            !vendor::PROFILES
                .iter()
                .any(|p| s.daemon_services(p).contains(unit) && modules_gone(p))
        })
        .filter(|unit| !(headless && s.display_manager.as_ref() == Some(*unit)))
        .map(|unit| Step::StartUnit { unit: unit.clone() })
        .collect()
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
        .filter(|d| d.is_gpu())
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
