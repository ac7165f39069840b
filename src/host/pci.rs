//! PCI functions as sysfs describes them, and the sysfs writes that move them between drivers:
//! every path and value of the PCI core's binding interface is spelled here and nowhere else.

use super::Host;
use crate::bdf::Bdf;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::time::Duration;

const DEVICES: &str = "/sys/bus/pci/devices";
const DRIVERS: &str = "/sys/bus/pci/drivers";
/// The driver that holds a function for a VM.
pub const VFIO_DRIVER: &str = "vfio-pci";
/// The module vfio-pci lives in.
pub const VFIO_MODULE: &str = "vfio_pci";
/// Drivers that only park a function: one bound to them is not in the host's use.
const PARKING_DRIVERS: [&str; 2] = [VFIO_DRIVER, "pci-stub"];

/// A sysfs write the kernel refused.
#[derive(Debug, thiserror::Error)]
#[error("writing {value:?} to {path}: {cause}", path = .path.display(), cause = crate::untrusted::cause(.path, .source))]
pub struct WriteError {
    path: PathBuf,
    value: String,
    source: io::Error,
}

impl WriteError {
    /// The write the kernel had not returned from at its deadline, if that is what this is.
    pub fn stuck(&self) -> Option<&super::StuckWrite> {
        super::StuckWrite::of(&self.source)
    }

    /// The errno the kernel answered with, if it answered.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PciDevice {
    pub bdf: Bdf,
    #[serde(serialize_with = "hex16")]
    pub vendor: u16,
    #[serde(serialize_with = "hex16")]
    pub device: u16,
    /// Base class, subclass and programming interface, as sysfs shows them (0x030000).
    #[serde(serialize_with = "hex24")]
    pub class: u32,
    #[serde(serialize_with = "hex16")]
    pub subsystem_vendor: u16,
    #[serde(serialize_with = "hex16")]
    pub subsystem_device: u16,
    pub driver: Option<String>,
    pub driver_override: Option<String>,
    pub iommu_group: Option<u32>,
    /// Every device node of the function a process could hold (see [`super::nodes`]).
    pub nodes: BTreeSet<String>,
    /// The pid of a write helper of an earlier run still stuck in the kernel on this function;
    /// its driver_override is not read then (that waits on the same device lock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stuck_helper: Option<u32>,
    pub boot_vga: bool,
    /// Memory BARs (and the ROM) as `resource` lists them: what a framebuffer may sit in.
    #[serde(skip)]
    pub bars: Vec<MemRange>,
    /// Its BARs the Resizable BAR capability covers, with their sizes now and those offered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resizable_bars: Vec<super::rebar::ResizableBar>,
    /// `reset_method`: None when the kernel found no way to reset it (no file).
    pub reset_method: Option<String>,
}

/// An inclusive range of physical addresses, as sysfs `resource` and /proc/iomem give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemRange {
    pub start: u64,
    pub end: u64,
}

impl MemRange {
    pub fn overlaps(&self, other: &MemRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

impl std::fmt::Display for MemRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}-{:#x}", self.start, self.end)
    }
}

/// IORESOURCE_MEM in a `resource` line's flags.
const IORESOURCE_MEM: u64 = 0x200;

/// The memory ranges in a `resource` file: `start end flags` per line, all hex, unused ones 0.
fn memory_bars(text: &str) -> Vec<MemRange> {
    let hex = |word: &str| u64::from_str_radix(word.trim_start_matches("0x"), 16).ok();
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace().map(hex);
            let (start, end, flags) = (words.next()??, words.next()??, words.next()??);
            (flags & IORESOURCE_MEM != 0 && end > start).then_some(MemRange { start, end })
        })
        .collect()
}

/// Ids in JSON as lspci prints them ("10de"), not as decimal numbers.
fn hex16<S: serde::Serializer>(id: &u16, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{id:04x}"))
}

