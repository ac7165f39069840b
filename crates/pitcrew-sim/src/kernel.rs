//! What the PCI core does when a sysfs attribute is written.

use std::io;

use crate::console;
use crate::errno::{EACCES, EBUSY, ENODEV};
use crate::model::Model;

fn fail(errno: i32) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(errno))
}

/// Applies a write to `target`, the real (symlink-free) host path of an existing file: device
/// attributes are under `/sys/devices/pciDDDD:00/<bdf>/`.
pub(crate) fn write(model: &mut Model, target: &str, value: &str) -> io::Result<()> {
    // sysfs compares names ignoring one trailing newline, as echo adds it.
    let value = value.strip_suffix('\n').unwrap_or(value);
    let parts: Vec<&str> = target.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["sys", "devices", _host_bridge, bdf, "driver_override"] => {
            set_override(model, bdf, value);
            Ok(())
        }
        ["sys", "devices", _host_bridge, bdf, "reset_method"] => {
            crate::rebar::set_reset_method(model, bdf, value)
        }
        ["sys", "devices", _host_bridge, bdf, attr] if attr.ends_with("_resize") => {
            crate::rebar::resize(model, bdf, attr, value)
        }
        ["sys", "bus", "pci", "drivers", driver, "bind"] => bind(model, driver, value),
        ["sys", "bus", "pci", "drivers", driver, "unbind"] => unbind(model, driver, value),
        // Recorded by the caller; they never change matching here: the engine must not use them.
        ["sys", "bus", "pci", "drivers", _, "new_id" | "remove_id"] => Ok(()),
        ["sys", "bus", "pci", "drivers_probe"] => probe(model, value),
        ["sys", "devices", "virtual", "vtconsole", vtcon, "bind"] => {
            console::write_vtconsole(model, vtcon, value)
        }
        ["sys", "bus", "platform", "drivers", driver, verb @ ("bind" | "unbind")] => {
            console::write_platform(model, driver, verb, value)
        }
        _ => fail(EACCES),
    }
}

fn set_override(model: &mut Model, bdf: &str, value: &str) {
    if let Some(dev) = model.devices.get_mut(bdf) {
        dev.driver_override = (!value.is_empty()).then(|| value.to_string());
    }
}

fn bind(model: &mut Model, driver: &str, bdf: &str) -> io::Result<()> {
    let Some(dev) = model.devices.get(bdf) else {
        return fail(ENODEV);
    };
    if dev.driver.is_some() {
        return fail(EBUSY);
    }
    if !model.matches(bdf, driver) {
        return fail(ENODEV);
    }
    model.bind(bdf, driver);
    Ok(())
}

fn unbind(model: &mut Model, driver: &str, bdf: &str) -> io::Result<()> {
    match model.devices.get(bdf) {
        Some(dev) if dev.driver.as_deref() == Some(driver) => {
            model.unbind(bdf);
            Ok(())
        }
        _ => fail(ENODEV),
    }
}

/// `drivers_probe`: an unbound device goes to its override, else to its native driver, when
/// that driver is loaded; otherwise it stays unbound without an error.
fn probe(model: &mut Model, bdf: &str) -> io::Result<()> {
    let Some(dev) = model.devices.get(bdf) else {
        return fail(ENODEV);
    };
    if dev.driver.is_some() {
        return Ok(());
    }
    let candidate = dev
        .driver_override
        .clone()
        .or_else(|| dev.spec.native_driver.clone());
    if let Some(driver) = candidate {
        if model.driver_loaded(&driver) {
            model.bind(bdf, &driver);
        }
    }
    Ok(())
}

/// The device a write is about: the one whose attribute it is, or the one named in the value
/// of a bind, unbind or drivers_probe.
pub(crate) fn device_of(target: &str, value: &str) -> Option<String> {
    let value = value.strip_suffix('\n').unwrap_or(value);
    let parts: Vec<&str> = target.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["sys", "devices", _host_bridge, bdf, _attr] => Some(bdf.to_string()),
        ["sys", "bus", "pci", "drivers", _, "bind" | "unbind"]
        | ["sys", "bus", "pci", "drivers_probe"] => Some(value.to_string()),
        _ => None,
    }
}

/// The device an unbind write detaches.
pub(crate) fn unbind_target(target: &str, value: &str) -> Option<String> {
    target
        .ends_with("/unbind")
        .then(|| value.strip_suffix('\n').unwrap_or(value).to_string())
}
