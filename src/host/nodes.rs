//! The device nodes that belong to one PCI function, found through sysfs: whatever a process can
//! hold open that makes the kernel wait when the function leaves its driver.

use super::pci;
use super::Host;
use crate::bdf::Bdf;
use std::collections::{BTreeMap, BTreeSet};

/// Node paths worth looking for in /proc/*/fd: everything a GPU or its companions expose.
const TRACKED: &[&str] = &[
    "/dev/dri/",
    "/dev/nvidia",
    "/dev/kfd",
    "/dev/snd/",
    "/dev/i2c-",
    "/dev/vfio/",
    // fbdev: a card's own frame buffer (DRM fbdev emulation) or the firmware's on it.
    "/dev/fb",
];

pub fn is_tracked(path: &str) -> bool {
    TRACKED.iter().any(|prefix| path.starts_with(prefix))
}

/// The tracked nodes under /dev now, by path: what a mapping is matched against, having no fd
/// that names its node.
pub fn present(host: &Host) -> Vec<String> {
    let mut starts: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for prefix in TRACKED {
        if let Some((dir, start)) = prefix.rsplit_once('/') {
            starts.entry(dir).or_default().push(start);
        }
    }
    let mut found = Vec::new();
    for (dir, starts) in starts {
        for entry in std::fs::read_dir(host.path(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            // Subdirectories and udev's links (/dev/dri/by-path/...) are no node of their own.
            if entry
                .file_type()
                .is_ok_and(|kind| kind.is_dir() || kind.is_symlink())
            {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if starts.iter().any(|start| name.starts_with(start)) {
                found.push(format!("{dir}/{name}"));
            }
        }
    }
    found
}

/// How deep under a function's sysfs directory its I2C buses can sit: directly (DDC buses of
/// i915, amdgpu, nouveau) or under a DRM connector (DP AUX channels: drm/card1/card1-DP-1/i2c-7).
const I2C_DEPTH: usize = 4;

/// Every node of `bdf` that exists now: DRM card and render minors, the nodes of its sound cards
/// (controlC1, pcmC1D3p, hwC1D0...), the i2c-dev nodes of its own I2C buses, and its IOMMU
/// group's /dev/vfio node while it sits on vfio-pci.
pub fn of_function(host: &Host, bdf: Bdf, on_vfio: bool, group: Option<u32>) -> BTreeSet<String> {
    let dir = pci::device_path(bdf, "");
    let dir = dir.trim_end_matches('/');
    let mut nodes: BTreeSet<String> = entries(host, &format!("{dir}/drm"))
        .into_iter()
        .filter(|name| name.starts_with("card") || name.starts_with("renderD"))
        .map(|name| format!("/dev/dri/{name}"))
        .collect();
    for card in entries(host, &format!("{dir}/sound")) {
        if !card.starts_with("card") {
            continue;
        }
        // Each child with a `dev` attribute is a character device udev names /dev/snd/<child>.
        for child in entries(host, &format!("{dir}/sound/{card}")) {
            if host
                .path(format!("{dir}/sound/{card}/{child}/dev"))
                .exists()
            {
                nodes.insert(format!("/dev/snd/{child}"));
            }
        }
    }
    i2c_buses(host, dir, I2C_DEPTH, &mut nodes);
    if let (true, Some(group)) = (on_vfio, group) {
        nodes.insert(format!("/dev/vfio/{group}"));
    }
    nodes
}

/// i2c-N directories below `dir` that have an i2c-dev interface (`i2c-N/i2c-dev/i2c-N`).
/// Symlinks are not followed: sysfs links lead back up the tree (driver, subsystem, firmware).
fn i2c_buses(host: &Host, dir: &str, depth: usize, nodes: &mut BTreeSet<String>) {
    // The directory listing says which entries are directories (no stat of each of the dozens
    // of attributes a function has: this runs before every unbind).
    let subdirs = std::fs::read_dir(host.path(dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned());
    for name in subdirs {
        let path = format!("{dir}/{name}");
        if name.starts_with("i2c-") {
            if host.path(format!("{path}/i2c-dev/{name}")).exists() {
                nodes.insert(format!("/dev/{name}"));
            }
        } else if depth > 1 && (name == "drm" || name.starts_with("card")) {
            i2c_buses(host, &path, depth - 1, nodes);
        }
    }
}

fn entries(host: &Host, dir: &str) -> Vec<String> {
    std::fs::read_dir(host.path(dir))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}
