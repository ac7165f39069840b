//! What is fuzzed: each parser pitcrew runs on input it does not control.

mod bdf;
mod config;
mod hook;
mod names;
mod runfiles;
mod xml;

use crate::Target;

pub fn all() -> Vec<Box<dyn Target>> {
    vec![
        Box::new(xml::DomainXml),
        Box::new(config::ConfigText),
        Box::new(bdf::PciAddress),
        Box::new(names::Names::new()),
        Box::new(hook::HookArgv::new()),
        Box::new(runfiles::RunFiles::new()),
    ]
}

/// Untrusted bytes as the text pitcrew would get (argv and files are read as UTF-8).
pub fn text(input: &[u8]) -> String {
    String::from_utf8_lossy(input).into_owned()
}
