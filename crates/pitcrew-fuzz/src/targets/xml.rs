//! The domain XML libvirt passes the hook: parsing never panics, errors are one bounded line,
//! and every address found is a valid PCI address.

use crate::rng::Rng;
use crate::{one_bounded_line, outcome_of, Target};
use pitcrew::{pci_hostdevs, read_xml};

pub struct DomainXml;

pub const XML_TOKENS: &[&str] = &[
    "<domain type='kvm'>",
    "</domain>",
    "<devices>",
    "</devices>",
    "<hostdev mode='subsystem' type='pci' managed='yes'>",
    "</hostdev>",
    "<source>",
    "</source>",
    "<address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>",
    "<address",
    "/>",
    "bus='",
    "slot='",
    "function='",
    "domain='",
    "0x",
    "0xffffffff",
    "type='pci'",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?xml version='1.0'?>",
    "<!DOCTYPE d [<!ENTITY a 'x'>]>",
    "&a;",
    "&amp;",
    "&#10;",
    "&#x1F;",
    "&#0;",
    "xmlns:q='urn:x'",
    "<q:hostdev>",
    "<name>",
    "</name>",
];

/// A domain with a few hostdevs of random addresses, some of them off.
pub fn domain_xml(rng: &mut Rng) -> String {
    let mut devs = String::new();
    for _ in 0..rng.size(6) {
        let attr = |rng: &mut Rng, name: &str, max: u64| -> String {
            match rng.below(6) {
                0 => String::new(),
                1 => format!(" {name}='{}'", rng.next_u64()),
                2 => format!(" {name}='0x{}'", rng.pick(&["", "g", "-1", " 1", "1 "])),
                _ => format!(" {name}='0x{:x}'", rng.next_u64() % (max + 2)),
            }
        };
        let address = format!(
            "<address{}{}{}{}/>",
            attr(rng, "domain", 0xffff),
            attr(rng, "bus", 0xff),
            attr(rng, "slot", 0x1f),
            attr(rng, "function", 7)
        );
        let kind = rng.pick(&["pci", "usb", "scsi", "mdev"]);
        devs += &format!(
            "<hostdev mode='subsystem' type='{kind}'><source>{address}</source></hostdev>"
        );
    }
    format!("<domain type='kvm'><name>vm</name><devices>{devs}</devices></domain>")
}

impl Target for DomainXml {
    fn name(&self) -> &'static str {
        "domain-xml"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let mut rng = Rng::new(1);
        vec![
            domain_xml(&mut rng).into_bytes(),
            b"<domain><devices><hostdev type='pci'><source><address bus='0x01' slot='0x00' function='0x0'/></source></hostdev></devices></domain>".to_vec(),
            b"<domain/>".to_vec(),
            b"<network/>".to_vec(),
        ]
    }

    fn dictionary(&self) -> &'static [&'static str] {
        XML_TOKENS
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        domain_xml(rng).into_bytes()
    }

    fn check(&mut self, input: &[u8]) -> Result<String, String> {
        let xml = match read_xml(input) {
            Ok(xml) => xml,
            Err(e) => {
                let message = e.to_string();
                one_bounded_line("reading the XML", &message, 1024)?;
                return Ok(outcome_of(&message));
            }
        };
        match pci_hostdevs(&xml) {
            Ok(found) => {
                for bdf in &found {
                    if bdf.to_string().parse() != Ok(*bdf) {
                        return Err(format!("address {bdf} does not read back"));
                    }
                }
                Ok(format!("ok {}", found.len().min(3)))
            }
            Err(e) => {
                let message = e.to_string();
                one_bounded_line("XmlError", &message, 1024)?;
                Ok(outcome_of(&message))
            }
        }
    }
}
