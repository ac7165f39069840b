//! Files under /run/pitcrew: a root-only directory, and files replaced atomically so a reader
//! (or a run after a crash) sees either the old content or the new, never half of it.

use crate::host::Host;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const RUN_DIR: &str = "/run/pitcrew";

#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    #[error("{path}: {action}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("{path}: refused: {reason}", path = .path.display())]
    Refused { path: PathBuf, reason: String },
}

/// Creates `absolute` (and /run/pitcrew above it) as 0700 directories if missing; refuses one
/// that another user owns or that others can enter, since its files steer what runs as root.
pub fn private_dir(host: &Host, absolute: &str) -> Result<PathBuf, RunFileError> {
    if host.is_staged() {
        // A staged root (tests, --root) may lack /run, which a booted host always has.
        let run = host.path("/run");
        std::fs::create_dir_all(&run).map_err(|source| RunFileError::Io {
            path: run,
            action: "cannot create",
            source,
        })?;
    }
    let mut dirs = vec![host.path(RUN_DIR)];
    if absolute != RUN_DIR {
        dirs.push(host.path(absolute));
    }
    for dir in &dirs {
        one_private_dir(dir, host.owner())?;
    }
    Ok(host.path(absolute))
}

fn one_private_dir(dir: &Path, owner: u32) -> Result<(), RunFileError> {
    let io = |action, source| RunFileError::Io {
        path: dir.to_path_buf(),
        action,
        source,
    };
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        // The umask may have taken bits away, never added them; set the mode exactly.
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io("cannot set mode 0700", e)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(dir).map_err(|e| io("cannot inspect", e))?;
            if !meta.is_dir() || meta.mode() & 0o077 != 0 || meta.uid() != owner {
                return Err(RunFileError::Refused {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "expected a directory of uid {owner} and mode 0700, found uid {} mode \
                         {:04o}; remove it",
                        meta.uid(),
                        meta.mode() & 0o7777
                    ),
                });
            }
            Ok(())
        }
        Err(e) => Err(io("cannot create", e)),
    }
}

/// Replaces `dir/name` with `bytes`: a 0600 sibling written and synced, then renamed over it.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, RunFileError> {
    let target = dir.join(name);
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let io = |action, source| RunFileError::Io {
        path: temp.clone(),
        action,
        source,
    };
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&temp)
        .map_err(|e| io("cannot create", e))?;
    file.write_all(bytes).map_err(|e| io("cannot write", e))?;
    file.sync_all().map_err(|e| io("cannot sync", e))?;
    std::fs::rename(&temp, &target).map_err(|e| io("cannot rename into place", e))?;
    Ok(target)
}