fn hex24<S: serde::Serializer>(class: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{class:#08x}"))
}

impl PciDevice {
    /// Base class 0x03: any graphics card, display or compute-only.
    pub fn is_gpu(&self) -> bool {
        is_gpu_class(self.class)
    }

    /// A graphics card that can drive a screen: every display controller except a 3D
    /// controller (0x0302, compute cards without outputs).
    pub fn is_display(&self) -> bool {
        self.is_gpu() && (self.class >> 8) & 0xff != 0x02
    }

    /// Functions in one PCI slot (domain:bus:device) are parts of one card.
    pub fn same_slot(&self, other: Bdf) -> bool {
        self.bdf.slot() == other.slot()
    }

    /// Base class 0x06: host, ISA and PCI bridges, which never move to vfio-pci.
    pub fn is_bridge(&self) -> bool {
        self.class >> 16 == 0x06
    }

    pub fn kind(&self) -> &'static str {
        match (self.class >> 16, (self.class >> 8) & 0xff) {
            (0x03, 0x02) => "3d",
            (0x03, _) => "display",
            (0x04, 0x03) => "audio",
            (0x04, _) => "multimedia",
            (0x0c, 0x03) => "usb",
            (0x0c, 0x80) => "serial bus",
            (0x0c, _) => "serial",
            (0x06, _) => "bridge",
            (0x01, _) => "storage",
            (0x02, _) => "network",
            _ => "other",
        }
    }

    pub fn on_vfio(&self) -> bool {
        self.driver.as_deref() == Some(VFIO_DRIVER)
    }

    /// Bound to a driver of the host, not unbound and not parked on vfio-pci or pci-stub.
    pub fn on_host_driver(&self) -> bool {
        self.driver
            .as_deref()
            .is_some_and(|driver| !PARKING_DRIVERS.contains(&driver))
    }
}

fn hex(host: &Host, bdf: &Bdf, attr: &str) -> io::Result<u32> {
    let path = format!("{DEVICES}/{bdf}/{attr}");
    let text = host.read(&path)?;
    u32::from_str_radix(text.trim_start_matches("0x"), 16).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: {:?} is not a hex number",
                host.path(&path).display(),
                text.chars().take(32).collect::<String>()
            ),
        )
    })
}

/// Where sysfs shows one of a function's attributes or subdirectories (`reset_method`,
/// `resource`, `sound`), for readers outside this module.
pub fn device_path(bdf: Bdf, entry: &str) -> String {
    format!("{DEVICES}/{bdf}/{entry}")
}

/// Reads one function; `Ok(None)` when no such device exists. `stuck_helper`: see
/// [`PciDevice::stuck_helper`].
pub fn read(host: &Host, bdf: Bdf, stuck_helper: Option<u32>) -> io::Result<Option<PciDevice>> {
    let dir = format!("{DEVICES}/{bdf}");
    if !host.path(&dir).exists() {
        return Ok(None);
    }
    let driver_override = match stuck_helper {
        Some(_) => None,
        None => driver_override(host, bdf),
    };
    let driver = host.link_name(format!("{dir}/driver"));
    let iommu_group = host
        .link_name(format!("{dir}/iommu_group"))
        .and_then(|group| group.parse().ok());
    let on_vfio = driver.as_deref() == Some(VFIO_DRIVER);
    Ok(Some(PciDevice {
        stuck_helper,
        nodes: super::nodes::of_function(host, bdf, on_vfio, iommu_group),
        bdf,
        vendor: hex(host, &bdf, "vendor")? as u16,
        device: hex(host, &bdf, "device")? as u16,
        class: hex(host, &bdf, "class")?,
        subsystem_vendor: hex(host, &bdf, "subsystem_vendor").unwrap_or(0) as u16,
        subsystem_device: hex(host, &bdf, "subsystem_device").unwrap_or(0) as u16,
        driver,
        driver_override,
        iommu_group,
        boot_vga: host.read(format!("{dir}/boot_vga")).is_ok_and(|v| v == "1"),
        bars: memory_bars(&host.read(format!("{dir}/resource")).unwrap_or_default()),
        resizable_bars: super::rebar::resizable(host, bdf),
        reset_method: super::rebar::reset_methods(host, bdf),
    }))
}

