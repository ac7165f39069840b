//! Which functions a request moves: the given addresses widened to their IOMMU groups.

use crate::bdf::Bdf;
use crate::host::pci::PciDevice;
use crate::snapshot::Snapshot;
use std::collections::BTreeSet;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
/// Why the requested devices cannot be handed over; nothing was changed.
pub enum SelectError {
    #[error("no PCI device {0}: `pitcrew status` or `lspci -D` lists the addresses on this host")]
    /// No such PCI device.
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
    #[error(
        "IOMMU group {group} of {requested} also holds {other} ({kind}, driver {driver}), which is \
         in use and not part of this card; a VM can only take the whole group. Move the card to \
         another slot, or unbind {other} yourself if it may go to the VM too"
    )]
    /// The group holds a device in use that is not part of the card.
    Unrelated {
        /// The IOMMU group.
        group: u32,
        /// The device asked for.
        requested: Bdf,
        /// The unrelated device.
        other: Bdf,
        /// What kind of device it is.
        kind: &'static str,
        /// The driver it is bound to.
        driver: String,
    },
    #[error("no device given")]
    /// No device was given.
    Empty,
}

/// Widens `requested` to every non-bridge function of their IOMMU groups, refusing groups that
/// would take an unrelated device that the host is using.
pub fn select(snapshot: &Snapshot, requested: &[Bdf]) -> Result<BTreeSet<Bdf>, SelectError> {
    if requested.is_empty() {
        return Err(SelectError::Empty);
    }
    let mut chosen = BTreeSet::new();
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
        let group = device.iommu_group.ok_or(SelectError::NoGroup(bdf))?;
        if let Some(member) = in_the_way(snapshot, bdf, group).first() {
            return Err(SelectError::Unrelated {
                group,
                requested: bdf,
                other: member.bdf,
                kind: member.kind(),
                driver: member.driver.clone().unwrap_or_default(),
            });
        }
        chosen.extend(group_members(snapshot, group).map(|member| member.bdf));
    }
    Ok(chosen)
}

/// The functions of `bdf`'s IOMMU group that keep it from going to a VM: in another slot and in
/// use by the host.
pub fn in_the_way(snapshot: &Snapshot, bdf: Bdf, group: u32) -> Vec<&PciDevice> {
    group_members(snapshot, group)
        .filter(|member| member.bdf.slot() != bdf.slot() && member.on_host_driver())
        .collect()
}

fn group_members(snapshot: &Snapshot, group: u32) -> impl Iterator<Item = &PciDevice> {
    snapshot
        .devices
        .values()
        .filter(move |d| d.iommu_group == Some(group) && !d.is_bridge())
}
