//! What differs between GPU vendors: extra device nodes and helper daemons.
//! Drivers and their module stacks are read from the running kernel, so an unknown vendor still
//! works through the generic path.

use crate::host::Host;

pub struct Profile {
    pub name: &'static str,
    pub vendor: u16,
    /// Nodes every card of this vendor shares; their holders matter only when the modules go.
    pub shared_nodes: &'static [&'static str],
    /// Daemons that keep the driver busy; stopped before a detach. Named as their programs: the
    /// service manager names their services ([`crate::Snapshot::daemon_services`]).
    pub daemons: &'static [&'static str],
    /// Host drivers for this vendor's GPUs. Each lives in a module of the same name, which
    /// planning relies on: a daemon stays down while one of these modules is unloaded.
    pub drivers: &'static [&'static str],
}

pub const NVIDIA: Profile = Profile {
    name: "NVIDIA",
    vendor: 0x10de,
    shared_nodes: &[
        "/dev/nvidiactl",
        "/dev/nvidia-modeset",
        "/dev/nvidia-uvm",
        "/dev/nvidia-uvm-tools",
    ],
    daemons: &["nvidia-persistenced", "nvidia-powerd"],
    drivers: &["nvidia", "nouveau"],
};

pub const AMD: Profile = Profile {
    name: "AMD",
    vendor: 0x1002,
    shared_nodes: &["/dev/kfd"],
    daemons: &[],
    drivers: &["amdgpu", "radeon"],
};

pub const INTEL: Profile = Profile {
    name: "Intel",
    vendor: 0x8086,
    shared_nodes: &[],
    daemons: &[],
    drivers: &["i915", "xe"],
};

const GENERIC: Profile = Profile {
    name: "",
    vendor: 0,
    shared_nodes: &[],
    daemons: &[],
    drivers: &[],
};

pub const PROFILES: [&Profile; 3] = [&NVIDIA, &AMD, &INTEL];

pub fn profile(vendor: u16) -> &'static Profile {
    PROFILES
        .into_iter()
        .find(|p| p.vendor == vendor)
        .unwrap_or(&GENERIC)
}

/// The vendor's name for status output, or the hex id.
pub fn vendor_name(vendor: u16) -> String {
    let profile = profile(vendor);
    if profile.name.is_empty() {
        format!("vendor {vendor:04x}")
    } else {
        profile.name.to_string()
    }
}

/// The card's own NVIDIA node (/dev/nvidiaN), from the driver's per-GPU information file.
pub fn nvidia_node(host: &Host, bdf: crate::bdf::Bdf) -> Option<String> {
    let info = host
        .read(format!("/proc/driver/nvidia/gpus/{bdf}/information"))
        .ok()?;
    let minor = info
        .lines()
        .find_map(|line| line.strip_prefix("Device Minor:"))?
        .trim()
        .parse::<u32>()
        .ok()?;
    Some(format!("/dev/nvidia{minor}"))
}