/// Every PCI function; entries that are not addresses are skipped. `stuck` maps functions a
/// stuck write helper still waits on to its pid.
pub fn read_all(host: &Host, stuck: &BTreeMap<Bdf, u32>) -> io::Result<BTreeMap<Bdf, PciDevice>> {
    let entries = match std::fs::read_dir(host.path(DEVICES)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let mut devices = BTreeMap::new();
    for entry in entries {
        let Ok(bdf) = entry?.file_name().to_string_lossy().parse::<Bdf>() else {
            continue;
        };
        if let Some(device) = read(host, bdf, stuck.get(&bdf).copied())? {
            devices.insert(bdf, device);
        }
    }
    Ok(devices)
}

/// PCI base class 0x03: VGA, 3D and other display controllers.
pub fn is_gpu_class(class: u32) -> bool {
    class >> 16 == 0x03
}

/// A function's class alone, for callers that need nothing else (the hook).
pub fn class(host: &Host, bdf: Bdf) -> io::Result<u32> {
    hex(host, &bdf, "class")
}

/// The driver a function is bound to right now.
pub fn driver(host: &Host, bdf: Bdf) -> Option<String> {
    host.link_name(format!("{DEVICES}/{bdf}/driver"))
}

/// The driver a function is reserved for, if any (sysfs shows "(null)" for none).
pub fn driver_override(host: &Host, bdf: Bdf) -> Option<String> {
    host.read(format!("{DEVICES}/{bdf}/driver_override"))
        .ok()
        .filter(|value| !value.is_empty() && value != "(null)")
}

/// Every write waits in the kernel as long as the device is busy; past `limit` it fails with a
/// [`WriteError::stuck`] and may still complete later (see [`super::Effects::write`]).
pub(super) fn write(
    host: &Host,
    path: String,
    value: &str,
    limit: Duration,
) -> Result<(), WriteError> {
    host.write(&path, value, limit)
        .map_err(|source| WriteError {
            path: host.path(&path),
            value: value.trim_end().to_string(),
            source,
        })
}

/// Reserves the function for vfio-pci, so no other driver claims it once unbound.
pub fn set_override(host: &Host, bdf: Bdf, limit: Duration) -> Result<(), WriteError> {
    write(
        host,
        format!("{DEVICES}/{bdf}/driver_override"),
        VFIO_DRIVER,
        limit,
    )
}

/// Lifts the reservation: any matching driver may claim the function again.
pub fn clear_override(host: &Host, bdf: Bdf, limit: Duration) -> Result<(), WriteError> {
    write(
        host,
        format!("{DEVICES}/{bdf}/driver_override"),
        "\n",
        limit,
    )
}

/// Detaches the function from `driver`; blocks while the driver's remove() waits for its users.
pub fn unbind(host: &Host, bdf: Bdf, driver: &str, limit: Duration) -> Result<(), WriteError> {
    write(
        host,
        format!("{DRIVERS}/{driver}/unbind"),
        &bdf.to_string(),
        limit,
    )
}

/// Asks the PCI core to find a driver for the function; it honours driver_override.
pub fn probe(host: &Host, bdf: Bdf, limit: Duration) -> Result<(), WriteError> {
    write(
        host,
        "/sys/bus/pci/drivers_probe".into(),
        &bdf.to_string(),
        limit,
    )
}

/// Binds the function to `driver` by name, for when several drivers match its ids.
pub fn bind(host: &Host, bdf: Bdf, driver: &str, limit: Duration) -> Result<(), WriteError> {
    write(
        host,
        format!("{DRIVERS}/{driver}/bind"),
        &bdf.to_string(),
        limit,
    )
}

/// Every registered PCI driver (its module loaded or built in).
pub fn drivers(host: &Host) -> Vec<String> {
    std::fs::read_dir(host.path(DRIVERS))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The module a PCI driver belongs to (driver `xhci_hcd` lives in `xhci_pci`).
pub fn module_of_driver(host: &Host, driver: &str) -> Option<String> {
    host.link_name(format!("{DRIVERS}/{driver}/module"))
}

/// Whether a PCI driver is registered (its module loaded or built in).
pub fn driver_registered(host: &Host, driver: &str) -> bool {
    host.path(format!("{DRIVERS}/{driver}")).is_dir()
}

/// The functions bound right now to a PCI driver that `module` registers.
pub fn bound_to_module(host: &Host, module: &str) -> Vec<Bdf> {
    let module = super::modules::canonical(module);
    drivers(host)
        .into_iter()
        .filter(|driver| module_of_driver(host, driver).as_deref() == Some(module.as_str()))
        .flat_map(|driver| {
            std::fs::read_dir(host.path(format!("{DRIVERS}/{driver}")))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| entry.file_name().to_string_lossy().parse().ok())
                .collect::<Vec<Bdf>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_bars_skip_io_ports_and_unused_slots() {
        let text = "0x00000000fd000000 0x00000000fdffffff 0x0000000000040200\n\
                    0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                    0x000000000000c000 0x000000000000c01f 0x0000000000040101\n";
        let bars = super::memory_bars(text);
        assert_eq!(
            bars,
            [super::MemRange {
                start: 0xfd00_0000,
                end: 0xfdff_ffff
            }]
        );
    }
}
