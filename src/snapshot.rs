//! One consistent reading of everything a plan depends on.

use crate::bdf::Bdf;
use crate::host::console::Console;
use crate::host::holders::{self, Holder};
use crate::host::init::Init;
use crate::host::modules::{self, Module};
use crate::host::pci::{self, PciDevice};
use crate::host::{inhibit, keepoff, procs, sound, Host};
use crate::record::Record;
use crate::vendor;
use std::collections::{BTreeMap, BTreeSet};
use std::io;

#[derive(Debug, Clone)]
/// Everything a plan depends on, read at one moment.
pub struct Snapshot {
    /// Every PCI function.
    pub devices: BTreeMap<Bdf, PciDevice>,
    /// The loaded modules.
    pub modules: BTreeMap<String, Module>,
    /// Each registered PCI driver and the module it lives in.
    pub driver_modules: BTreeMap<String, String>,
    /// Modules compiled into the kernel, which cannot be unloaded.
    pub builtin_modules: BTreeSet<String>,
    /// Processes holding a GPU node.
    pub holders: Vec<Holder>,
    /// The ALSA cards of the functions that have one (HDMI/DP audio, onboard audio).
    pub sound_cards: BTreeMap<Bdf, Vec<u32>>,
    /// NVIDIA cards' own nodes (/dev/nvidiaN).
    pub nvidia_nodes: BTreeMap<Bdf, String>,
    /// The service manager, None on a host pitcrew does not support (nothing can be stopped).
    pub init: Option<Init>,
    /// The display manager's service (behind display-manager.service under systemd), if any.
    pub display_manager: Option<String>,
    /// Whether stopping a service ends every process of its cgroup (see
    /// [`Init::stop_ends_cgroup`]); where it does not, the plan ends their holders itself.
    pub stop_ends_cgroup: bool,
    /// Among the display manager and the vendors' daemons' services, those running now.
    pub running_units: BTreeSet<String>,
    /// What pitcrew changed before.
    pub record: Record,
    /// The vtconsoles, frame buffers and the firmware's frame buffer.
    pub console: Console,
    /// Whether logind (or elogind) runs and takes sleep inhibitors.
    pub logind: bool,
    /// pitcrew's sleep inhibitors held now: reason -> holder pids.
    pub inhibitors: BTreeMap<String, Vec<u32>>,
    /// The GPUs `pitcrew keep-off` keeps the desktop off, and whether that holds now.
    pub keep_off: BTreeMap<Bdf, keepoff::State>,
}

#[derive(Debug, thiserror::Error)]
/// A part of the host that could not be read.
pub enum ReadError {
    /// A file or directory under the root.
    #[error("cannot read {what} under {root}: {source}")]
    Io {
        /// What was being read.
        what: &'static str,
        /// The root it was read under.
        root: String,
        /// Why it failed.
        source: io::Error,
    },
}

/// Whether `pid` is still a pitcrew write helper (not a process that reused the pid).
fn is_write_helper(host: &Host, pid: u32) -> bool {
    holders::cmdline(host, pid)
        .split(' ')
        .any(|arg| arg == crate::host::WRITE_HELPER)
}

