//! `pitcrew status`: what the host has, in words or JSON.

use crate::bdf::Bdf;
use crate::host::holders::{self, Holder};
use crate::host::keepoff::{self, Effect, KeptNode, NodeKind};
use crate::host::pci::PciDevice;
use crate::plan::{self, select};
use crate::snapshot::Snapshot;
use crate::vendor;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write};

#[derive(Debug, Serialize)]
/// What `pitcrew status` shows.
pub struct Status {
    /// Each GPU with the functions of its IOMMU group and their holders.
    pub gpus: Vec<Gpu>,
    /// The service manager (`systemd`, `openrc`); None when it is neither.
    pub init: Option<crate::host::init::Init>,
    /// The display manager and whether it runs.
    pub display_manager: Option<Unit>,
    /// Functions pitcrew has lent to VMs, with the driver each goes back to.
    pub lent: Vec<Lent>,
    /// The text console and the frame buffers.
    pub console: Console,
    /// The reasons of pitcrew's sleep inhibitors held now.
    pub sleep_inhibited: Vec<String>,
}

/// The text console drawn on frame buffers (fbcon) and what it can draw on.
#[derive(Debug, Serialize)]
pub struct Console {
    /// fbcon's vtconsole and whether it is bound; None while it is not registered.
    pub fbcon: Option<(String, bool)>,
    /// The registered frame buffers (`fb0`) and the device each belongs to.
    pub framebuffers: Vec<(String, Option<String>)>,
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
    /// Set when `pitcrew keep-off` keeps the desktop off this GPU.
    pub kept_off: Option<keepoff::State>,
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
    /// The sizes (bytes) the reattach puts its resized BARs back to, by BAR index.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub restores_bars: BTreeMap<usize, u64>,
    /// The reset methods the reattach puts back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restores_reset_method: Option<String>,
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
                    kept_off: s.keep_off.get(&gpu.bdf).cloned(),
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
                    restores_bars: lent.bars.clone(),
                    restores_reset_method: lent.reset_method.clone(),
                })
                .collect(),
            console: Console {
                fbcon: s
                    .console
                    .vtconsoles
                    .iter()
                    .find(|c| c.is_framebuffer())
                    .map(|c| (c.id.clone(), c.bound)),
                framebuffers: s
                    .console
                    .framebuffers
                    .iter()
                    .map(|fb| (fb.node.clone(), fb.device.clone()))
                    .collect(),
            },
            sleep_inhibited: s.inhibitors.keys().cloned().collect(),
            init: s.init,
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
                writeln!(f, "  held by {}", h.in_unit())?;
            }
            if let Some(kept) = &gpu.kept_off {
                write_kept_off(f, kept)?;
            }
        }
        match self.init {
            Some(init) => writeln!(f, "Service manager: {}", init.name())?,
            None => writeln!(
                f,
                "Service manager: none supported ({}): nothing can be lent here",
                crate::host::init::SUPPORTED
            )?,
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
            let mut restores: Vec<String> = lent
                .restores_bars
                .iter()
                .map(|(bar, size)| format!("BAR{bar} {}", crate::tuning::size_text(*size)))
                .collect();
            restores.extend(
                lent.restores_reset_method
                    .as_ref()
                    .map(|methods| format!("reset_method \"{methods}\"")),
            );
            let restores = if restores.is_empty() {
                String::new()
            } else {
                format!(", with {}", restores.join(", "))
            };
            writeln!(
                f,
                "Lent by pitcrew: {} to {} (returns to {}{restores})",
                lent.address,
                lent.vm.as_deref().unwrap_or("no VM"),
                lent.driver.as_deref().unwrap_or("its default driver")
            )?;
        }
        let fbs: Vec<String> = self
            .console
            .framebuffers
            .iter()
            .map(|(node, device)| format!("{node} on {}", device.as_deref().unwrap_or("?")))
            .collect();
        let fbcon = match &self.console.fbcon {
            Some((id, true)) => format!("{id} bound"),
            Some((id, false)) => format!("{id} unbound"),
            None => "not on a frame buffer".to_string(),
        };
        let fbs = if fbs.is_empty() {
            "none".to_string()
        } else {
            fbs.join(", ")
        };
        writeln!(f, "Text console: {fbcon} (frame buffers: {fbs})")?;
        for why in &self.sleep_inhibited {
            writeln!(f, "Sleep inhibited by pitcrew: {why}")?;
        }
        Ok(())
    }
}

/// Whether the keep-off rules hold for the card now, and what still has its sound card open.
fn write_kept_off(f: &mut fmt::Formatter<'_>, kept: &keepoff::State) -> fmt::Result {
    let drm = match kept.drm {
        Effect::InEffect => "the desktop leaves it alone",
        Effect::Pending => {
            "rule written, not in effect yet: the desktop lets go at the card's next lend or the \
             next boot"
        }
        Effect::NoDevice => "no DRM node now (lent or unbound): the rule applies when it is back",
    };
    writeln!(f, "  kept off the desktop ({}): {drm}", keepoff::RULES)?;
    let sound = match kept.sound {
        None => "left to the host (--keep-sound)",
        Some(Effect::InEffect) => "sound servers leave it alone",
        Some(Effect::Pending) => {
            "rule written, not in effect until the sound server restarts (next login)"
        }
        Some(Effect::NoDevice) if kept.entry.audio.is_empty() => "the card has no audio function",
        Some(Effect::NoDevice) => {
            "no sound card now (lent or unbound): the rule applies when it is back"
        }
    };
    writeln!(f, "  its sound: {sound}")?;
    for h in &kept.sound_holders {
        writeln!(f, "  sound held by {}", h.in_unit())?;
    }
    for node in &kept.nodes {
        write_kept_node(f, node)?;
    }
    let ddc: Vec<&Holder> = kept
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Ddc)
        .flat_map(|n| &n.holders)
        .filter(|h| keepoff::is_powerdevil(h))
        .collect();
    if let Some(h) = ddc.first() {
        writeln!(
            f,
            "  {} (pid {}) holds its DDC bus: {}",
            h.comm,
            h.pid,
            keepoff::powerdevil_fix(kept.entry.gpu, true)
        )?;
    }
    Ok(())
}

/// `/dev/dri/renderD129: kept off (seat-pitcrew)`, or what is still in the way, then who has it.
fn write_kept_node(f: &mut fmt::Formatter<'_>, node: &KeptNode) -> fmt::Result {
    let seat = if node.in_effect {
        format!("kept off ({})", keepoff::SEAT)
    } else {
        format!(
            "not yet: udev has it on {} (the rule applies at its next event)",
            node.seat.as_deref().unwrap_or("seat0")
        )
    };
    let acl = match node.acl_users.as_slice() {
        [] => String::new(),
        users => {
            let uids: Vec<String> = users.iter().map(|u| format!("uid {u}")).collect();
            format!("; its ACL still lets {} open it", uids.join(", "))
        }
    };
    writeln!(f, "  {}: {seat}{acl}", node.node)?;
    for h in &node.holders {
        writeln!(f, "    still held by {}", h.in_unit())?;
    }
    Ok(())
}
