//! The config decides what a root-run hook and unit do to the machine, so only root may be able
//! to change it: the file itself and every directory on the way to it, after following links.
//! The file is opened once (without blocking, without following a last link the checks did not
//! see) and the checks are made on what was opened.

use crate::host::Host;
use crate::untrusted::{self, Last};
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

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
            "it is a symbolic link to a file that does not exist: remove the link or the \
             file it names"
                .into(),
        ),
        _ => Refusal::Unreadable(e),
    })?;
    // NOFOLLOW: had the last component become a link since canonicalize, it is refused.
    let (file, meta) = untrusted::open_any(&real, Last::NoFollow).map_err(Refusal::Unreadable)?;
    let owner = host.owner();
    let shown = |p: &Path| {
        if p == path {
            p.display().to_string()
        } else {
            format!("{} (where {} leads)", p.display(), path.display())
        }
    };
    if !meta.is_file() {
        return Err(Refusal::Insecure(format!(
            "{} is {}, not a regular file: replace it with a regular file",
            shown(&real),
            untrusted::kind(&meta)
        )));
    }
    check_owner_and_mode(&real, &meta, &[owner], &shown).map_err(Refusal::Insecure)?;
    if meta.len() > MAX_BYTES {
        return Err(Refusal::Insecure(format!(
            "it is {} bytes; a pitcrew config is at most {MAX_BYTES} bytes",
            meta.len()
        )));
    }
    let staged_root = host
        .is_staged()
        .then(|| std::fs::canonicalize(host.root()).unwrap_or_else(|_| host.root().into()));
    for dir in real.ancestors().skip(1) {
        // Above a staged root are the builder's own directories (/tmp): not part of the tree.
        if let Some(root) = &staged_root {
            if real.starts_with(root) && root.starts_with(dir) && dir != root {
                continue;
            }
        }
        let meta = std::fs::metadata(dir).map_err(Refusal::Unreadable)?;
        let dir_shown = |p: &Path| format!("its directory {}", p.display());
        check_owner_and_mode(dir, &meta, &[0, owner], &dir_shown).map_err(Refusal::Insecure)?;
    }
    untrusted::Opened::new(file, real)
        .read(MAX_BYTES)
        .map(Some)
        .map_err(Refusal::Unreadable)
}

/// Refuses a file or directory that an owner outside `owners`, its group or others can change.
fn check_owner_and_mode(
    path: &Path,
    meta: &Metadata,
    owners: &[u32],
    shown: &dyn Fn(&Path) -> String,
) -> Result<(), String> {
    if !owners.contains(&meta.uid()) {
        return Err(format!(
            "{} is owned by uid {} instead of uid {}: run `chown {}:0 {}` or move the file to \
             a directory of root's",
            shown(path),
            meta.uid(),
            owners[0],
            owners[0],
            path.display()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} has mode {:04o}, which lets others change it: run `chmod go-w {}`",
            shown(path),
            meta.mode() & 0o7777,
            path.display()
        ));
    }
    Ok(())
}
