//! The config decides what a root-run hook and unit do to the machine, so only root may be able
//! to change it: the file itself and every directory on the way to it, after following links.
//! The file is opened once (without blocking, without following a last link the checks did not
//! see) and the checks are made on what was opened.
//!
//! A refusal's fix touches pitcrew's own files only: the config and its directory
//! `/etc/pitcrew`. Any other directory on the way (`/tmp`, `/etc`, a user's home...) is shared,
//! and loosening or tightening it would change things for everyone else who uses it; the fix is
//! then to keep the config in `/etc/pitcrew` itself, not behind a link.

use super::CONFIG_PATH;
use crate::host::Host;
use crate::text::shell_word;
use crate::untrusted::{self, Last};
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A config is a few KiB; this is far beyond any real one.
pub(crate) const MAX_BYTES: u64 = 1024 * 1024;

/// Why a config is not read.
pub enum Refusal {
    Unreadable(io::Error),
    Insecure(String),
}

/// The content of the config at `path` (already under the host's root), `Ok(None)` when there
/// is none; refused unless the file and each directory above it are only root's to change.
pub fn read_trusted(host: &Host, path: &Path) -> Result<Option<Vec<u8>>, Refusal> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Refusal::Unreadable(e)),
        Ok(_) => {}
    }
    let real = std::fs::canonicalize(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Refusal::Insecure(
            "it is a symbolic link to a file that does not exist: remove the link, or create \
             the file it names"
                .into(),
        ),
        _ => Refusal::Unreadable(e),
    })?;
    // NOFOLLOW: had the last component become a link since canonicalize, it is refused.
    let (file, meta) = untrusted::open_any(&real, Last::NoFollow).map_err(Refusal::Unreadable)?;
    let place = Place::new(host, path, real);
    if !meta.is_file() {
        let fix = if place.in_place() {
            "replace it with a regular file"
        } else {
            "replace the link with a regular file of root's"
        };
        return Err(Refusal::Insecure(format!(
            "{} is {}, not a regular file; {fix}",
            place.subject(),
            untrusted::kind(&meta)
        )));
    }
    place
        .check(&place.real, &meta, &[host.owner()])
        .map_err(Refusal::Insecure)?;
    if meta.len() > MAX_BYTES {
        return Err(Refusal::Insecure(format!(
            "{} is {} bytes; a pitcrew config is at most {MAX_BYTES} bytes",
            place.subject(),
            meta.len()
        )));
    }
    let staged_root = host
        .is_staged()
        .then(|| std::fs::canonicalize(host.root()).unwrap_or_else(|_| host.root().into()));
    for dir in place.real.ancestors().skip(1) {
        // Above a staged root are the builder's own directories (/tmp): not part of the tree.
        if let Some(root) = &staged_root {
            if place.real.starts_with(root) && root.starts_with(dir) && dir != root {
                continue;
            }
        }
        let meta = std::fs::metadata(dir).map_err(Refusal::Unreadable)?;
        place
            .check(dir, &meta, &[0, host.owner()])
            .map_err(Refusal::Insecure)?;
    }
    untrusted::Opened::new(file, place.real)
        .read(MAX_BYTES)
        .map(Some)
        .map_err(Refusal::Unreadable)
}

/// Where the config is found, and so what a refusal may tell the user to change.
struct Place {
    /// Where pitcrew looks for it (under the host's root).
    path: PathBuf,
    /// The file that is read: `path` with every link followed.
    real: PathBuf,
    /// `/etc/pitcrew` (with the links above it followed) when neither it nor the file in it is
    /// a link: then the file and that directory are pitcrew's own to fix in place.
    own_dir: Option<PathBuf>,
    /// `/etc/pitcrew` itself is a link: the fix replaces it.
    dir_linked: bool,
}

impl Place {
    fn new(host: &Host, path: &Path, real: PathBuf) -> Place {
        let dir = host.path(
            Path::new(CONFIG_PATH)
                .parent()
                .expect("an absolute file path"),
        );
        let is_link = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_symlink());
        let dir_linked = is_link(&dir);
        let own_dir = std::fs::canonicalize(&dir).ok().filter(|canonical| {
            !dir_linked && !is_link(path) && real.parent() == Some(canonical.as_path())
        });
        Place {
            path: path.to_path_buf(),
            real,
            own_dir,
            dir_linked,
        }
    }

    fn in_place(&self) -> bool {
        self.own_dir.is_some()
    }

    /// The subject of a finding about the file read: the config itself (the message names it
    /// already), or the file its link leads to.
    fn subject(&self) -> String {
        if self.in_place() {
            "it".into()
        } else {
            format!("it leads to {}, which", self.real.display())
        }
    }

    /// Puts a copy of the file read into `/etc/pitcrew`, replacing the link that leads away
    /// from it: nothing outside pitcrew's own directory changes.
    fn relocate(&self) -> String {
        let (real, path) = (word(&self.real), word(&self.path));
        if self.dir_linked {
            let dir = self.path.parent().expect("the config is in a directory");
            format!(
                "replace the link {} with a directory of root's holding a copy of the file (read \
                 it first): run `rm {link} && mkdir -m 0755 {link} && install -m 0644 {real} \
                 {path}`",
                dir.display(),
                link = word(dir)
            )
        } else {
            format!(
                "replace the link with a copy of root's (read it first): run `install -m 0644 \
                 {real} {path}`"
            )
        }
    }

    /// Refuses a file or directory that an owner outside `owners`, its group or others can
    /// change.
    fn check(&self, at: &Path, meta: &Metadata, owners: &[u32]) -> Result<(), String> {
        let owned = owners.contains(&meta.uid());
        let writable = meta.mode() & 0o022 != 0;
        let problem = if !owned {
            format!(
                "is owned by uid {} instead of uid {}",
                meta.uid(),
                owners[0]
            )
        } else if writable {
            format!(
                "has mode {:04o}, so others can change it",
                meta.mode() & 0o7777
            )
        } else {
            return Ok(());
        };
        let at_word = word(at);
        let in_place = match (owned, writable) {
            (true, _) => format!("run `chmod go-w {at_word}`"),
            (false, false) => format!("run `chown {}:0 {at_word}`", owners[0]),
            (false, true) => format!(
                "run `chown {}:0 {at_word} && chmod go-w {at_word}`",
                owners[0]
            ),
        };
        if at == self.real {
            let fix = if self.in_place() {
                in_place
            } else {
                self.relocate()
            };
            return Err(format!("{} {problem}; {fix}", self.subject()));
        }
        let (whose, fix) = if self.own_dir.as_deref() == Some(at) {
            ("its directory".to_string(), in_place)
        } else if self.in_place() {
            (
                "its directory".to_string(),
                "that directory is the host's, not pitcrew's, so pitcrew leaves it alone: find out \
                 what made it so (a distribution ships it as root's, writable by root alone)"
                    .into(),
            )
        } else {
            (
                format!("it leads to {}, whose directory", self.real.display()),
                format!(
                    "that directory is not pitcrew's, so leave it as it is and {}",
                    self.relocate()
                ),
            )
        };
        Err(format!("{whose} {} {problem}; {fix}", at.display()))
    }
}

/// A path as one word of a command to paste.
fn word(path: &Path) -> String {
    shell_word(&path.to_string_lossy())
}
