//! Replacing a file so that a reader (or a run after a crash) sees either the old content or the
//! new, never half of it: the one way pitcrew writes a file it owns.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A file operation that failed, with the file and what was tried.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {action}: {cause}", path = .path.display(), cause = crate::untrusted::cause(.path, .source))]
pub struct WriteError {
    pub path: PathBuf,
    pub action: &'static str,
    pub source: std::io::Error,
}

/// The longest file name Linux file systems take (NAME_MAX).
pub const NAME_MAX: usize = 255;

/// The sibling `name` is written to before the rename: `.<name>.<pid>.tmp`, the name cut so the
/// whole fits [`NAME_MAX`] (an escaped VM name alone may take 239 bytes, a pid 7 digits).
pub fn temp_name(name: &str, pid: u32) -> String {
    let suffix = format!(".{pid}.tmp");
    let mut end = name.len().min(NAME_MAX - 1 - suffix.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!(".{}{suffix}", &name[..end])
}

/// Writes `bytes` to a sibling temp file (never following a planted link), gives it `mode`,
/// syncs it, then renames it over `path`.
pub fn write(path: &Path, mode: u32, bytes: &[u8]) -> Result<(), WriteError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(temp_name(&name, std::process::id()));
    let failed = |path: &Path, action| {
        let path = path.to_path_buf();
        move |source| WriteError {
            path,
            action,
            source,
        }
    };
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&temp)
        .map_err(failed(&temp, "cannot create"))?;
    file.write_all(bytes)
        .map_err(failed(&temp, "cannot write"))?;
    // Explicit, so the result does not depend on the umask.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(failed(&temp, "cannot set mode"))?;
    file.sync_all().map_err(failed(&temp, "cannot sync"))?;
    std::fs::rename(&temp, path).map_err(failed(path, "cannot rename into place"))
}

/// Makes `path` a symlink to `target` in one step: the link is made under a temp name, then
/// renamed over `path`, so a reader never finds it missing or half-made.
pub fn symlink(path: &Path, target: &Path) -> Result<(), WriteError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(temp_name(&name, std::process::id()));
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(target, &temp).map_err(|source| WriteError {
        path: temp.clone(),
        action: "cannot create the link",
        source,
    })?;
    std::fs::rename(&temp, path).map_err(|source| WriteError {
        path: path.to_path_buf(),
        action: "cannot rename into place",
        source,
    })
}
