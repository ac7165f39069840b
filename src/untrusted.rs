//! Files another process could have put where pitcrew reads: the config, the hook's request
//! files, the state record, and sysfs/procfs under a staged `--root`. Each is opened without
//! blocking (a FIFO or a device in a file's place must not stall libvirtd's VM start), checked
//! on the open descriptor rather than by path (nothing can be swapped in between), and read
//! within a bound (a link to /dev/zero must not eat the memory).

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A sysfs attribute is at most a page; procfs lines of one process are small too.
pub const ATTRIBUTE_LIMIT: u64 = 64 * 1024;

/// Whether a symlink in the last component is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Last {
    Follow,
    NoFollow,
}

/// A regular file, open for reading.
pub struct Opened {
    file: File,
    path: PathBuf,
}

/// Opens `path` with O_NONBLOCK and O_NOCTTY and refuses anything but a regular file. Errors
/// name the path and keep the kind of the underlying error (NotFound stays NotFound).
pub fn open(path: &Path, last: Last) -> io::Result<Opened> {
    let (file, meta) = open_any(path, last)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {}, not a regular file", path.display(), kind(&meta)),
        ));
    }
    Ok(Opened::new(file, path.to_path_buf()))
}

/// Opens whatever is at `path` without blocking, for callers that judge the type themselves.
pub fn open_any(path: &Path, last: Last) -> io::Result<(File, Metadata)> {
    let mut flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY;
    if last == Last::NoFollow {
        flags |= rustix::fs::OFlags::NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| named(path, e))?;
    let meta = file.metadata().map_err(|e| named(path, e))?;
    Ok((file, meta))
}

impl Opened {
    /// `file` as opened by [`open_any`] and found to be a regular file.
    pub fn new(file: File, path: PathBuf) -> Opened {
        Opened { file, path }
    }

    /// The whole file, refused when it holds more than `limit` bytes.
    pub fn read(self, limit: u64) -> io::Result<Vec<u8>> {
        let path = self.path.clone();
        let bytes = self.read_at_most(limit + 1)?;
        if bytes.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: larger than {limit} bytes, more than such a file holds",
                    path.display()
                ),
            ));
        }
        Ok(bytes)
    }

    /// The first `limit` bytes (all of a smaller file).
    pub fn read_at_most(self, limit: u64) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.file
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| named(&self.path, e))?;
        Ok(bytes)
    }

    /// The file as a reader that ends after `limit` bytes, for files read piece by piece into a
    /// buffer of the caller's (a process's memory map).
    pub fn bounded(self, limit: u64) -> io::Take<File> {
        self.file.take(limit)
    }

    /// Like [`Opened::read`], as UTF-8 text.
    pub fn read_text(self, limit: u64) -> io::Result<String> {
        let path = self.path.clone();
        String::from_utf8(self.read(limit)?).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not UTF-8 text", path.display()),
            )
        })
    }
}

/// Reads a small text file (a sysfs attribute, a procfs file) following links, as sysfs needs.
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    open(path, Last::Follow)?.read_text(limit)
}

/// `io::Error` with the path in front and the same kind.
pub fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {}", path.display(), plain(&e)))
}

/// What went wrong with `path`, for a message that names `path` itself: the error's text
/// without Rust's " (os error N)" suffix and without the path when the error already starts with
/// it (as those of [`named`] do), so the path is said once.
pub fn cause(path: &Path, e: &io::Error) -> String {
    let text = plain(e);
    match text.strip_prefix(&format!("{}: ", path.display())) {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

/// An OS error's text without Rust's " (os error N)" suffix.
pub fn plain(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

/// What a file is, for messages.
pub fn kind_or_file(meta: &Metadata) -> &'static str {
    if meta.is_file() {
        "a regular file"
    } else {
        kind(meta)
    }
}

/// What a non-regular file is, for messages.
pub fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_fifo_or_device_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from(0o600)).unwrap();
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let started = Instant::now();
        for path in [&fifo, &zero] {
            let err = read_text(path, ATTRIBUTE_LIMIT).err().unwrap();
            assert!(err.to_string().contains("not a regular file"), "{err}");
            assert!(err.to_string().contains(&path.display().to_string()));
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn reads_are_bounded_and_errors_name_the_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 100]).unwrap();
        assert!(read_text(&big, 99).is_err());
        assert_eq!(read_text(&big, 100).unwrap().len(), 100);
        let missing = dir.path().join("missing");
        let err = read_text(&missing, 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            err.to_string(),
            format!("{}: No such file or directory", missing.display())
        );
    }
}
