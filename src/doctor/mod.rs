//! `pitcrew doctor`: what would stop a VM from getting its GPU, found before the VM is started.
//!
//! Reads only, through the host's root: the kernel (IOMMU, vfio-pci), each GPU a VM would get
//! (its group, slot, holders and what a lend would do to them, reset and BARs, NVIDIA
//! specifics) and the setup (hook, libvirt daemon, unit, config, domain definitions). Each
//! finding is one line with a level and, unless it is ok, the fix in one sentence.

mod bars;
mod gpu;
mod keep_off;
mod kernel;
mod openrc;
mod reset;
mod setup;
mod sound;
mod vms;

use crate::bdf::Bdf;
use crate::host::Host;
use crate::snapshot::Snapshot;
use crate::vm::VmName;
use serde::Serialize;
use std::fmt;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Nothing to do.
    Ok,
    /// Works, at a cost the user may want to avoid.
    Warn,
    /// A VM start would fail, or not lend the GPU.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked: `iommu`, `gpu 0000:01:00.0 group`, `vm win11`...
    pub name: String,
    /// How it came out.
    pub level: Level,
    /// What was found, with the paths, addresses and units involved.
    pub finding: String,
    /// One sentence saying what to do; None when nothing needs doing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A check that needs nothing done.
    pub fn ok(name: impl Into<String>, finding: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            level: Level::Ok,
            finding: finding.into(),
            fix: None,
        }
    }

    /// A check that works at a cost, and how to avoid it.
    pub fn warn(
        name: impl Into<String>,
        finding: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::with_fix(Level::Warn, name, finding, fix)
    }

    /// A check that fails, and how to fix it.
    pub fn fail(
        name: impl Into<String>,
        finding: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::with_fix(Level::Fail, name, finding, fix)
    }

    fn with_fix(
        level: Level,
        name: impl Into<String>,
        finding: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            level,
            fix: Some(fix.into()),
            ..Check::ok(name, finding)
        }
    }
}

/// Every check, in the order they ran: kernel, GPUs, setup, VMs.
#[derive(Debug, Serialize)]
pub struct Report {
    /// One per line of the text report.
    pub checks: Vec<Check>,
}

impl Report {
    /// How many checks came out at `level`.
    pub fn count(&self, level: Level) -> usize {
        self.checks.iter().filter(|c| c.level == level).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            let level = match check.level {
                Level::Ok => "ok",
                Level::Warn => "warn",
                Level::Fail => "fail",
            };
            write!(f, "{level:<5} {}: {}", check.name, check.finding)?;
            match &check.fix {
                Some(fix) => writeln!(f, " -> {fix}")?,
                None => writeln!(f)?,
            }
        }
        writeln!(
            f,
            "{} ok, {} warn, {} fail",
            self.count(Level::Ok),
            self.count(Level::Warn),
            self.count(Level::Fail)
        )
    }
}

/// Runs every check; with `vm`, the GPU and VM checks cover that VM only.
pub fn run(host: &Host, vm: Option<&VmName>) -> Report {
    let mut checks = vec![kernel::iommu(host)];
    if !host.is_staged() && !rustix::process::geteuid().is_root() {
        checks.push(Check::warn(
            "root",
            "not run as root: other users' processes holding a card, and the journal, are not seen",
            "run `sudo pitcrew doctor`",
        ));
    }
    let mut setup_checks = Vec::new();
    let config = vms::config(host, &mut setup_checks);
    let vms = vms::vms(host, config.as_ref(), vm, &mut setup_checks);
    match Snapshot::read(host) {
        Ok(snapshot) => {
            checks.push(kernel::vfio(host, &snapshot));
            let gpus = targets(&snapshot, &vms, vm.is_some());
            if gpus.is_empty() && vm.is_none() {
                checks.push(Check::warn(
                    "gpu",
                    "no PCI display controller (class 0x03) found",
                    "check with `lspci -D` that the card is seen and its slot enabled in the firmware",
                ));
            }
            for bdf in gpus {
                let policy = vms
                    .iter()
                    .find(|v| v.gpus.contains(&bdf))
                    .and_then(|v| config.as_ref().map(|c| c.for_vm(&v.name).policy.clone()))
                    .or_else(|| config.as_ref().map(|c| c.defaults.policy.clone()))
                    .unwrap_or_default();
                checks.extend(gpu::checks(host, &snapshot, bdf, &policy));
            }
        }
        Err(e) => checks.push(Check::fail(
            "host",
            e.to_string(),
            "run doctor on the host itself, or give --root a complete tree",
        )),
    }
    checks.extend(setup::integration(host));
    checks.extend(setup_checks);
    Report { checks }
}

/// A VM pitcrew manages, with the GPUs it would get (from the config, else from its XML).
pub struct ManagedVm {
    pub name: VmName,
    pub gpus: Vec<Bdf>,
}

/// The GPUs to check: the display controllers among the managed VMs' devices, or, when they
/// have none (and no VM was asked for), every display controller of the host.
fn targets(snapshot: &Snapshot, vms: &[ManagedVm], asked_for_vm: bool) -> Vec<Bdf> {
    let mut gpus: Vec<Bdf> = vms
        .iter()
        .flat_map(|v| v.gpus.iter().copied())
        .filter(|bdf| snapshot.devices.get(bdf).is_some_and(|d| d.is_gpu()))
        .collect();
    if gpus.is_empty() && !asked_for_vm {
        gpus = snapshot
            .devices
            .values()
            .filter(|d| d.is_gpu())
            .map(|d| d.bdf)
            .collect();
    }
    gpus.sort();
    gpus.dedup();
    gpus
}
