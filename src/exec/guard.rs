//! The invariant around every write that can block: nothing holds the device when it is made,
//! and a write the kernel still does not return from is reported and never repeated.

use super::error::StepError;
use super::perform::{await_release, end_process};
use crate::bdf::Bdf;
use crate::host::holders::{self, Holder};
use crate::host::{nodes, pci, sound, Host};
use crate::policy::Policy;
use crate::reserve;
use crate::vendor;
use std::collections::BTreeSet;

/// The nodes `bdf` has right now, read without touching anything the device lock guards
/// (links and directories only, never driver_override).
pub fn function_nodes(host: &Host, bdf: Bdf) -> BTreeSet<String> {
    let driver = pci::driver(host, bdf);
    let group = host
        .link_name(pci::device_path(bdf, "iommu_group"))
        .and_then(|g| g.parse().ok());
    let on_vfio = driver.as_deref() == Some(pci::VFIO_DRIVER);
    let mut found = nodes::of_function(host, bdf, on_vfio, group);
    found.extend(vendor::nvidia_node(host, bdf));
    found
}

/// Checks again, right before a write that waits for open files, that nothing holds `nodes`
/// (of `functions`): a holder that appeared since the plan (a sound server restarting, a
/// browser probing GPUs) is ended under the same TERM -> KILL policy; logind or seatd is waited
/// for instead, and a sound server holding one of the functions' ALSA cards is first asked
/// again through the reservation. A VM holding a /dev/vfio node is not ended: the step fails,
/// naming it.
pub fn clear_new_holders(
    host: &Host,
    what: &str,
    functions: &[Bdf],
    nodes: &BTreeSet<String>,
    policy: &Policy,
) -> Result<(), StepError> {
    if nodes.is_empty() {
        return Ok(());
    }
    let all = holders::scan(host).map_err(StepError::Holders)?;
    for holder in holders::holding(&all, nodes) {
        if holder.nodes.iter().any(|n| n.starts_with("/dev/vfio/")) {
            return Err(StepError::VmHolds {
                holder: holder.to_string(),
                what: what.to_string(),
            });
        }
        let outcome = if holder.is_broker() {
            tracing::warn!("{holder} opened {what} since the plan: waiting for it to close it");
            await_release(host, holder.pid, &holder.comm, &holder.nodes, policy)
        } else {
            if let Some((bdf, card)) = sound_card_held(host, functions, &holder) {
                tracing::warn!(
                    "{holder} opened ALSA card {card} of {bdf} since the plan: asking it again \
                     through the reservation"
                );
                reserve::release(host, bdf, card, policy);
                if holders::held_nodes(host, holder.pid).is_disjoint(nodes) {
                    tracing::info!("{holder} let go of ALSA card {card} when asked again");
                    continue;
                }
                tracing::warn!("{holder} kept ALSA card {card} after being asked again: ending it");
            } else {
                tracing::warn!("{holder} opened {what} since the plan: ending it");
            }
            end_process(host, holder.pid, &holder.comm, &holder.nodes, policy)
        };
        outcome.map_err(|e| StepError::LateHolder {
            holder: holder.to_string(),
            what: what.to_string(),
            source: Box::new(e),
        })?;
    }
    Ok(())
}

/// The first of the functions' ALSA cards the holder has a node of.
fn sound_card_held(host: &Host, functions: &[Bdf], holder: &Holder) -> Option<(Bdf, u32)> {
    functions.iter().find_map(|bdf| {
        sound::cards(host, *bdf)
            .into_iter()
            .find(|card| holder.nodes.iter().any(|n| sound::is_node_of(*card, n)))
            .map(|card| (*bdf, card))
    })
}

/// A write about `bdf` that the kernel did not return from, with who holds the device now.
pub fn stuck(host: &Host, bdf: Bdf, what: String, helper: Option<u32>) -> StepError {
    let nodes = function_nodes(host, bdf);
    let holding: Vec<Holder> = holders::scan(host)
        .map(|all| holders::holding(&all, &nodes))
        .unwrap_or_default();
    let held = if holding.is_empty() {
        format!(
            "no process pitcrew can see holds a node of {bdf} (the holder may live in another \
             PID namespace, or be the kernel itself)"
        )
    } else {
        let shown: Vec<String> = holding.iter().map(Holder::to_string).collect();
        format!("{bdf} is held by {}", shown.join("; "))
    };
    StepError::Stuck {
        message: format!("{what}; {held}"),
        devices: vec![bdf],
        module: None,
        helper,
    }
}
