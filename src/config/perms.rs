//! The config decides what a root-run hook and unit do to the machine, so only root may be able
//! to change it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Refuses `path` unless it is a regular file (or directory, for `dir`) owned by `owner` that
/// neither group nor others can write. Returns the reason on refusal.
pub fn check(path: &Path, owner: u32, dir: bool) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot inspect it: {e}"))?;
    if dir != meta.is_dir() || (!dir && !meta.is_file()) {
        let kind = if dir { "a directory" } else { "a regular file" };
        return Err(format!("it is not {kind}"));
    }
    if meta.uid() != owner {
        return Err(format!(
            "it is owned by uid {} instead of uid {owner}: run `chown {owner}:0 {}`",
            meta.uid(),
            path.display()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "its mode {:04o} lets others change it: run `chmod go-w {}`",
            meta.mode() & 0o7777,
            path.display()
        ));
    }
    Ok(())
}
