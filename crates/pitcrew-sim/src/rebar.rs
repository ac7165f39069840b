//! What the PCI core does with a write to `resourceN_resize` or `reset_method`.

use std::io;

use crate::errno::{EBUSY, EINVAL, ENODEV, ENOSPC};
use crate::model::Model;

fn fail(errno: i32) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(errno))
}

/// A bit number (kstrtoul with base 0: decimal, 0x hex or 0 octal) the BAR offers, written
/// while no driver is bound; a size the bridge window cannot fit leaves the old one.
pub(crate) fn resize(model: &mut Model, bdf: &str, attr: &str, value: &str) -> io::Result<()> {
    let Some(dev) = model.devices.get_mut(bdf) else {
        return fail(ENODEV);
    };
    let Some(index) = attr
        .strip_prefix("resource")
        .and_then(|rest| rest.strip_suffix("_resize"))
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return fail(EINVAL);
    };
    if dev.driver.is_some() {
        return fail(EBUSY);
    }
    let bit = match value.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None if value.len() > 1 && value.starts_with('0') => u32::from_str_radix(value, 8),
        None => value.parse(),
    };
    let offered = dev
        .spec
        .resizable
        .iter()
        .find(|(bar, _)| *bar == index)
        .map_or(0, |(_, sizes)| *sizes);
    let Some(bit) = bit
        .ok()
        .filter(|bit| *bit < 64 && offered & (1 << bit) != 0)
    else {
        return fail(EINVAL);
    };
    let bytes = (1u64 << 20) << bit;
    if dev.spec.bar_window.is_some_and(|window| bytes > window) {
        return fail(ENOSPC);
    }
    if let Some(entry) = dev.bars.iter_mut().find(|b| b.0 == index) {
        entry.2 = bytes;
    }
    Ok(())
}

/// The methods in the order given, each one the function supports (the list it was built
/// with); `default` for that list again, nothing for none. Any other word: EINVAL, and the old
/// list stays, as since Linux 6.x.
pub(crate) fn set_reset_method(model: &mut Model, bdf: &str, value: &str) -> io::Result<()> {
    let Some(dev) = model.devices.get_mut(bdf) else {
        return fail(ENODEV);
    };
    let supported = dev.spec.reset_method.clone().unwrap_or_default();
    let value = value.trim();
    if value == "default" {
        dev.reset_method = dev.spec.reset_method.clone();
        return Ok(());
    }
    let names: Vec<&str> = value.split(' ').filter(|n| !n.is_empty()).collect();
    if names
        .iter()
        .any(|name| !supported.split(' ').any(|s| s == *name))
    {
        return fail(EINVAL);
    }
    dev.reset_method = Some(names.join(" "));
    Ok(())
}
