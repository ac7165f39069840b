//! The simulated kernel's state; the tree under the root is rendered from it after every change.

use std::collections::{BTreeMap, BTreeSet};

use crate::builder::{Builder, DeviceSpec, MapSpec, ModuleSpec, ProcessTemplate, UnitSpec};
use crate::console::{Consoles, FirmwareFb};

pub(crate) struct Device {
    pub spec: DeviceSpec,
    pub driver: Option<String>,
    pub driver_override: Option<String>,
    /// BAR index, address, size now: as built, until a resize.
    pub bars: Vec<(usize, Option<u64>, u64)>,
    /// `reset_method` now (None: no file).
    pub reset_method: Option<String>,
}

pub(crate) struct Module {
    pub spec: ModuleSpec,
    pub loaded: bool,
    /// Load order: /proc/modules lists the newest first.
    pub seq: u64,
}

pub(crate) struct Fd {
    pub target: String,
    /// The module whose node this is, fixed at open: an open file pins its module even after
    /// the node disappears.
    pub owner: Option<String>,
}

pub(crate) struct Proc {
    pub pid: u32,
    pub comm: String,
    pub cmdline: Vec<String>,
    pub cgroup: String,
    pub fds: Vec<Fd>,
    /// The nodes it has mapped.
    pub mapped: Vec<Fd>,
    /// Its other mappings, as built.
    pub other_maps: Vec<MapSpec>,
    pub alive: bool,
    pub ignore_term: bool,
    /// Seconds after boot.
    pub started: u64,
}

impl Proc {
    /// Every node it holds, open or mapped.
    pub fn holds(&self) -> impl Iterator<Item = &Fd> {
        self.fds.iter().chain(&self.mapped)
    }
}

pub(crate) struct Unit {
    pub spec: UnitSpec,
    pub running: bool,
    /// When `systemctl reload` succeeded on it, as the journal's "Reloaded" lines show.
    pub reloads: Vec<std::time::SystemTime>,
}

pub(crate) struct Model {
    pub devices: BTreeMap<String, Device>,
    pub modules: BTreeMap<String, Module>,
    pub processes: BTreeMap<u32, Proc>,
    pub units: BTreeMap<String, Unit>,
    pub display_manager: Option<String>,
    pub init: crate::builder::SimInit,
    pub cpu_vendor: String,
    pub cmdline: String,
    /// Seconds since the epoch (/proc/stat `btime`): an hour before the machine was built.
    pub boot_time: u64,
    pub firmware_fb: Option<FirmwareFb>,
    pub consoles: Consoles,
    /// (broker, client): the broker (logind) holds copies of the client's (a compositor's)
    /// nodes and closes them when the client ends.
    pub brokered: Vec<(u32, u32)>,
    next_pid: u32,
    next_seq: u64,
}

impl Model {
    pub fn from_builder(b: Builder) -> Model {
        let mut model = Model {
            devices: BTreeMap::new(),
            modules: BTreeMap::new(),
            processes: BTreeMap::new(),
            units: BTreeMap::new(),
            display_manager: b.display_manager,
            init: b.init,
            cpu_vendor: b.cpu_vendor.unwrap_or_else(|| "GenuineIntel".into()),
            cmdline: b.cmdline.unwrap_or_else(|| {
                format!(
                    "BOOT_IMAGE=/boot/vmlinuz-{} root=/dev/nvme0n1p2 ro quiet intel_iommu=on iommu=pt",
                    crate::render::RELEASE
                )
            }),
            boot_time: now_secs().saturating_sub(3600),
            firmware_fb: b.firmware_fb.map(FirmwareFb::new),
            consoles: Consoles::new(b.fbcon),
            brokered: Vec::new(),
            next_pid: 4000,
            next_seq: 0,
        };
        for spec in b.modules {
            let seq = model.bump_seq();
            let loaded = spec.loaded || spec.builtin;
            model
                .modules
                .insert(spec.name.clone(), Module { spec, loaded, seq });
        }
        for module in model.modules.values() {
            for dep in &module.spec.deps {
                assert!(
                    model.modules.contains_key(dep),
                    "module {} depends on unknown module {dep}",
                    module.spec.name
                );
            }
        }
        for spec in b.devices {
            if let Some(d) = &spec.native_driver {
                assert!(
                    model.driver_module(d).is_some(),
                    "device {} has driver {d}, which no module registers",
                    spec.bdf
                );
            }
            let driver = match &spec.native_driver {
                Some(d) if spec.bound && model.driver_loaded(d) => Some(d.clone()),
                _ => None,
            };
            let driver_override = spec.driver_override.clone();
            model.devices.insert(
                spec.bdf.clone(),
                Device {
                    bars: spec.bars.clone(),
                    reset_method: spec.reset_method.clone(),
                    spec,
                    driver,
                    driver_override,
                },
            );
        }
        for spec in b.units {
            let running = spec.running;
            model.units.insert(
                spec.name.clone(),
                Unit {
                    spec,
                    running,
                    reloads: Vec::new(),
                },
            );
        }
        for (pid, cgroup, template) in b.processes {
            let template = ProcessTemplate {
                started: template.started.or(Some(5)),
                ..template
            };
            model.insert_process(pid, &cgroup, &template);
            model.next_pid = model.next_pid.max(pid + 1);
        }
        model
    }

