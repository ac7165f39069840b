//! The kernel's side: the IOMMU is on and vfio-pci can be had.

use super::Check;
use crate::host::modules;
use crate::host::Host;
use crate::snapshot::Snapshot;
use crate::untrusted;

/// modules.dep and modules.builtin list a kernel's modules: a few MiB at most.
const MODULE_LIST_LIMIT: u64 = 64 * 1024 * 1024;

const GROUPS: &str = "/sys/kernel/iommu_groups";

/// IOMMU groups exist; if not, how to turn it on for this CPU's vendor.
pub(super) fn iommu(host: &Host) -> Check {
    let groups = std::fs::read_dir(host.path(GROUPS))
        .map(|d| d.flatten().count())
        .unwrap_or(0);
    let cmdline = host.read("/proc/cmdline").unwrap_or_default();
    let has = |word: &str| cmdline.split_whitespace().any(|w| w == word);
    if groups > 0 {
        let pt = if has("iommu=pt") { ", iommu=pt" } else { "" };
        return Check::ok("iommu", format!("on: {groups} IOMMU groups{pt}"));
    }
    let finding = format!("off: no IOMMU groups under {GROUPS}");
    let grub = "(GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub) and reboot";
    let fix = match cpu_vendor(host).as_deref() {
        Some("GenuineIntel") if has("intel_iommu=on") => {
            "intel_iommu=on is already on the kernel command line: enable VT-d in the firmware setup and reboot".to_string()
        }
        Some("GenuineIntel") => format!(
            "enable VT-d in the firmware setup and add intel_iommu=on to the kernel command line {grub}"
        ),
        Some("AuthenticAMD") if has("amd_iommu=off") || has("iommu=off") => format!(
            "remove amd_iommu=off / iommu=off from the kernel command line {grub}"
        ),
        Some("AuthenticAMD") => "enable IOMMU (AMD-Vi) and SVM in the firmware setup and reboot; the kernel turns it on by itself on AMD".to_string(),
        _ => format!(
            "enable the IOMMU in the firmware setup and on the kernel command line (intel_iommu=on or amd_iommu=on) {grub}"
        ),
    };
    Check::fail("iommu", finding, fix)
}

fn cpu_vendor(host: &Host) -> Option<String> {
    host.read("/proc/cpuinfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("vendor_id"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_string())
}

/// vfio-pci registered, built in, or a module the running kernel can load.
pub(super) fn vfio(host: &Host, snapshot: &Snapshot) -> Check {
    const NAME: &str = "vfio-pci";
    if snapshot.vfio_available() {
        return Check::ok(NAME, "loaded");
    }
    if modules::is_builtin(host, "vfio_pci") {
        return Check::ok(NAME, "built into the kernel");
    }
    let Ok(release) = host.read("/proc/sys/kernel/osrelease") else {
        return Check::fail(
            NAME,
            "neither loaded nor built in, and the kernel's release (/proc/sys/kernel/osrelease) is unreadable",
            "run doctor on the host itself, or give --root a tree with /proc",
        );
    };
    let listed = |file: &str| {
        untrusted::read_text(
            &host.path(format!("/lib/modules/{release}/{file}")),
            MODULE_LIST_LIMIT,
        )
        .is_ok_and(|text| text.lines().any(names_vfio_pci))
    };
    if listed("modules.builtin") {
        return Check::ok(NAME, "built into the kernel");
    }
    if listed("modules.dep") {
        return Check::ok(
            NAME,
            format!("module available for {release}; the first lend loads it"),
        );
    }
    Check::fail(
        NAME,
        format!("neither loaded nor built in, and /lib/modules/{release} has no vfio-pci module"),
        "install the running kernel's full module set (linux-modules-extra on Ubuntu) or build it with CONFIG_VFIO_PCI",
    )
}

/// A modules.dep / modules.builtin line for vfio-pci: `kernel/drivers/vfio/pci/vfio-pci.ko[.xz]: ...`.
fn names_vfio_pci(line: &str) -> bool {
    let path = line.split(':').next().unwrap_or_default();
    let file = path.rsplit('/').next().unwrap_or_default();
    file.split(".ko")
        .next()
        .is_some_and(|stem| modules::canonical(stem) == "vfio_pci" && file.contains(".ko"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn recognises_vfio_pci_in_module_lists() {
        for line in [
            "kernel/drivers/vfio/pci/vfio-pci.ko.xz: kernel/drivers/vfio/pci/vfio-pci-core.ko.xz",
            "kernel/drivers/vfio/pci/vfio-pci.ko",
            "kernel/drivers/vfio/pci/vfio_pci.ko.zst:",
        ] {
            assert!(super::names_vfio_pci(line), "{line}");
        }
        for line in [
            "kernel/drivers/vfio/pci/vfio-pci-core.ko.xz: kernel/drivers/vfio/vfio.ko.xz",
            "kernel/drivers/vfio/vfio.ko:",
            "",
        ] {
            assert!(!super::names_vfio_pci(line), "{line}");
        }
    }
}
