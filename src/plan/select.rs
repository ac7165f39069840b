//! Which functions a request moves: the given addresses widened to the other functions of their
//! PCI slots and to their IOMMU groups, until nothing new comes in.

use crate::bdf::Bdf;
use crate::host::pci::PciDevice;
use crate::snapshot::Snapshot;
use std::collections::BTreeSet;
use std::fmt;

/// Why the requested devices cannot be handed over; nothing was changed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    /// No such PCI device.
    #[error("no PCI device {0}: `pitcrew status` or `lspci -D` lists the addresses on this host")]
    Unknown(Bdf),
    #[error(
        "{bdf} is a PCI bridge (class {class:#08x}): bridges stay with the host; give the GPU's \
         address instead"
    )]
    /// A PCI bridge, which stays with the host.
    Bridge {
        /// The bridge.
        bdf: Bdf,
        /// Its PCI class.
        class: u32,
    },
    #[error(
        "{0} is in no IOMMU group, so it cannot be given to a VM: enable the IOMMU in firmware and \
         on the kernel command line (intel_iommu=on or amd_iommu=on) and reboot"
    )]
    /// The device is in no IOMMU group (the IOMMU is off).
    NoGroup(Bdf),
    /// The group holds devices of another slot that the host uses.
    #[error(
        "IOMMU group {group} of {requested} also holds {}, in use by the host and not part of \
         the cards asked for; a VM can only take the whole group. Move the card to another \
         slot, or unbind {} yourself if {} may go to the VM too",
        InUse::list(others),
        if others.len() == 1 { "it" } else { "them" },
        if others.len() == 1 { "it" } else { "they" }
    )]
    Unrelated {
        /// The IOMMU group.
        group: u32,
        /// The device asked for whose widening reached the group.
        requested: Bdf,
        /// Every device of the group in the host's use.
        others: Vec<InUse>,
    },
    /// No device was given.
    #[error("no device given")]
    Empty,
}

/// A device the host is using, as a refusal names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUse {
    /// The device.
    pub bdf: Bdf,
    /// What kind of device it is (storage, network...).
    pub kind: &'static str,
    /// The driver it is bound to.
    pub driver: String,
}

impl InUse {
    fn list(all: &[InUse]) -> String {
        let shown: Vec<String> = all.iter().map(InUse::to_string).collect();
        shown.join(", ")
    }
}

impl fmt::Display for InUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, driver {})", self.bdf, self.kind, self.driver)
    }
}

/// Widens `requested` to every non-bridge function of their slots and IOMMU groups. Devices of
/// the slots asked for belong to the lend, so GPUs requested together may share a group; a
/// group that would also take a device from another slot that the host uses is refused,
/// naming every such device.
pub fn select(snapshot: &Snapshot, requested: &[Bdf]) -> Result<BTreeSet<Bdf>, SelectError> {
    if requested.is_empty() {
        return Err(SelectError::Empty);
    }
    for &bdf in requested {
        let device = snapshot
            .devices
            .get(&bdf)
            .ok_or(SelectError::Unknown(bdf))?;
        if device.is_bridge() {
            return Err(SelectError::Bridge {
                bdf,
                class: device.class,
            });
        }
    }
    let slots: BTreeSet<_> = requested.iter().map(Bdf::slot).collect();
    let mut chosen = BTreeSet::new();
    let mut queue: Vec<Bdf> = requested.to_vec();
    while let Some(bdf) = queue.pop() {
        if !chosen.insert(bdf) {
            continue;
        }
        let group = snapshot.devices[&bdf]
            .iommu_group
            .ok_or(SelectError::NoGroup(bdf))?;
        let mut others = Vec::new();
        let members = group_members(snapshot, group).chain(snapshot.slot_companions(bdf));
        for member in members {
            if !slots.contains(&member.bdf.slot()) && member.on_host_driver() {
                others.push(InUse {
                    bdf: member.bdf,
                    kind: member.kind(),
                    driver: member.driver.clone().unwrap_or_default(),
                });
            } else if !chosen.contains(&member.bdf) {
                queue.push(member.bdf);
            }
        }
        if !others.is_empty() {
            others.sort_by_key(|o| o.bdf);
            others.dedup();
            return Err(SelectError::Unrelated {
                group,
                requested: requested
                    .iter()
                    .copied()
                    .find(|r| r.slot() == bdf.slot())
                    .unwrap_or(bdf),
                others,
            });
        }
    }
    Ok(chosen)
}

fn group_members(snapshot: &Snapshot, group: u32) -> impl Iterator<Item = &PciDevice> {
    snapshot
        .devices
        .values()
        .filter(move |d| d.iommu_group == Some(group) && !d.is_bridge())
}

/// The functions of `bdf`'s IOMMU group that keep it from going to a VM: in another slot and in
/// use by the host.
pub fn in_the_way(snapshot: &Snapshot, bdf: Bdf, group: u32) -> Vec<&PciDevice> {
    group_members(snapshot, group)
        .filter(|member| member.bdf.slot() != bdf.slot() && member.on_host_driver())
        .collect()
}
