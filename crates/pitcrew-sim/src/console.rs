//! The kernel console and the frame buffers: vtconsoles, /sys/class/graphics, the firmware's
//! frame buffer platform device and /proc/iomem.
//!
//! - vtcon0 is the dummy console, bound while fbcon is not; vtcon1 is fbcon when the machine
//!   has it, as Linux 6.1 does it in the test bed: fbcon unregisters itself (vtcon1 disappears)
//!   when the last frame buffer goes, bound or not, and takes over the next frame buffer
//!   registered while it is unregistered.
//! - Frame buffers are numbered in order: the firmware's first while its driver holds it, then
//!   each device with [`DeviceSpec::framebuffer`] bound to its native driver with DRM.
//! - A device with a frame buffer of its own removes the firmware's frame buffer in its BARs
//!   when it binds (the platform device is gone for good, as with the kernel's aperture helpers);
//!   binding the firmware frame buffer's driver again then fails with ENODEV.
//!
//! [`DeviceSpec::framebuffer`]: crate::DeviceSpec::framebuffer

use std::io;

use crate::builder::FirmwareFbSpec;
use crate::errno::{EINVAL, ENODEV};
use crate::model::Model;
use crate::render::{bar_ranges, device_dir};
use crate::tree::Tree;

const DUMMY: &str = "(S) dummy device";
const FBCON: &str = "(M) frame buffer device";

pub(crate) struct FirmwareFb {
    pub spec: FirmwareFbSpec,
    pub present: bool,
    pub bound: bool,
}

