//! A function's resizable BARs and reset methods as sysfs shows them, and the writes that change
//! them (`resourceN_resize`, `reset_method`).

use super::pci::{self, WriteError};
use super::Host;
use crate::bdf::Bdf;
use serde::Serialize;
use std::time::Duration;

/// `resource` flags: a memory BAR, prefetchable, 64-bit (include/linux/ioport.h).
const IORESOURCE_MEM: u64 = 0x200;
const IORESOURCE_PREFETCH: u64 = 0x2000;
const IORESOURCE_MEM_64: u64 = 0x0010_0000;

/// A BAR the Resizable BAR capability covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResizableBar {
    /// Its index (0-5).
    pub bar: usize,
    /// Its size now, in bytes (its length in `resource`).
    pub size: u64,
    /// The sizes the card offers: bit n stands for 1 MiB << n (`resourceN_resize`).
    pub offered: u64,
    /// A 64-bit prefetchable memory BAR: the kind that holds a GPU's VRAM.
    pub prefetchable_64: bool,
}

impl ResizableBar {
    /// Every size offered, smallest first, in bytes.
    pub fn sizes(&self) -> Vec<u64> {
        (0..64)
            .filter(|bit| self.offered & (1 << bit) != 0)
            .map(|bit| crate::tuning::MIB.checked_shl(bit).unwrap_or(u64::MAX))
            .collect()
    }

    /// Whether the card offers `bytes` for it.
    pub fn offers(&self, bytes: u64) -> bool {
        self.sizes().contains(&bytes)
    }
}

/// One line of `resource`: start, end, flags.
fn line(text: &str, bar: usize) -> Option<(u64, u64, u64)> {
    let hex = |word: &str| u64::from_str_radix(word.trim_start_matches("0x"), 16).ok();
    let mut words = text.lines().nth(bar)?.split_whitespace().map(hex);
    Some((words.next()??, words.next()??, words.next()??))
}

/// The function's resizable BARs, read from `resource` and each `resourceN_resize`.
pub fn resizable(host: &Host, bdf: Bdf) -> Vec<ResizableBar> {
    let resource = host
        .read(pci::device_path(bdf, "resource"))
        .unwrap_or_default();
    (0..6)
        .filter_map(|bar| {
            let offered = host
                .read(pci::device_path(bdf, &format!("resource{bar}_resize")))
                .ok()?;
            let offered = u64::from_str_radix(offered.trim(), 16).ok()?;
            let (start, end, flags) = line(&resource, bar)?;
            Some(ResizableBar {
                bar,
                size: if end > start { end - start + 1 } else { 0 },
                offered,
                prefetchable_64: flags & IORESOURCE_MEM != 0
                    && flags & IORESOURCE_PREFETCH != 0
                    && flags & IORESOURCE_MEM_64 != 0,
            })
        })
        .collect()
}

/// The size of one BAR now, from `resource`.
pub fn size(host: &Host, bdf: Bdf, bar: usize) -> Option<u64> {
    let resource = host.read(pci::device_path(bdf, "resource")).ok()?;
    let (start, end, _) = line(&resource, bar)?;
    (end > start).then(|| end - start + 1)
}

/// Writes the bit number of `bytes` to `resourceN_resize`. The kernel takes it only while no
/// driver is bound (vfio-pci counts) and puts the old size back when the bridge cannot fit it.
pub fn resize(
    host: &Host,
    bdf: Bdf,
    bar: usize,
    bytes: u64,
    limit: Duration,
) -> Result<(), WriteError> {
    let bit = (bytes / crate::tuning::MIB).trailing_zeros();
    pci::write(
        host,
        pci::device_path(bdf, &format!("resource{bar}_resize")),
        &bit.to_string(),
        limit,
    )
}

/// `reset_method` as the kernel lists it; None when the file is absent (the kernel found no way
/// to reset the function), empty when someone disabled every method.
pub fn reset_methods(host: &Host, bdf: Bdf) -> Option<String> {
    host.read(pci::device_path(bdf, "reset_method"))
        .ok()
        .map(|methods| methods.trim().to_string())
}

/// Writes the methods, in priority order; the kernel keeps the old list when it refuses one.
pub fn set_reset_methods(
    host: &Host,
    bdf: Bdf,
    methods: &str,
    limit: Duration,
) -> Result<(), WriteError> {
    // An empty write would be the same as none at all: sysfs needs at least a newline.
    pci::write(
        host,
        pci::device_path(bdf, "reset_method"),
        &format!("{methods}\n"),
        limit,
    )
}