impl Snapshot {
    /// Reads the host.
    pub fn read(host: &Host) -> Result<Snapshot, ReadError> {
        let ctx = |what: &'static str| {
            move |source| ReadError::Io {
                what,
                root: host.root().display().to_string(),
                source,
            }
        };
        let mut record = Record::load(host).map_err(ctx("the state record"))?;
        // A stuck write helper that is gone has finished: the device is free again.
        record.stuck.retain(|_, pid| is_write_helper(host, *pid));
        let devices =
            pci::read_all(host, &record.stuck).map_err(ctx("PCI devices (/sys/bus/pci)"))?;
        let modules = modules::loaded(host).map_err(ctx("loaded modules (/proc/modules)"))?;
        let driver_modules: BTreeMap<String, String> = pci::drivers(host)
            .into_iter()
            .filter_map(|driver| Some((pci::module_of_driver(host, &driver)?, driver)))
            .map(|(module, driver)| (driver, module))
            .collect();
        let builtin_modules = driver_modules
            .values()
            .chain(std::iter::once(&pci::VFIO_MODULE.to_string()))
            .filter(|module| modules::is_builtin(host, module))
            .cloned()
            .collect();
        // One walk of /proc for the holders and the inhibitors.
        let processes = procs::user_space(host).map_err(ctx("processes (/proc)"))?;
        let holders = holders::among(
            host,
            processes.iter().map(|p| p.pid),
            crate::host::nodes::is_tracked,
        );
        let nvidia_nodes = devices
            .values()
            .filter(|d| d.vendor == vendor::NVIDIA.vendor && d.is_gpu())
            .filter_map(|d| Some((d.bdf, vendor::nvidia_node(host, d.bdf)?)))
            .collect();
        let sound_cards = devices
            .keys()
            .map(|bdf| (*bdf, sound::cards(host, *bdf)))
            .filter(|(_, cards)| !cards.is_empty())
            .collect();
        let init = Init::detect(host).ok();
        let display_manager = init.and_then(|init| init.display_manager(host));
        let running_units = match init {
            Some(init) => display_manager
                .iter()
                .cloned()
                .chain(vendor::NVIDIA.daemons.iter().map(|d| init.service(d)))
                .filter(|service| init.is_active(host, service))
                .collect(),
            None => BTreeSet::new(),
        };
        let console = Console::read(host).map_err(ctx(
            "the console and frame buffers (/sys/class, /proc/iomem)",
        ))?;
        // A rules file pitcrew cannot read keeps nothing off; `keep-off` itself refuses it.
        let keep_off = keepoff::read(host, &devices, &holders).unwrap_or_else(|e| {
            tracing::warn!("{e}");
            BTreeMap::new()
        });
        Ok(Snapshot {
            console,
            logind: init.is_some_and(|init| init.logind(host)),
            stop_ends_cgroup: init.is_some_and(Init::stop_ends_cgroup),
            init,
            inhibitors: inhibit::among(host, &processes),
            devices,
            modules,
            driver_modules,
            builtin_modules,
            holders,
            sound_cards,
            nvidia_nodes,
            display_manager,
            running_units,
            record,
            keep_off,
        })
    }

    /// The module a bound driver lives in; a driver without a module link is named after itself.
    pub fn module_of(&self, driver: &str) -> String {
        self.driver_modules
            .get(driver)
            .cloned()
            .unwrap_or_else(|| modules::canonical(driver))
    }

    /// The services a vendor's daemons run as here.
    pub fn daemon_services(&self, profile: &vendor::Profile) -> Vec<String> {
        profile
            .daemons
            .iter()
            .map(|daemon| {
                self.init
                    .map_or(daemon.to_string(), |init| init.service(daemon))
            })
            .collect()
    }

    /// Whether vfio-pci is registered (loaded or built in).
    pub fn vfio_available(&self) -> bool {
        self.driver_modules.contains_key(pci::VFIO_DRIVER)
    }

    /// Nodes that belong to one function: DRM minors, sound card nodes, i2c-dev nodes of its
    /// buses, /dev/vfio/<group> while on vfio-pci, its frame buffers and, for NVIDIA,
    /// /dev/nvidiaN.
    pub fn own_nodes(&self, bdf: Bdf) -> BTreeSet<String> {
        let mut nodes = self
            .devices
            .get(&bdf)
            .map(|d| d.nodes.clone())
            .unwrap_or_default();
        nodes.extend(self.nvidia_nodes.get(&bdf).cloned());
        let address = bdf.to_string();
        nodes.extend(
            self.console
                .framebuffers
                .iter()
                .filter(|fb| fb.device.as_deref() == Some(address.as_str()))
                .map(|fb| format!("/dev/{}", fb.node)),
        );
        nodes
    }

    /// The other functions of `bdf`'s slot (domain:bus:device.*), bridges aside.
    pub fn slot_companions(&self, bdf: Bdf) -> impl Iterator<Item = &PciDevice> {
        self.devices
            .values()
            .filter(move |d| d.bdf != bdf && d.same_slot(bdf) && !d.is_bridge())
    }
}
