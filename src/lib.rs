//! GPU Pit Crew: hands a GPU from its host driver to vfio-pci and back.

pub mod bdf;
pub mod cli;
pub mod config;
pub mod error;
pub mod exec;
#[cfg(feature = "fault-injection")]
mod fault;
pub mod handover;
pub mod hook;
pub mod host;
pub mod install;
pub mod plan;
pub mod policy;
pub mod record;
pub mod runfile;
pub mod snapshot;
pub mod status;
pub mod vendor;
pub mod vm;
pub mod wait;

pub use error::Error;
