//! `pitcrew status`: what the host has, in words or JSON.

use crate::bdf::Bdf;
use crate::host::holders::{self, Holder};
use crate::host::pci::PciDevice;
use crate::plan::{self, select};
use crate::snapshot::Snapshot;
use crate::vendor;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::{self, Write};

#[derive(Debug, Serialize)]
/// What `pitcrew status` shows.
pub struct Status {
    /// Each GPU with the functions of its IOMMU group and their holders.
    pub gpus: Vec<Gpu>,
    /// The display manager and whether it runs.
    pub display_manager: Option<Unit>,
    /// Functions pitcrew has lent to VMs, with the driver each goes back to.
    pub lent: Vec<Lent>,
}

#[derive(Debug, Serialize)]
pub struct Gpu {
    pub address: Bdf,
    pub vendor: String,
    pub iommu_group: Option<u32>,
    pub boot_vga: bool,
    /// The functions a detach moves: its IOMMU group and the rest of its PCI slot.
    pub functions: Vec<PciDevice>,
    /// Every process holding a node a detach would need closed.
    pub holders: Vec<Holder>,
}

#[derive(Debug, Serialize)]
pub struct Unit {
    pub name: String,
    pub running: bool,
}

#[derive(Debug, Serialize)]
pub struct Lent {
    pub address: Bdf,
    pub vm: Option<String>,
    pub driver: Option<String>,
}

impl Status {
    /// The status of the host in `s`.
    pub fn of(s: &Snapshot) -> Status {
        let gpus = s
            .devices
            .values()
            .filter(|d| d.is_gpu())
            .map(|gpu| {
                // What a detach of this GPU would take; a group it cannot take (the host uses
                // part of it) still shows its slot and group.
                let functions: BTreeSet<Bdf> = select::select(s, &[gpu.bdf]).unwrap_or_else(|_| {
                    s.devices
                        .values()
                        .filter(|d| {
                            !d.is_bridge()
                                && (d.same_slot(gpu.bdf)
                                    || (gpu.iommu_group.is_some()
                                        && d.iommu_group == gpu.iommu_group))
                        })
                        .map(|d| d.bdf)
                        .collect()
                });
                let mut nodes = plan::watched_nodes(s, &functions);
                nodes.extend(functions.iter().flat_map(|bdf| s.own_nodes(*bdf)));
                Gpu {
                    address: gpu.bdf,
                    vendor: vendor::vendor_name(gpu.vendor),
                    iommu_group: gpu.iommu_group,
                    boot_vga: gpu.boot_vga,
                    holders: holders::holding(&s.holders, &nodes),
                    functions: functions.iter().map(|bdf| s.devices[bdf].clone()).collect(),
                }
            })
            .collect();
        Status {
            gpus,
            display_manager: s.display_manager.as_ref().map(|name| Unit {
                name: name.clone(),
                running: s.running_units.contains(name),
            }),
            lent: s
                .record
                .lent
                .iter()
                .map(|(bdf, lent)| Lent {
                    address: *bdf,
                    vm: lent.owner.clone(),
                    driver: lent.driver.clone(),
                })
                .collect(),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.gpus.is_empty() {
            writeln!(
                f,
                "No GPU found: no PCI display or 3D controller (class 0x03) under /sys/bus/pci/devices."
            )?;
        }
        for gpu in &self.gpus {
            let group = gpu
                .iommu_group
                .map_or("no IOMMU group".to_string(), |g| format!("IOMMU group {g}"));
            let boot = if gpu.boot_vga { ", boot VGA" } else { "" };
            writeln!(f, "GPU {} ({}), {group}{boot}", gpu.address, gpu.vendor)?;
            for func in &gpu.functions {
                let mut line = format!(
                    "  {}  {:04x}:{:04x}  {:<10} {}",
                    func.bdf,
                    func.vendor,
                    func.device,
                    func.kind(),
                    func.driver.as_deref().unwrap_or("(no driver)")
                );
                if let Some(pid) = func.stuck_helper {
                    let _ = write!(line, "  [stuck in the kernel: write helper pid {pid}]");
                }
                if let Some(over) = &func.driver_override {
                    let _ = write!(line, "  [driver_override={over}]");
                }
                if let Some(group) = func.iommu_group.filter(|g| Some(*g) != gpu.iommu_group) {
                    let _ = write!(line, "  [IOMMU group {group}]");
                }
                if !func.nodes.is_empty() {
                    let nodes: Vec<&str> = func.nodes.iter().map(String::as_str).collect();
                    let _ = write!(line, "  {}", nodes.join(" "));
                }
                writeln!(f, "{line}")?;
            }
            for h in &gpu.holders {
                let nodes: Vec<&str> = h.nodes.iter().map(String::as_str).collect();
                writeln!(
                    f,
                    "  held by pid {} ({}) in {}: {}",
                    h.pid,
                    h.comm,
                    h.unit.as_deref().unwrap_or("no unit"),
                    nodes.join(", ")
                )?;
            }
        }
        match &self.display_manager {
            Some(dm) => writeln!(
                f,
                "Display manager: {} ({})",
                dm.name,
                if dm.running { "running" } else { "stopped" }
            )?,
            None => writeln!(f, "Display manager: none")?,
        }
        if self.lent.is_empty() {
            writeln!(f, "Lent by pitcrew: nothing")?;
        }
        for lent in &self.lent {
            writeln!(
                f,
                "Lent by pitcrew: {} to {} (returns to {})",
                lent.address,
                lent.vm.as_deref().unwrap_or("no VM"),
                lent.driver.as_deref().unwrap_or("its default driver")
            )?;
        }
        Ok(())
    }
}