    fn bump_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// The module registering `driver`, loaded or not.
    pub fn driver_module(&self, driver: &str) -> Option<&Module> {
        self.modules
            .values()
            .find(|m| m.spec.drivers.iter().any(|d| d == driver))
    }

    pub fn driver_loaded(&self, driver: &str) -> bool {
        self.driver_module(driver).is_some_and(|m| m.loaded)
    }

    /// Whether `driver` would accept the device: with an override only that driver does,
    /// without one only the device's native driver (vfio-pci has no id table of its own).
    pub fn matches(&self, bdf: &str, driver: &str) -> bool {
        let Some(dev) = self.devices.get(bdf) else {
            return false;
        };
        match &dev.driver_override {
            Some(o) => o == driver,
            None => dev.spec.native_driver.as_deref() == Some(driver),
        }
    }

    pub fn bind(&mut self, bdf: &str, driver: &str) {
        if let Some(dev) = self.devices.get_mut(bdf) {
            dev.driver = Some(driver.to_string());
        }
        self.remove_conflicting_framebuffers(bdf);
    }

    pub fn unbind(&mut self, bdf: &str) {
        if let Some(dev) = self.devices.get_mut(bdf) {
            dev.driver = None;
        }
    }

    /// What the kernel does when `driver` registers: it probes every unbound device it matches.
    pub fn probe_driver(&mut self, driver: &str) {
        let candidates: Vec<String> = self
            .devices
            .values()
            .filter(|d| d.driver.is_none())
            .map(|d| d.spec.bdf.clone())
            .filter(|bdf| self.matches(bdf, driver))
            .collect();
        for bdf in candidates {
            self.bind(&bdf, driver);
        }
    }

    pub fn mark_loaded(&mut self, name: &str) {
        let seq = self.bump_seq();
        if let Some(m) = self.modules.get_mut(name) {
            m.loaded = true;
            m.seq = seq;
        }
    }

    /// Loaded modules that depend on `name` (its `holders/`).
    pub fn holders(&self, name: &str) -> Vec<String> {
        let mut holders: Vec<&Module> = self
            .modules
            .values()
            .filter(|m| m.loaded && m.spec.deps.iter().any(|d| d == name))
            .collect();
        holders.sort_by_key(|m| std::cmp::Reverse(m.seq));
        holders.iter().map(|m| m.spec.name.clone()).collect()
    }

    /// Dependent modules plus live processes holding one of its nodes.
    pub fn refcnt(&self, name: &str) -> usize {
        let users = self
            .processes
            .values()
            .filter(|p| p.alive && p.holds().any(|f| f.owner.as_deref() == Some(name)))
            .count();
        self.holders(name).len() + users
    }

    /// The nodes of a device's sound card and I2C buses (as they exist while its native driver
    /// drives it) and of its group while on vfio-pci: an unbind waits for each to be closed.
    pub fn pinning_nodes(&self, dev: &Device) -> Vec<String> {
        let mut nodes = Vec::new();
        if let Some(n) = dev.spec.sound_card {
            nodes.extend(sound_nodes(n));
        }
        nodes.extend(dev.spec.i2c_buses.iter().map(|n| format!("/dev/i2c-{n}")));
        if let Some(group) = dev.spec.group {
            nodes.push(format!("/dev/vfio/{group}"));
        }
        nodes
    }

