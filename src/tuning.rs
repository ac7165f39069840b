//! What a lend changes on the card itself, set per VM (and per device) by the config: the size
//! of a resizable BAR and the reset methods the kernel may use on a function.

use crate::bdf::Bdf;
use serde::Serialize;
use std::collections::BTreeMap;

/// Bit 0 of a resizable BAR's size bitmap stands for 1 MiB; bit n for 1 MiB << n.
pub const MIB: u64 = 1 << 20;

/// The reset methods the kernel knows (`reset_method`, Linux 5.15+), in its priority order.
pub const RESET_METHODS: [&str; 7] = [
    "device_specific",
    "acpi",
    "flr",
    "af_flr",
    "pm",
    "bus",
    "cxl_bus",
];

/// The size a lend gives a function's resizable BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rebar {
    /// Leave it as the host has it.
    #[default]
    Keep,
    /// The smallest size the card offers.
    Smallest,
    /// This many bytes (a power of two, 1 MiB or more).
    Size(u64),
}

impl Rebar {
    /// `keep`, `smallest` or a size such as `256M`, `8G` (`MiB`/`GiB` also read).
    pub fn parse(text: &str) -> Result<Rebar, String> {
        match text {
            "keep" => return Ok(Rebar::Keep),
            "smallest" => return Ok(Rebar::Smallest),
            _ => {}
        }
        let bad = || {
            format!(
                "\"{}\" is not a BAR size: expected \"keep\", \"smallest\" or a power of two from 1M \
                 up, such as \"256M\" or \"8G\"",
                crate::text::shown(text)
            )
        };
        let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = match &text[digits.len()..] {
            "M" | "MiB" => MIB,
            "G" | "GiB" => MIB << 10,
            "T" | "TiB" => MIB << 20,
            _ => return Err(bad()),
        };
        let bytes = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit))
            .filter(|b| b.is_power_of_two())
            .ok_or_else(bad)?;
        Ok(Rebar::Size(bytes))
    }
}

/// The reset methods a lend gives a function.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResetMethod {
    /// Leave them as the host has them.
    #[default]
    Keep,
    /// These, in this order, as `reset_method` takes them (space-separated).
    Set(String),
}

impl ResetMethod {
    /// `keep` or a list of the kernel's method names, separated by spaces or commas.
    pub fn parse(text: &str) -> Result<ResetMethod, String> {
        if text == "keep" {
            return Ok(ResetMethod::Keep);
        }
        let names: Vec<&str> = text
            .split([' ', ','])
            .filter(|name| !name.is_empty())
            .collect();
        if names.is_empty() {
            return Err(
                "an empty reset_method would leave the guest no way to reset the card: \
                 name methods (\"device_specific\", \"flr\", \"bus\"...) or \"keep\""
                    .into(),
            );
        }
        for (n, name) in names.iter().enumerate() {
            if !RESET_METHODS.contains(name) {
                return Err(format!(
                    "\"{}\" is no reset method: expected \"keep\" or some of {}",
                    crate::text::shown(name),
                    RESET_METHODS.join(", ")
                ));
            }
            if names[..n].contains(name) {
                return Err(format!("reset method {name} is named twice"));
            }
        }
        Ok(ResetMethod::Set(names.join(" ")))
    }
}

/// What a lend does to one function's BAR and reset methods.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Tuning {
    /// The size of its largest 64-bit prefetchable resizable BAR.
    pub rebar: Rebar,
    /// A resize the kernel refuses fails the lend instead of leaving the BAR as it is.
    pub rebar_required: bool,
    /// Its reset methods.
    pub reset_method: ResetMethod,
}

/// The tuning of every function a VM is lent: its own, else the VM's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct LendTuning {
    /// What the VM's table (or `[defaults]`) says.
    pub all: Tuning,
    /// What a `[vm."name".device."<address>"]` table says for that function.
    pub devices: BTreeMap<Bdf, Tuning>,
}

impl LendTuning {
    /// The tuning of one function.
    pub fn of(&self, bdf: Bdf) -> &Tuning {
        self.devices.get(&bdf).unwrap_or(&self.all)
    }
}

/// A size as people read it: `256 MiB`, `8 GiB`, `4 KiB`.
pub fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 40 && b % (1 << 40) == 0 => format!("{} TiB", b >> 40),
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{} KiB", b >> 10),
    }
}

/// A size as the config writes it: `256M`, `8G`.
pub fn config_size(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{}G", bytes >> 30)
    } else {
        format!("{}M", bytes >> 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_lists_parse() {
        assert_eq!(Rebar::parse("256M"), Ok(Rebar::Size(256 * MIB)));
        assert_eq!(Rebar::parse("8G"), Ok(Rebar::Size(8 << 30)));
        assert_eq!(Rebar::parse("smallest"), Ok(Rebar::Smallest));
        for bad in ["300M", "0M", "8", "8X", "M", ""] {
            assert!(Rebar::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ResetMethod::parse("device_specific, bus"),
            Ok(ResetMethod::Set("device_specific bus".into()))
        );
        for bad in ["", "reboot", "flr flr", "default"] {
            assert!(ResetMethod::parse(bad).is_err(), "{bad}");
        }
    }
}
