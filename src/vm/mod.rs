//! VMs as libvirt names and describes them: checked names, and the PCI devices the domain XML
//! (on the hook's stdin) passes through. libvirt says "domain"; pitcrew says VM, and keeps
//! "domain" for the PCI domain of an address.

mod name;

pub use name::{systemd_escape, NameError, VmName};

use crate::bdf::Bdf;
use crate::host::{pci, Host};
use crate::text::shown;
use std::io::Read;

/// libvirt's XML for a VM is a few KiB; anything this large is not a domain definition.
pub const MAX_XML_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
/// Why the domain XML on the hook's stdin is not used.
pub enum XmlError {
    #[error("cannot read the domain XML from stdin: {0}")]
    /// Reading stdin failed (or it was not UTF-8).
    Read(#[from] std::io::Error),
    #[error("the domain XML is larger than {} MiB", MAX_XML_BYTES / 1024 / 1024)]
    /// It is larger than any domain definition.
    TooLarge,
    #[error("the domain XML is not valid XML: {}", crate::text::one_line(&.0.to_string(), 300))]
    /// It is not well-formed XML.
    Parse(#[from] roxmltree::Error),
    #[error("the domain XML has no <domain> root element")]
    /// Its root element is not `<domain>`.
    NotDomain,
    #[error("<hostdev> source address <address {0}/> in the domain XML is not a PCI address")]
    /// A PCI hostdev's address is not one (the attributes as written, cut and escaped).
    Address(String),
}

/// Reads the XML, refusing more than [`MAX_XML_BYTES`] (libvirt closes the pipe after writing,
/// so this never waits once the document is in).
pub fn read_xml(input: impl Read) -> Result<String, XmlError> {
    let mut text = String::new();
    input.take(MAX_XML_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_XML_BYTES {
        return Err(XmlError::TooLarge);
    }
    Ok(text)
}

/// Every `<hostdev type='pci'>` source address under `<devices>`, in document order.
pub fn pci_hostdevs(xml: &str) -> Result<Vec<Bdf>, XmlError> {
    // roxmltree refuses DTDs by default, so entity-expansion bombs never expand.
    let doc = roxmltree::Document::parse(xml)?;
    let root = doc.root_element();
    if !root.has_tag_name("domain") {
        return Err(XmlError::NotDomain);
    }
    let mut found = Vec::new();
    let hostdevs = root
        .children()
        .filter(|n| n.has_tag_name("devices"))
        .flat_map(|devices| devices.children())
        .filter(|n| n.has_tag_name("hostdev") && n.attribute("type") == Some("pci"));
    for hostdev in hostdevs {
        let address = hostdev
            .children()
            .filter(|n| n.has_tag_name("source"))
            .flat_map(|source| source.children())
            .find(|n| n.has_tag_name("address"));
        if let Some(address) = address {
            let bdf = address_to_bdf(&address)?;
            if !found.contains(&bdf) {
                found.push(bdf);
            }
        }
    }
    Ok(found)
}

/// `<address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>` (domain may be absent).
fn address_to_bdf(address: &roxmltree::Node) -> Result<Bdf, XmlError> {
    let attr = |name: &str| address.attribute(name).map(|v| v.trim_start_matches("0x"));
    // The attributes as written, each cut and escaped: the XML is untrusted.
    let shown = || {
        address
            .attributes()
            .take(8)
            .map(|a| format!("{}='{}'", shown(a.name()), shown(a.value())))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (Some(bus), Some(slot), Some(function)) = (attr("bus"), attr("slot"), attr("function"))
    else {
        return Err(XmlError::Address(shown()));
    };
    let domain = attr("domain").unwrap_or("0");
    let number = |text: &str| u32::from_str_radix(text, 16).ok();
    match (number(domain), number(bus), number(slot), number(function)) {
        (Some(d), Some(b), Some(s), Some(f)) if d <= 0xffff && b <= 0xff => {
            format!("{d:04x}:{b:02x}:{s:02x}.{f:x}")
                .parse()
                .map_err(|_| XmlError::Address(shown()))
        }
        _ => Err(XmlError::Address(shown())),
    }
}

/// True when sysfs says the function is a display controller (PCI base class 0x03).
fn is_display_controller(host: &Host, bdf: Bdf) -> bool {
    pci::class(host, bdf).is_ok_and(pci::is_gpu_class)
}

/// The GPUs among a domain's PCI hostdevs; the engine widens each to its IOMMU group.
pub fn gpu_hostdevs(host: &Host, xml: &str) -> Result<Vec<Bdf>, XmlError> {
    Ok(pci_hostdevs(xml)?
        .into_iter()
        .filter(|bdf| is_display_controller(host, *bdf))
        .collect())
}
