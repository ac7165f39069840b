//! PCI addresses (command line, config, XML, state record): a parsed address prints in the
//! kernel's form and parses back to itself.

use crate::rng::Rng;
use crate::{one_bounded_line, outcome_of, Target};
use pitcrew::Bdf;

pub struct PciAddress;

impl Target for PciAddress {
    fn name(&self) -> &'static str {
        "pci-address"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        [
            "01:00.0",
            "0000:01:00.0",
            "ffff:ff:1f.7",
            "0000:00:20.0",
            "01:00.8",
            "1:0.0",
            "01:00.",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect()
    }

    fn dictionary(&self) -> &'static [&'static str] {
        &[
            ":", ".", "0000", "ff", "1f", "7", "8", "0x", "+", "-", "\u{0660}",
        ]
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let hex = |rng: &mut Rng, n: usize| -> String {
            (0..n)
                .map(|_| *rng.pick(b"0123456789abcdefABCDEFg+ "))
                .map(char::from)
                .collect()
        };
        let domain = if rng.one_in(2) {
            format!("{}:", hex(rng, 4))
        } else {
            String::new()
        };
        let (bus, dev, fun) = (rng.below(4) + 1, rng.below(4) + 1, rng.below(3) + 1);
        format!(
            "{domain}{}:{}.{}",
            hex(rng, bus),
            hex(rng, dev),
            hex(rng, fun)
        )
        .into_bytes()
    }

    fn check(&mut self, input: &[u8]) -> Result<String, String> {
        let text = super::text(input);
        match text.parse::<Bdf>() {
            Ok(bdf) => {
                let shown = bdf.to_string();
                let form = shown.len() == 12
                    && shown.bytes().enumerate().all(|(i, b)| match i {
                        4 | 7 => b == b':',
                        10 => b == b'.',
                        _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
                    });
                if !form || shown.parse::<Bdf>() != Ok(bdf) {
                    return Err(format!(
                        "{text:?} parsed to {shown}, which does not read back"
                    ));
                }
                Ok(format!("ok {}", text.len().min(16)))
            }
            Err(e) => {
                let message = e.to_string();
                one_bounded_line("BdfError", &message, 1024)?;
                // The message is the same for every bad address: its length tells them apart.
                Ok(format!("{} {}", outcome_of(&message), text.len().min(64)))
            }
        }
    }
}
