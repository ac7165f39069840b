//! PCI addresses as the kernel names them under /sys/bus/pci/devices.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A PCI function address, always kept in the full `dddd:bb:dd.f` form.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Bdf {
    /// The PCI domain (segment), 0 on most machines.
    pub domain: u16,
    /// The bus number.
    pub bus: u8,
    /// The device (slot) on the bus.
    pub device: u8,
    /// The function of the device.
    pub function: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{}' is not a PCI address: expected 01:00.0 or 0000:01:00.0 (as lspci -D prints it)", crate::text::shown(.input))]
/// Text that is not a PCI address.
pub struct BdfError {
    input: String,
}

impl Bdf {
    /// The same slot, another function: used to find siblings of a GPU.
    pub fn slot(&self) -> (u16, u8, u8) {
        (self.domain, self.bus, self.device)
    }
}

impl FromStr for Bdf {
    type Err = BdfError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || BdfError {
            input: s.to_string(),
        };
        let (head, function) = s.rsplit_once('.').ok_or_else(err)?;
        let parts: Vec<&str> = head.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [bus, device] => ("0000", *bus, *device),
            [domain, bus, device] => (*domain, *bus, *device),
            _ => return Err(err()),
        };
        let hex = |text: &str, width: usize| {
            (text.len() == width && text.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(text, 16).ok())
                .flatten()
                .ok_or_else(err)
        };
        let bdf = Bdf {
            domain: hex(domain, 4)? as u16,
            bus: hex(bus, 2)? as u8,
            device: hex(device, 2)? as u8,
            function: hex(function, 1)? as u8,
        };
        if bdf.device > 0x1f || bdf.function > 7 {
            return Err(err());
        }
        Ok(bdf)
    }
}

impl TryFrom<String> for Bdf {
    type Error = BdfError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Bdf> for String {
    fn from(b: Bdf) -> String {
        b.to_string()
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl fmt::Debug for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_full_forms_are_the_same_address() {
        let short: Bdf = "01:00.0".parse().unwrap();
        let full: Bdf = "0000:01:00.0".parse().unwrap();
        assert_eq!(short, full);
        assert_eq!(full.to_string(), "0000:01:00.0");
        assert_eq!(
            "0001:0a:1f.7".parse::<Bdf>().unwrap().to_string(),
            "0001:0a:1f.7"
        );
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "",
            "1:00.0",
            "01:00",
            "01:00.8",
            "01:20.0",
            "zz:00.0",
            "0000:01:00.0.1",
            "../../x",
        ] {
            assert!(bad.parse::<Bdf>().is_err(), "{bad} was accepted");
        }
    }
}
