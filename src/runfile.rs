//! Files under /run/pitcrew: a root-only directory, and root-only files in it replaced
//! atomically.

use crate::atomic;
use crate::host::Host;
use crate::untrusted::{self, Last};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const RUN_DIR: &str = "/run/pitcrew";

#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    #[error("{path}: {action}: {cause}", path = .path.display(), cause = crate::untrusted::cause(.path, .source))]
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
                        "expected a directory of uid {owner} and mode 0700, found {} of uid {} \
                         and mode {:04o}; remove it",
                        untrusted::kind_or_file(&meta),
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

/// Reads a file pitcrew wrote under /run/pitcrew, `Ok(None)` when there is none. It steers what
/// runs as root, so it must be a regular file (not a link, FIFO or device, which are refused
/// without blocking) of the expected owner that nobody else can write, and at most `limit` bytes.
pub fn read_private(host: &Host, path: &Path, limit: u64) -> Result<Option<Vec<u8>>, RunFileError> {
    let refused = |reason: String| RunFileError::Refused {
        path: path.to_path_buf(),
        reason,
    };
    let (file, meta) = match untrusted::open_any(path, Last::NoFollow) {
        Ok(opened) => opened,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // O_NOFOLLOW refused it (ELOOP); say why in words.
        Err(_) if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) => {
            return Err(refused(
                "it is a symbolic link, which pitcrew never writes there; delete it".into(),
            ))
        }
        Err(source) => {
            return Err(RunFileError::Io {
                path: path.to_path_buf(),
                action: "cannot open",
                source,
            })
        }
    };
    let owner = host.owner();
    if !meta.is_file() || meta.uid() != owner || meta.mode() & 0o022 != 0 {
        return Err(refused(format!(
            "{} of uid {} and mode {:04o}, where pitcrew writes a regular file of uid {owner} \
             that only it can write; delete it",
            untrusted::kind_or_file(&meta),
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    untrusted::Opened::new(file, path.to_path_buf())
        .read(limit)
        .map(Some)
        .map_err(|source| RunFileError::Io {
            path: path.to_path_buf(),
            action: "cannot read",
            source,
        })
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
