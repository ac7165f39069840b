//! Each function's memory BARs, and for a resizable one its size, the sizes the card offers and
//! what a lend will make of it: a BAR larger than the guest's 64-bit MMIO window leaves the
//! guest with a black screen or `VFIO_MAP_DMA failed`.

use super::Check;
use crate::config::CONFIG_PATH;
use crate::host::pci::{self, PciDevice};
use crate::host::Host;
use crate::plan::tuning::{chosen, wanted};
use crate::tuning::{config_size, size_text, Tuning};

/// A BAR this large is the resizable-BAR kind; OVMF before edk2-stable202211 maps 32 GiB of
/// 64-bit MMIO in all, and guests then fail the card (Windows: code 12 or 43).
const LARGE_BAR: u64 = 8 << 30;

pub(super) fn check(host: &Host, d: &PciDevice, tuning: &Tuning, name: String) -> Check {
    let Ok(text) = host.read(pci::device_path(d.bdf, "resource")) else {
        return Check::ok(name, "no resource file to read BAR sizes from");
    };
    let sizes: Vec<(usize, u64)> = text
        .lines()
        .take(6)
        .enumerate()
        .filter_map(|(n, line)| {
            let mut fields = line
                .split_whitespace()
                .map(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16));
            let (Some(Ok(start)), Some(Ok(end))) = (fields.next(), fields.next()) else {
                return None;
            };
            (end > start).then(|| (n, end - start + 1))
        })
        .collect();
    let shown: Vec<String> = sizes
        .iter()
        .map(|(n, size)| {
            let offered = d.resizable_bars.iter().find(|b| b.bar == *n).map(|b| {
                let all = b.sizes();
                match (all.first(), all.last()) {
                    (Some(low), Some(high)) if low != high => {
                        format!(" (resizable: {} to {})", size_text(*low), size_text(*high))
                    }
                    _ => " (resizable)".to_string(),
                }
            });
            format!("BAR{n} {}{}", size_text(*size), offered.unwrap_or_default())
        })
        .collect();
    let finding = if shown.is_empty() {
        "no memory BARs".to_string()
    } else {
        shown.join(", ")
    };
    if let Some(bar) = chosen(&d.resizable_bars) {
        if let Some(to) = wanted(tuning.rebar, bar) {
            if !bar.offers(to) {
                let offered: Vec<String> = bar.sizes().into_iter().map(config_size).collect();
                return Check::fail(
                    name,
                    format!(
                        "{finding}: the config asks for BAR{} of {}, which the card does not \
                         offer, so a lend would be refused",
                        bar.bar,
                        config_size(to)
                    ),
                    format!(
                        "set rebar to one of {}, \"smallest\" or \"keep\" in {CONFIG_PATH}",
                        offered.join(", ")
                    ),
                );
            }
            return Check::ok(
                name,
                format!("{finding}; a lend makes BAR{} {}", bar.bar, size_text(to)),
            );
        }
    }
    match sizes.iter().find(|(_, size)| *size > LARGE_BAR) {
        Some((n, size)) => {
            let fix = if chosen(&d.resizable_bars).is_some_and(|bar| bar.bar == *n) {
                format!(
                    "if the guest shows a black screen, error 12/43 or VFIO_MAP_DMA failed, set \
                     rebar = \"smallest\" (or a size such as \"8G\") for the VM in {CONFIG_PATH}, \
                     or give the guest a larger 64-bit MMIO window: <maxphysaddr \
                     mode='passthrough'/> in the domain's <cpu>, or for OVMF -fw_cfg \
                     opt/ovmf/X-PciMmio64Mb,string=65536"
                )
            } else {
                "if the guest shows a black screen, error 12/43 or VFIO_MAP_DMA failed, turn \
                 Resizable BAR off in the firmware or give the guest a larger 64-bit MMIO \
                 window: <maxphysaddr mode='passthrough'/> in the domain's <cpu>, or for OVMF \
                 -fw_cfg opt/ovmf/X-PciMmio64Mb,string=65536"
                    .to_string()
            };
            Check::warn(
                name,
                format!(
                    "{finding}: BAR{n} of {} needs a large 64-bit window in the guest",
                    size_text(*size)
                ),
                fix,
            )
        }
        None => Check::ok(name, finding),
    }
}
