//! One handover at a time: an flock on /run/pitcrew/lock, held for the life of the run.

use crate::host::Host;
use crate::record;
use rustix::fs::{flock, FlockOperation};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

pub struct Lock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another pitcrew run holds {path} ({holder}); it did not finish within {waited:?}")]
    Busy {
        path: String,
        holder: String,
        waited: Duration,
    },
    #[error("cannot open the lock {path}: {cause}", cause = crate::untrusted::cause(std::path::Path::new(.path), .source))]
    Io { path: String, source: io::Error },
    #[error(transparent)]
    Dir(crate::runfile::RunFileError),
}

/// Takes the lock, waiting up to `limit` for a run in progress to finish.
pub fn acquire(host: &Host, limit: Duration) -> Result<Lock, LockError> {
    let path = host.path(format!("{}/lock", record::DIR));
    let shown = path.display().to_string();
    let io_err = |source| LockError::Io {
        path: shown.clone(),
        source,
    };
    crate::runfile::private_dir(host, record::DIR).map_err(LockError::Dir)?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // Whatever else might sit there (a link, a FIFO) is refused or never waited on.
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(&path)
        .map_err(io_err)?;
    let taken = crate::wait::until("the lock", limit, || {
        flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok()
    });
    if let Err(timeout) = taken {
        let holder = crate::untrusted::read_text(&path, 64)
            .ok()
            .map(|pid| format!("pid {}", pid.trim()))
            .unwrap_or_else(|| "unknown pid".into());
        return Err(LockError::Busy {
            path: shown,
            holder,
            waited: timeout.waited,
        });
    }
    file.set_len(0).map_err(io_err)?;
    write!(file, "{}", std::process::id()).map_err(io_err)?;
    Ok(Lock { _file: file })
}
