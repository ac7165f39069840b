//! One GPU: can it go to a VM, what goes with it, what a lend would do to the host, and what
//! the guest will meet (reset, BARs, NVIDIA's daemons and module options).

use super::Check;
use crate::bdf::Bdf;
use crate::host::pci::PciDevice;
use crate::host::Host;
use crate::plan::{self, select, Direction, PlanError, Step};
use crate::policy::Policy;
use crate::snapshot::Snapshot;
use crate::vendor;

pub(super) fn checks(host: &Host, s: &Snapshot, bdf: Bdf, policy: &Policy) -> Vec<Check> {
    let gpu = &s.devices[&bdf];
    let name = |what: &str| format!("gpu {bdf} {what}");
    let ask = plan::Ask {
        direction: Direction::Detach,
        devices: &[bdf],
        owner: None,
        lent_to: None,
        force: false,
    };
    // What a lend does to the host; whether the card can follow the config's BAR size is the
    // bars line's business.
    let untuned = Policy {
        tuning: Default::default(),
        ..policy.clone()
    };
    let planned = plan::plan(s, &ask, &untuned);
    let lend = planned.as_ref().ok();
    let mut checks = vec![
        group(s, gpu, name("group")),
        companions(s, gpu, name("slot")),
        holders(s, gpu, &planned, name("lend")),
        super::sound::check(host, s, gpu, name("sound")),
    ];
    checks.extend(super::keep_off::checks(s, gpu, lend, &name("keep-off")));
    checks.extend(super::keep_off::ddc(s, gpu, name("ddc")));
    // Every function the lend takes: each one the guest resets, and each one's BARs it maps.
    let functions = lend
        .map(|p| p.functions.iter().copied().collect())
        .unwrap_or_else(|| vec![bdf]);
    for function in &functions {
        let d = &s.devices[function];
        let tuning = policy.tuning.of(*function);
        checks.push(super::reset::check(
            s,
            d,
            tuning,
            name(&format!("reset {function}")),
        ));
        checks.push(super::bars::check(
            host,
            d,
            tuning,
            name(&format!("bars {function}")),
        ));
    }
    if gpu.vendor == vendor::NVIDIA.vendor {
        checks.extend(nvidia(host, s, name("nvidia")));
    }
    checks
}

fn describe(d: &PciDevice) -> String {
    format!(
        "{} ({}, {})",
        d.bdf,
        d.kind(),
        d.driver.as_deref().unwrap_or("no driver")
    )
}

fn group(s: &Snapshot, gpu: &PciDevice, name: String) -> Check {
    let Some(group) = gpu.iommu_group else {
        return Check::fail(
            name,
            "in no IOMMU group, so no VM can have it",
            "turn the IOMMU on (see the iommu line) and reboot",
        );
    };
    let blockers = select::in_the_way(s, gpu.bdf, group);
    if !blockers.is_empty() {
        let list: Vec<String> = blockers.iter().map(|d| describe(d)).collect();
        return Check::fail(
            name,
            format!(
                "IOMMU group {group} also holds {}, in use by the host",
                list.join(", ")
            ),
            "move the card to a slot with its own group (usually the first, CPU-attached one) or give those devices to the VM too",
        );
    }
    let members: Vec<String> = s
        .devices
        .values()
        .filter(|d| d.iommu_group == Some(group) && !d.is_bridge())
        .map(|d| d.bdf.to_string())
        .collect();
    Check::ok(
        name,
        format!(
            "IOMMU group {group} is viable: {} go together",
            members.join(", ")
        ),
    )
}

/// The other functions in the card's slot (HDMI audio, USB-C, UCSI): they go with it only when
/// they share its group.
fn companions(s: &Snapshot, gpu: &PciDevice, name: String) -> Check {
    let others: Vec<&PciDevice> = s
        .devices
        .values()
        .filter(|d| d.bdf.slot() == gpu.bdf.slot() && d.bdf != gpu.bdf)
        .collect();
    if others.is_empty() {
        return Check::ok(name, "no other functions in the slot");
    }
    let apart: Vec<String> = others
        .iter()
        .filter(|d| d.iommu_group != gpu.iommu_group)
        .map(|d| format!("{} (group {})", describe(d), group_text(d.iommu_group)))
        .collect();
    let list: Vec<String> = others.iter().map(|d| describe(d)).collect();
    if apart.is_empty() {
        return Check::ok(name, format!("{} move with it", list.join(", ")));
    }
    Check::warn(
        name,
        format!(
            "{} sit in other IOMMU groups than the GPU",
            apart.join(", ")
        ),
        "list them under `devices` for the VM as well, or the guest gets the card without them",
    )
}

fn group_text(group: Option<u32>) -> String {
    group.map_or("none".into(), |g| g.to_string())
}

