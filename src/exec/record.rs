//! The state record: what pitcrew changed, so a reattach restores exactly that and a run after a
//! crash knows where the last one stopped. Kept in /run (gone at reboot, like the bindings).

use crate::bdf::Bdf;
use crate::host::Host;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

pub const DIR: &str = "/run/pitcrew";
const FILE: &str = "/run/pitcrew/state.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
pub struct Lent {
    pub driver: Option<String>,
    pub owner: Option<String>,
}

impl Record {
    pub fn load(host: &Host) -> io::Result<Record> {
        match std::fs::read(host.path(FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is damaged ({e}); remove it if no device is lent to a VM",
                        host.path(FILE).display()
                    ),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Record::default()),
            Err(e) => Err(e),
        }
    }

    /// Replaces the record atomically (write a sibling, fsync, rename), readable by root only.
    pub fn save(&self, host: &Host) -> io::Result<()> {
        ensure_dir(host)?;
        let path = host.path(FILE);
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&serde_json::to_vec_pretty(self).expect("record serialises"))?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    }

    pub fn is_empty(&self) -> bool {
        self.lent.is_empty() && self.unloaded_modules.is_empty() && self.stopped_units.is_empty()
    }
}

/// Creates /run/pitcrew as 0700 and tightens it if it exists with a looser mode.
pub fn ensure_dir(host: &Host) -> io::Result<()> {
    let dir = host.path(DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
}
