//! The state record: what pitcrew changed, so a reattach restores exactly that and a run after a
//! crash knows where the last one stopped. Kept in /run (gone at reboot, like the bindings).

use crate::bdf::Bdf;
use crate::host::Host;
use crate::runfile::{self, RunFileError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;

pub const DIR: &str = runfile::RUN_DIR;
const NAME: &str = "state.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
/// What pitcrew changed and has not undone yet.
pub struct Record {
    /// Functions pitcrew moved to vfio-pci, with the driver each had before.
    #[serde(default)]
    pub lent: BTreeMap<Bdf, Lent>,
    /// Modules pitcrew unloaded, in the order it unloaded them.
    #[serde(default)]
    pub unloaded_modules: Vec<Unloaded>,
    /// Units pitcrew stopped and has not started again yet.
    #[serde(default)]
    pub stopped_units: Vec<String>,
}

/// A module unloaded for some functions: it comes back when they do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unloaded {
    pub module: String,
    pub functions: Vec<Bdf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// A function pitcrew detached.
pub struct Lent {
    /// The driver it goes back to (None: it was unbound).
    pub driver: Option<String>,
    /// The VM it was lent to.
    pub owner: Option<String>,
}

impl Record {
    /// Reads the record; none on disk means pitcrew changed nothing since boot.
    pub fn load(host: &Host) -> io::Result<Record> {
        match std::fs::read(path(host)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is damaged ({e}); remove it if no device is lent to a VM",
                        path(host).display()
                    ),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Record::default()),
            Err(e) => Err(e),
        }
    }

    /// Replaces the record atomically, readable by root only.
    pub fn save(&self, host: &Host) -> Result<(), RunFileError> {
        let dir = runfile::private_dir(host, DIR)?;
        let body = serde_json::to_vec_pretty(self).expect("record serialises");
        runfile::write_atomic(&dir, NAME, &body).map(|_| ())
    }
}

/// Where the record lives under the host's root.
pub fn path(host: &Host) -> std::path::PathBuf {
    host.path(DIR).join(NAME)
}
