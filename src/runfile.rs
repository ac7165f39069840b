//! Files under /run/pitcrew: a root-only directory, and root-only files in it replaced
//! atomically.

use crate::atomic;
use crate::host::Host;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
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

/// Replaces `dir/name` with `bytes`, readable by root only.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, RunFileError> {
    let target = dir.join(name);
    atomic::write(&target, 0o600, bytes)?;
    Ok(target)
}

impl From<atomic::WriteError> for RunFileError {
    fn from(e: atomic::WriteError) -> RunFileError {
        RunFileError::Io {
            path: e.path,
            action: e.action,
            source: e.source,
        }
    }
}
