//! GPU Pit Crew: hands a GPU from its host driver to vfio-pci and back.

pub mod bdf;
pub mod cli;
pub mod error;
pub mod handover;
pub mod host;
pub mod policy;

pub use error::Error;
pub mod exec;
pub mod plan;
pub mod snapshot;
pub mod status;
pub mod vendor;
pub mod wait;
