//! GPU Pit Crew: hands a GPU from its host driver to vfio-pci and back.

pub mod bdf;
pub mod cli;
pub mod host;
pub mod error;
pub mod handover;
pub mod policy;

pub use error::Error;