    /// Where an unbind of `bdf` would wait now (a kernel function name, as wchan shows it):
    /// while a live process holds a node the device has under its current driver.
    pub fn unbind_waits_in(&self, bdf: &str) -> Option<&'static str> {
        let dev = self.devices.get(bdf)?;
        let present = self.nodes();
        let held = |node: &String| {
            present.contains_key(node)
                && self
                    .processes
                    .values()
                    .any(|p| p.alive && p.holds().any(|f| &f.target == node))
        };
        let node = self.pinning_nodes(dev).into_iter().find(|n| held(n))?;
        Some(if node.starts_with("/dev/snd/") {
            "snd_card_disconnect_sync"
        } else if node.starts_with("/dev/i2c-") {
            "i2c_del_adapter"
        } else {
            "vfio_unregister_group_dev"
        })
    }

    /// Every device node present now, with the module owning it.
    pub fn nodes(&self) -> BTreeMap<String, Option<String>> {
        let mut nodes = BTreeMap::new();
        for m in self.modules.values().filter(|m| m.loaded) {
            for node in &m.spec.nodes {
                nodes.insert(node.clone(), Some(m.spec.name.clone()));
            }
        }
        for dev in self.devices.values() {
            let Some(driver) = &dev.driver else { continue };
            let module = self.driver_module(driver).map(|m| m.spec.name.clone());
            if let (Some(n), Some(drm)) = (dev.spec.drm_card, self.drm_provider(driver)) {
                nodes.insert(format!("/dev/dri/card{n}"), Some(drm.clone()));
                nodes.insert(format!("/dev/dri/renderD{}", 128 + n), Some(drm));
            }
            if dev.spec.native_driver.as_deref() == Some(driver.as_str()) {
                for node in &dev.spec.nodes {
                    nodes.insert(node.clone(), module.clone());
                }
                for node in dev.spec.sound_card.into_iter().flat_map(sound_nodes) {
                    nodes.insert(node, module.clone());
                }
                for n in &dev.spec.i2c_buses {
                    nodes.insert(format!("/dev/i2c-{n}"), module.clone());
                }
                if let (Some(minor), "nvidia") = (dev.spec.nvidia_minor, driver.as_str()) {
                    nodes.insert(format!("/dev/nvidia{minor}"), module.clone());
                }
            }
            if let (Some(group), "vfio-pci") = (dev.spec.group, driver.as_str()) {
                nodes.insert(format!("/dev/vfio/{group}"), module.clone());
            }
        }
        nodes
    }

    /// Every node the machine could ever show, so stale ones can be found and removed.
    pub fn possible_nodes(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self
            .modules
            .values()
            .flat_map(|m| m.spec.nodes.iter().cloned())
            .collect();
        for dev in self.devices.values() {
            all.extend(dev.spec.nodes.iter().cloned());
            all.extend(dev.spec.sound_card.into_iter().flat_map(sound_nodes));
            all.extend(dev.spec.i2c_buses.iter().map(|n| format!("/dev/i2c-{n}")));
            if let Some(n) = dev.spec.drm_card {
                all.insert(format!("/dev/dri/card{n}"));
                all.insert(format!("/dev/dri/renderD{}", 128 + n));
            }
            if let Some(minor) = dev.spec.nvidia_minor {
                all.insert(format!("/dev/nvidia{minor}"));
            }
            if let Some(group) = dev.spec.group {
                all.insert(format!("/dev/vfio/{group}"));
            }
        }
        all
    }

    /// The loaded module giving devices bound to `driver` their DRM nodes.
    pub fn drm_provider(&self, driver: &str) -> Option<String> {
        self.modules
            .values()
            .find(|m| m.loaded && m.spec.drm_for.iter().any(|d| d == driver))
            .map(|m| m.spec.name.clone())
    }

    pub fn has_drm(&self, dev: &Device) -> bool {
        match (&dev.driver, dev.spec.drm_card) {
            (Some(driver), Some(_)) => self.drm_provider(driver).is_some(),
            _ => false,
        }
    }

    pub fn spawn(&mut self, cgroup: &str, template: &ProcessTemplate) -> u32 {
        let pid = self.next_pid;
        self.next_pid += 1;
        self.insert_process(pid, cgroup, template);
        pid
    }
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The nodes of ALSA card `n`: control, one HDMI playback PCM, the codec's hwdep.
pub(crate) fn sound_nodes(n: u32) -> Vec<String> {
    vec![
        format!("/dev/snd/controlC{n}"),
        format!("/dev/snd/hwC{n}D0"),
        format!("/dev/snd/pcmC{n}D3p"),
    ]
}
