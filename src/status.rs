//! `pitcrew status`: what the host has, in words or JSON.

use crate::bdf::Bdf;
use crate::host::holders::Holder;
use crate::host::pci::PciDevice;
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
    pub functions: Vec<PciDevice>,
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
            .filter(|d| d.is_display())
            .map(|gpu| {
                let functions: Vec<PciDevice> = s
                    .devices
                    .values()
                    .filter(|d| match gpu.iommu_group {
                        Some(group) => d.iommu_group == Some(group) && !d.is_bridge(),
                        None => d.bdf == gpu.bdf,
                    })
                    .cloned()
                    .collect();
                let nodes: BTreeSet<String> =
                    functions.iter().flat_map(|f| s.own_nodes(f.bdf)).collect();
                Gpu {
                    address: gpu.bdf,
                    vendor: vendor::vendor_name(gpu.vendor),
                    iommu_group: gpu.iommu_group,
                    boot_vga: gpu.boot_vga,
                    holders: s
                        .holders
                        .iter()
                        .filter_map(|h| {
                            let mine: BTreeSet<String> =
                                h.nodes.intersection(&nodes).cloned().collect();
                            (!mine.is_empty()).then(|| Holder {
                                nodes: mine,
                                ..h.clone()
                            })
                        })
                        .collect(),
                    functions,
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
                "No GPU found: no PCI display controller (class 0x03) under /sys/bus/pci/devices."
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
                if let Some(over) = &func.driver_override {
                    let _ = write!(line, "  [driver_override={over}]");
                }
                if !func.drm_nodes.is_empty() {
                    let _ = write!(line, "  {}", func.drm_nodes.join(" "));
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
