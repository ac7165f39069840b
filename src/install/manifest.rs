//! The record of what `pitcrew install` wrote, so `uninstall` removes exactly that.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Dir,
    File,
    Symlink,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Absolute path on the host (not under the staging root).
    pub path: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Created by install, in creation order (directories before what they hold).
    pub entries: Vec<Entry>,
    /// True when install created the config; false when it only appended VM tables.
    pub config_created: bool,
    /// The config as it was before install first changed it, restored by `uninstall --purge`.
    pub config_original: Option<String>,
}

impl Manifest {
    pub fn owns(&self, path: &str) -> bool {
        self.entries.iter().any(|e| e.path == path)
    }

    pub fn record(&mut self, path: &str, kind: Kind) {
        if !self.owns(path) {
            self.entries.push(Entry {
                path: path.to_string(),
                kind,
            });
        }
    }
}