impl FirmwareFb {
    pub fn new(spec: FirmwareFbSpec) -> FirmwareFb {
        let bound = spec.bound;
        FirmwareFb {
            spec,
            present: true,
            bound,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fbcon {
    /// The kernel has no fbcon.
    Missing,
    Unregistered,
    Bound,
    Unbound,
}

pub(crate) struct Consoles {
    pub fbcon: Fbcon,
}

impl Consoles {
    pub fn new(fbcon: bool) -> Consoles {
        Consoles {
            fbcon: if fbcon { Fbcon::Bound } else { Fbcon::Missing },
        }
    }
}

impl Model {
    /// What fbcon does when frame buffers come and go; run after every change.
    pub fn settle_console(&mut self) {
        let has_fb = !self.framebuffers().is_empty();
        self.consoles.fbcon = match (self.consoles.fbcon, has_fb) {
            (Fbcon::Missing, _) => Fbcon::Missing,
            (_, false) => Fbcon::Unregistered,
            (Fbcon::Unregistered, true) => Fbcon::Bound,
            (state, true) => state,
        };
    }

    /// The registered frame buffers in number order, each with the sysfs dir of its device.
    pub fn framebuffers(&self) -> Vec<String> {
        let firmware = self
            .firmware_fb
            .iter()
            .filter(|fb| fb.present && fb.bound)
            .map(|fb| format!("/sys/devices/platform/{}", fb.spec.device));
        let own = self
            .devices
            .values()
            .filter(|d| d.spec.framebuffer && self.has_drm(d))
            .filter(|d| d.driver == d.spec.native_driver)
            .map(|d| device_dir(&d.spec.bdf));
        firmware.chain(own).collect()
    }

    pub fn remove_conflicting_framebuffers(&mut self, bdf: &str) {
        let Some(dev) = self.devices.get(bdf) else {
            return;
        };
        if !dev.spec.framebuffer || dev.driver != dev.spec.native_driver {
            return;
        }
        let bars = bar_ranges(&dev.spec.bars);
        if let Some(fb) = self.firmware_fb.as_mut() {
            let (start, end) = fb.spec.range;
            if bars.iter().any(|(_, s, e)| start <= *e && *s <= end) {
                fb.present = false;
                fb.bound = false;
            }
        }
    }
}

/// `echo 0|1 > /sys/class/vtconsole/vtconN/bind`.
pub(crate) fn write_vtconsole(model: &mut Model, vtcon: &str, value: &str) -> io::Result<()> {
    let bind = match value {
        "0" => false,
        "1" => true,
        _ => return Err(io::Error::from_raw_os_error(EINVAL)),
    };
    match (vtcon, model.consoles.fbcon) {
        ("vtcon1", Fbcon::Bound | Fbcon::Unbound) => {
            model.consoles.fbcon = if bind { Fbcon::Bound } else { Fbcon::Unbound };
            Ok(())
        }
        _ => Err(io::Error::from_raw_os_error(ENODEV)),
    }
}

/// `echo <device> > /sys/bus/platform/drivers/<driver>/{bind,unbind}`.
pub(crate) fn write_platform(
    model: &mut Model,
    driver: &str,
    verb: &str,
    device: &str,
) -> io::Result<()> {
    let Some(fb) = model
        .firmware_fb
        .as_mut()
        .filter(|fb| fb.present && fb.spec.device == device && fb.spec.driver == driver)
    else {
        return Err(io::Error::from_raw_os_error(ENODEV));
    };
    match (verb, fb.bound) {
        ("unbind", true) => fb.bound = false,
        ("bind", false) => fb.bound = true,
        _ => return Err(io::Error::from_raw_os_error(ENODEV)),
    }
    Ok(())
}

pub(crate) fn render(t: &Tree, model: &Model) -> io::Result<()> {
    let fbcon = model.consoles.fbcon;
    let mut consoles = vec![("vtcon0", DUMMY, fbcon != Fbcon::Bound)];
    match fbcon {
        Fbcon::Bound | Fbcon::Unbound => consoles.push(("vtcon1", FBCON, fbcon == Fbcon::Bound)),
        Fbcon::Missing | Fbcon::Unregistered => {
            t.remove("/sys/devices/virtual/vtconsole/vtcon1")?;
            t.remove("/sys/class/vtconsole/vtcon1")?;
        }
    }
    for (id, name, bound) in consoles {
        let dir = format!("/sys/devices/virtual/vtconsole/{id}");
        t.file(&format!("{dir}/name"), &format!("{name}\n"))?;
        t.file(&format!("{dir}/bind"), if bound { "1\n" } else { "0\n" })?;
        t.symlink(
            &format!("/sys/class/vtconsole/{id}"),
            &format!("../../devices/virtual/vtconsole/{id}"),
        )?;
    }

    let fbs = model.framebuffers();
    for (n, device) in fbs.iter().enumerate() {
        let device = device.trim_start_matches("/sys/");
        t.symlink(
            &format!("/sys/class/graphics/fb{n}/device"),
            &format!("../../../{device}"),
        )?;
        t.file(&format!("/dev/fb{n}"), "")?;
    }
    for name in t.entries("/sys/class/graphics") {
        let stale = name
            .strip_prefix("fb")
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n >= fbs.len());
        if stale {
            t.remove(&format!("/sys/class/graphics/{name}"))?;
            t.remove(&format!("/dev/{name}"))?;
        }
    }

    if let Some(fb) = &model.firmware_fb {
        let device = &fb.spec.device;
        let dir = format!("/sys/devices/platform/{device}");
        let driver_dir = format!("/sys/bus/platform/drivers/{}", fb.spec.driver);
        t.file(&format!("{driver_dir}/bind"), "")?;
        t.file(&format!("{driver_dir}/unbind"), "")?;
        if fb.present {
            t.dir(&dir)?;
            t.symlink(
                &format!("/sys/bus/platform/devices/{device}"),
                &format!("../../../devices/platform/{device}"),
            )?;
        } else {
            t.remove(&dir)?;
            t.remove(&format!("/sys/bus/platform/devices/{device}"))?;
        }
        if fb.present && fb.bound {
            t.symlink(
                &format!("{dir}/driver"),
                &format!("../../../bus/platform/drivers/{}", fb.spec.driver),
            )?;
        } else {
            t.remove(&format!("{dir}/driver"))?;
        }
    }
    render_iomem(t, model)
}

/// Each device's BARs, with the firmware frame buffer's claim nested in the one holding it.
fn render_iomem(t: &Tree, model: &Model) -> io::Result<()> {
    let claim = model
        .firmware_fb
        .as_ref()
        .filter(|fb| fb.present && fb.bound)
        .map(|fb| (fb.spec.range, fb.spec.claim.as_str()));
    let mut text = String::new();
    for dev in model.devices.values() {
        for (_, start, end) in bar_ranges(&dev.spec.bars) {
            text += &format!("{start:08x}-{end:08x} : {}\n", dev.spec.bdf);
            if let Some(((s, e), name)) = claim.filter(|((s, e), _)| start <= *s && *e <= end) {
                text += &format!("  {s:08x}-{e:08x} : {name}\n");
            }
        }
    }
    t.file("/proc/iomem", &text)
}
