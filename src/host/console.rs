//! The kernel console and the frame buffers under it: the vtconsole drivers, the frame buffer
//! devices in /sys/class/graphics, the firmware's boot frame buffer (a platform device) and the
//! memory /proc/iomem says it claims. Found by what they are, never by number: `vtcon1` and
//! `efi-framebuffer.0` are only what one kernel happens to call them.

use super::pci::{self, MemRange, WriteError};
use super::Host;
use std::io;
use std::time::Duration;

pub const VTCONSOLES: &str = "/sys/class/vtconsole";
pub const GRAPHICS: &str = "/sys/class/graphics";
pub const PLATFORM_DEVICES: &str = "/sys/bus/platform/devices";
pub const PLATFORM_DRIVERS: &str = "/sys/bus/platform/drivers";

/// Platform devices the kernel makes for the frame buffer the firmware left set up (sysfb):
/// efifb binds `efi-framebuffer`, simplefb and simpledrm `simple-framebuffer`, vesafb
/// `vesa-framebuffer`.
const FIRMWARE_DEVICES: &[&str] = &["efi-framebuffer", "simple-framebuffer", "vesa-framebuffer"];

/// What each firmware frame buffer driver calls the memory it requests in /proc/iomem;
/// sysfb's own resource for a simple-framebuffer is `BOOTFB`.
const CLAIM_NAMES: &[(&str, &str)] = &[
    ("efi-framebuffer", "efifb"),
    ("simple-framebuffer", "simplefb"),
    ("simpledrm", "simpledrm"),
    ("vesa-framebuffer", "vesafb"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VtConsole {
    /// The sysfs entry (`vtcon1`).
    pub id: String,
    /// What the driver calls itself: `(M) frame buffer device`, `(S) dummy device`.
    pub name: String,
    pub bound: bool,
}

impl VtConsole {
    /// fbcon, the console drawn on frame buffers (the name the kernel gives it since 2.6).
    pub fn is_framebuffer(&self) -> bool {
        self.name.contains("frame buffer device")
    }
}

/// A registered frame buffer (`fb0`) and the device it belongs to: a PCI address for a DRM
/// driver's fbdev emulation, a platform device name for a firmware frame buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framebuffer {
    pub node: String,
    pub device: Option<String>,
}

/// The firmware's frame buffer device and the memory its driver holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareFb {
    pub device: String,
    pub driver: Option<String>,
    /// Ranges in /proc/iomem named after the device or claimed by its driver.
    pub claims: Vec<MemRange>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Console {
    pub vtconsoles: Vec<VtConsole>,
    pub framebuffers: Vec<Framebuffer>,
    pub firmware: Vec<FirmwareFb>,
}

impl Console {
    pub fn read(host: &Host) -> io::Result<Console> {
        let iomem = match host.read("/proc/iomem") {
            Ok(text) => parse_iomem(&text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let vtconsoles = entries(host, VTCONSOLES)?
            .into_iter()
            .map(|id| VtConsole {
                name: host
                    .read(format!("{VTCONSOLES}/{id}/name"))
                    .unwrap_or_default(),
                bound: host
                    .read(format!("{VTCONSOLES}/{id}/bind"))
                    .is_ok_and(|v| v.trim() == "1"),
                id,
            })
            .collect();
        let framebuffers = entries(host, GRAPHICS)?
            .into_iter()
            .filter(|node| is_fb_node(node))
            .map(|node| Framebuffer {
                device: host.link_name(format!("{GRAPHICS}/{node}/device")),
                node,
            })
            .collect();
        let firmware = entries(host, PLATFORM_DEVICES)?
            .into_iter()
            .filter(|name| is_firmware_fb(name))
            .map(|device| {
                let driver = host.link_name(format!("{PLATFORM_DEVICES}/{device}/driver"));
                let claims = iomem
                    .iter()
                    .filter(|(_, name)| claimed_by(name, &device, driver.as_deref()))
                    .map(|(range, _)| *range)
                    .collect();
                FirmwareFb {
                    device,
                    driver,
                    claims,
                }
            })
            .collect();
        Ok(Console {
            vtconsoles,
            framebuffers,
            firmware,
        })
    }

    /// True when at least one frame buffer is registered for a console to draw on.
    pub fn has_framebuffer(&self) -> bool {
        !self.framebuffers.is_empty()
    }
}

/// A vtconsole's `bind` attribute.
pub fn bind_path(vtcon: &str) -> String {
    format!("{VTCONSOLES}/{vtcon}/bind")
}

/// Binds the vtconsole to the consoles (`true`) or hands them to the next driver (`false`).
pub fn set_bound(host: &Host, vtcon: &str, bound: bool, limit: Duration) -> Result<(), WriteError> {
    pci::write(host, bind_path(vtcon), if bound { "1" } else { "0" }, limit)
}

/// The driver a platform device is bound to.
pub fn platform_driver(host: &Host, device: &str) -> Option<String> {
    host.link_name(format!("{PLATFORM_DEVICES}/{device}/driver"))
}

/// Whether the platform device exists (a real driver's arrival removes the firmware's).
pub fn platform_exists(host: &Host, device: &str) -> bool {
    host.path(format!("{PLATFORM_DEVICES}/{device}")).exists()
}

/// Unbinds a platform device from its driver (`action` "unbind") or binds it to one ("bind"):
/// a binding write, see [`pci::unbind`].
pub fn bind_platform(
    host: &Host,
    action: &str,
    device: &str,
    driver: &str,
    limit: Duration,
) -> Result<(), WriteError> {
    pci::write(
        host,
        format!("{PLATFORM_DRIVERS}/{driver}/{action}"),
        device,
        limit,
    )
}

/// `fb0`, `fb12`: the class also holds `fbcon`, which is not a frame buffer.
fn is_fb_node(name: &str) -> bool {
    name.strip_prefix("fb")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn is_firmware_fb(device: &str) -> bool {
    let base = device.split('.').next().unwrap_or(device);
    FIRMWARE_DEVICES.contains(&base)
}

fn claimed_by(region: &str, device: &str, driver: Option<&str>) -> bool {
    let base = device.split('.').next().unwrap_or(device);
    let by_driver = driver.is_some_and(|driver| {
        region == driver
            || CLAIM_NAMES
                .iter()
                .any(|(d, claim)| *d == driver && *claim == region)
    });
    region == device || (base == "simple-framebuffer" && region == "BOOTFB") || by_driver
}

/// Names of the entries of a sysfs directory, sorted; none when it does not exist.
fn entries(host: &Host, dir: &str) -> io::Result<Vec<String>> {
    let listing = match std::fs::read_dir(host.path(dir)) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names: Vec<String> = listing
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// Every range in /proc/iomem with its name, nesting flattened. Without CAP_SYS_ADMIN the kernel
/// shows every address as 0, so nothing overlaps anything.
pub fn parse_iomem(text: &str) -> Vec<(MemRange, String)> {
    text.lines()
        .filter_map(|line| {
            let (range, name) = line.trim_start().split_once(" : ")?;
            let (start, end) = range.split_once('-')?;
            let range = MemRange {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
            };
            (range.end > range.start).then(|| (range, name.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iomem_keeps_nested_claims_and_drops_zeroed_ranges() {
        let text = "00000000-00000fff : Reserved\n\
                    80000000-80ffffff : 0000:00:01.0\n  80000000-802fffff : efifb\n\
                    c0000000-c0000fff : 0000:00:01.0\n";
        let regions = parse_iomem(text);
        assert_eq!(regions.len(), 4);
        assert_eq!(regions[2].1, "efifb");
        assert_eq!(regions[2].0.end, 0x802f_ffff);
        assert!(parse_iomem("00000000-00000000 : efifb\n").is_empty());
    }

    #[test]
    fn claims_are_matched_by_device_and_driver() {
        assert!(claimed_by(
            "efifb",
            "efi-framebuffer.0",
            Some("efi-framebuffer")
        ));
        assert!(!claimed_by("efifb", "efi-framebuffer.0", None));
        assert!(claimed_by("BOOTFB", "simple-framebuffer.0", None));
        assert!(claimed_by(
            "simpledrm",
            "simple-framebuffer.0",
            Some("simpledrm")
        ));
        assert!(!claimed_by(
            "0000:00:01.0",
            "efi-framebuffer.0",
            Some("efi-framebuffer")
        ));
        assert!(is_fb_node("fb0") && !is_fb_node("fbcon"));
    }
}
