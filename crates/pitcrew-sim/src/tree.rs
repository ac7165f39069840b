//! Idempotent file helpers over host-absolute paths: the renderer calls them after every
//! change, so each one leaves an unchanged file untouched (an engine thread may be reading it).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Files are staged in this sibling of the root, then renamed into place: a reader never sees
/// a half-written attribute nor a stray temporary name in a listing under the root.
const STAGING: &str = "staging";

pub(crate) struct Tree<'a> {
    root: &'a Path,
}

impl<'a> Tree<'a> {
    pub fn new(root: &'a Path) -> Tree<'a> {
        Tree { root }
    }

    fn staging(&self) -> PathBuf {
        self.root.with_file_name(STAGING)
    }

    /// `absolute` (`/sys/...`) under the root.
    pub fn at(&self, absolute: &str) -> PathBuf {
        self.root.join(absolute.trim_start_matches('/'))
    }

    pub fn dir(&self, absolute: &str) -> io::Result<()> {
        fs::create_dir_all(self.at(absolute))
    }

    pub fn file(&self, absolute: &str, content: &str) -> io::Result<()> {
        let path = self.at(absolute);
        if fs::read_to_string(&path).ok().as_deref() == Some(content) {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let staging = self.staging();
        fs::create_dir_all(&staging)?;
        let staged = staging.join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
        fs::write(&staged, content)?;
        fs::rename(&staged, &path)
    }

    /// Present with `content` when `wanted`, absent otherwise.
    pub fn file_iff(&self, absolute: &str, wanted: bool, content: &str) -> io::Result<()> {
        if wanted {
            self.file(absolute, content)
        } else {
            self.remove(absolute)
        }
    }

    /// Makes `absolute` a symlink whose target string is exactly `target`.
    pub fn symlink(&self, absolute: &str, target: &str) -> io::Result<()> {
        let path = self.at(absolute);
        if fs::read_link(&path).is_ok_and(|existing| existing == Path::new(target)) {
            return Ok(());
        }
        self.remove(absolute)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink(target, path)
    }

    /// Removes a file, symlink or directory tree; absent is fine.
    pub fn remove(&self, absolute: &str) -> io::Result<()> {
        let path = self.at(absolute);
        let result = match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path),
            Ok(_) => fs::remove_file(&path),
            Err(e) => Err(e),
        };
        match result {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    pub fn exists(&self, absolute: &str) -> bool {
        fs::symlink_metadata(self.at(absolute)).is_ok()
    }

    /// Names in a directory; an absent directory has none.
    pub fn entries(&self, absolute: &str) -> Vec<String> {
        let Ok(dir) = fs::read_dir(self.at(absolute)) else {
            return Vec::new();
        };
        dir.filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Builds a directory at a staging name with `fill`, then renames it into place whole.
    pub fn dir_atomically(
        &self,
        absolute: &str,
        fill: impl FnOnce(&Path) -> io::Result<()>,
    ) -> io::Result<()> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let staged = self
            .staging()
            .join(format!("dir{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        fs::create_dir_all(&staged)?;
        fill(&staged)?;
        let path = self.at(absolute);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::rename(&staged, path)
    }
}