/// Who holds the card now and what a lend would do to them, from the plan a detach would run.
fn holders(
    s: &Snapshot,
    gpu: &PciDevice,
    lend: &Result<plan::Plan, PlanError>,
    name: String,
) -> Check {
    if gpu.on_vfio() {
        let owner = s
            .record
            .lent
            .get(&gpu.bdf)
            .and_then(|l| l.owner.as_deref())
            .map_or(String::new(), |vm| format!(" (lent to VM '{vm}')"));
        return Check::ok(name, format!("on vfio-pci now{owner}"));
    }
    let lend = match lend {
        Ok(lend) => lend,
        Err(PlanError::DesktopRenders { holders, fix, .. }) => {
            return Check::fail(
                name,
                format!(
                    "{holders}: the desktop renders with the card without drawing on it and \
                     cannot be asked to let go, so a lend fails rather than end the session"
                ),
                fix.clone(),
            )
        }
        Err(PlanError::DesktopKept { holders, gpu }) => {
            return Check::fail(
                name,
                format!(
                    "{holders}: the desktop holds the card and the config says \
                     `display_manager = \"never\"`, so a lend fails rather than end the session"
                ),
                format!(
                    "log out before the VM starts, or run `pitcrew keep-off {gpu}` and log in \
                     again, or set `display_manager = \"auto\"` for the VM"
                ),
            )
        }
        Err(_) => return Check::fail(name, "a lend would be refused", "fix the group line first"),
    };
    let mut effects = Vec::new();
    let mut unloads = Vec::new();
    let mut disruptive = false;
    for step in &lend.steps {
        match step {
            Step::StopUnit { unit, .. } if s.display_manager.as_deref() == Some(unit) => {
                disruptive = true;
                effects.push(format!(
                    "the display manager {unit} will be stopped: the sessions on it end"
                ));
            }
            Step::StopUnit { unit, .. } => {
                effects.push(format!("{unit} will be stopped until the card is back"))
            }
            Step::EndProcess { pid, comm, .. } => {
                disruptive = true;
                effects.push(format!(
                    "{comm} (pid {pid}) will be ended (SIGTERM, then SIGKILL)"
                ));
            }
            Step::UnloadModule { module, .. } => unloads.push(module.as_str()),
            _ => {}
        }
    }
    match unloads.as_slice() {
        [] => {}
        [one] => effects.push(format!("module {one} will be unloaded")),
        many => effects.push(format!("modules {} will be unloaded", many.join(", "))),
    }
    if effects.is_empty() {
        return Check::ok(name, "nothing holds it: a lend only rebinds its functions");
    }
    let finding = effects.join("; ");
    if disruptive {
        Check::warn(
            name,
            finding,
            format!(
                "save work and close those programs before starting the VM; `pitcrew detach {} --dry-run` shows every step",
                gpu.bdf
            ),
        )
    } else {
        Check::ok(name, finding)
    }
}

/// NVIDIA: the persistence daemon keeps the driver open; nvidia_drm's fbdev puts the kernel
/// console on the card, which then keeps nvidia_drm in use.
fn nvidia(host: &Host, s: &Snapshot, name: String) -> Vec<Check> {
    let mut checks = Vec::new();
    let daemon = s.daemon_services(&vendor::NVIDIA).swap_remove(0);
    if s.running_units.contains(&daemon) {
        checks.push(Check::warn(
            format!("{name} persistenced"),
            format!("{daemon} runs and holds the driver open: each lend stops it"),
            format!(
                "unless CUDA jobs need persistence mode, {}",
                s.init
                    .map_or_else(|| "disable it".into(), |init| init.disable_now(&daemon))
            ),
        ));
    } else {
        checks.push(Check::ok(
            format!("{name} persistenced"),
            format!("{daemon} not running"),
        ));
    }
    let param = |p: &str| {
        host.read(format!("/sys/module/nvidia_drm/parameters/{p}"))
            .ok()
    };
    let Some(modeset) = param("modeset") else {
        checks.push(Check::ok(format!("{name} drm"), "nvidia_drm not loaded"));
        return checks;
    };
    let fbdev = param("fbdev");
    let finding = format!(
        "nvidia_drm modeset={modeset}{}",
        fbdev
            .as_deref()
            .map_or(String::new(), |f| format!(" fbdev={f}"))
    );
    if fbdev.as_deref() == Some("Y") {
        checks.push(Check::warn(
            format!("{name} drm"),
            format!("{finding}: the kernel console sits on the card and keeps nvidia_drm in use"),
            "add `options nvidia-drm fbdev=0` to a file in /etc/modprobe.d/, run update-initramfs -u and reboot",
        ));
    } else {
        checks.push(Check::ok(format!("{name} drm"), finding));
    }
    checks
}
