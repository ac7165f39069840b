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
/// A record names a few functions and modules; this is far beyond any real one.
const MAX_BYTES: u64 = 1024 * 1024;

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
    /// Functions a write of pitcrew's was still stuck on in the kernel, with the pid of the
    /// write helper waiting there: left alone until that process is gone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stuck: BTreeMap<Bdf, u32>,
    /// Kernel consoles pitcrew unbound from the frame buffers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unbound_consoles: Vec<UnboundConsole>,
    /// Firmware frame buffers pitcrew unbound from their drivers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub released_framebuffers: Vec<ReleasedFramebuffer>,
}

/// A vtconsole unbound for some functions: it is bound again when they come back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnboundConsole {
    /// Its sysfs entry (`vtcon1`).
    pub vtcon: String,
    /// Its driver's name (`(M) frame buffer device`).
    pub name: String,
    /// The functions it was unbound for.
    pub functions: Vec<Bdf>,
}

/// A firmware frame buffer device unbound because it held `bdf`'s memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasedFramebuffer {
    /// The platform device (`efi-framebuffer.0`).
    pub device: String,
    /// The driver it had.
    pub driver: String,
    /// The function whose memory it held.
    pub bdf: Bdf,
    /// The functions it was released for.
    pub functions: Vec<Bdf>,
}

/// A module unloaded for some functions: it comes back when they do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unloaded {
    pub module: String,
    pub functions: Vec<Bdf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
/// A function pitcrew detached.
pub struct Lent {
    /// The driver it goes back to (None: it was unbound).
    pub driver: Option<String>,
    /// The VM it was lent to.
    pub owner: Option<String>,
    /// The sizes (bytes) its resized BARs had before the lend, by BAR index.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bars: BTreeMap<usize, u64>,
    /// The reset methods it had before the lend changed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_method: Option<String>,
}

impl Record {
    /// Reads the record; none on disk means pitcrew changed nothing since boot.
    pub fn load(host: &Host) -> io::Result<Record> {
        let path = path(host);
        let damaged = |reason: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is damaged ({reason}); remove it if no device is lent to a VM",
                    path.display()
                ),
            )
        };
        match runfile::read_private(host, &path, MAX_BYTES) {
            // serde's messages quote what they met verbatim: cut and escaped, it is one line.
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .map_err(|e| damaged(crate::text::one_line(&e.to_string(), 200))),
            Ok(None) => Ok(Record::default()),
            Err(RunFileError::Io { source, .. }) => Err(source),
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
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
