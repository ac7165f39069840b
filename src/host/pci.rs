//! PCI functions as sysfs describes them.

use super::Host;
use crate::bdf::Bdf;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io;

pub const DEVICES: &str = "/sys/bus/pci/devices";
pub const VFIO_DRIVER: &str = "vfio-pci";

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
    /// DRM minors under the device: `card1`, `renderD129`.
    pub drm_nodes: Vec<String>,
    pub boot_vga: bool,
}

/// Ids in JSON as lspci prints them ("10de"), not as decimal numbers.
fn hex16<S: serde::Serializer>(id: &u16, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{id:04x}"))
}

fn hex24<S: serde::Serializer>(class: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{class:#08x}"))
}

impl PciDevice {
    pub fn is_display(&self) -> bool {
        is_display_class(self.class)
    }

    /// Base class 0x06: host, ISA and PCI bridges, which never move to vfio-pci.
    pub fn is_bridge(&self) -> bool {
        self.class >> 16 == 0x06
    }

    pub fn kind(&self) -> &'static str {
        match (self.class >> 16, (self.class >> 8) & 0xff) {
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
}

fn hex(host: &Host, bdf: &Bdf, attr: &str) -> io::Result<u32> {
    let path = format!("{DEVICES}/{bdf}/{attr}");
    let text = host.read(&path)?;
    u32::from_str_radix(text.trim_start_matches("0x"), 16).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: '{text}' is not a hex number",
                host.path(&path).display()
            ),
        )
    })
}

/// Reads one function; `Ok(None)` when no such device exists.
pub fn read(host: &Host, bdf: Bdf) -> io::Result<Option<PciDevice>> {
    let dir = format!("{DEVICES}/{bdf}");
    if !host.path(&dir).exists() {
        return Ok(None);
    }
    let driver_override = host
        .read(format!("{dir}/driver_override"))
        .ok()
        .filter(|value| !value.is_empty() && value != "(null)");
    let mut drm_nodes: Vec<String> = std::fs::read_dir(host.path(format!("{dir}/drm")))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("card") || name.starts_with("renderD"))
        .collect();
    drm_nodes.sort();
    Ok(Some(PciDevice {
        bdf,
        vendor: hex(host, &bdf, "vendor")? as u16,
        device: hex(host, &bdf, "device")? as u16,
        class: hex(host, &bdf, "class")?,
        subsystem_vendor: hex(host, &bdf, "subsystem_vendor").unwrap_or(0) as u16,
        subsystem_device: hex(host, &bdf, "subsystem_device").unwrap_or(0) as u16,
        driver: host.link_name(format!("{dir}/driver")),
        driver_override,
        iommu_group: host
            .link_name(format!("{dir}/iommu_group"))
            .and_then(|group| group.parse().ok()),
        drm_nodes,
        boot_vga: host.read(format!("{dir}/boot_vga")).is_ok_and(|v| v == "1"),
    }))
}

/// Every PCI function; entries that are not addresses are skipped.
pub fn read_all(host: &Host) -> io::Result<BTreeMap<Bdf, PciDevice>> {
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
        if let Some(device) = read(host, bdf)? {
            devices.insert(bdf, device);
        }
    }
    Ok(devices)
}

/// PCI base class 0x03: VGA, 3D and other display controllers.
pub fn is_display_class(class: u32) -> bool {
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
