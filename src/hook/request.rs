//! The hand-off from the hook to the unit: the GPUs found in a VM's XML, recorded in
//! `/run/pitcrew/vm/<escaped name>.json` before `systemctl start`, because the unit cannot read
//! the XML itself (asking libvirt from inside its own hook could deadlock it).

use crate::bdf::Bdf;
use crate::domain::VmName;
use crate::host::Host;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

pub const RUN_DIR: &str = "/run/pitcrew";
const REQUEST_DIR: &str = "/run/pitcrew/vm";

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{path}: {action}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("{path}: refused: {reason}", path = .path.display())]
    Refused { path: PathBuf, reason: String },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    vm: String,
    devices: Vec<Bdf>,
}

/// Where the request for `vm` lives (under the host's root).
pub fn path(host: &Host, vm: &VmName) -> PathBuf {
    host.path(format!("{REQUEST_DIR}/{}.json", vm.escaped()))
}

/// Records `devices` for `vm`, replacing any earlier record atomically (temp file + rename).
pub fn write(host: &Host, vm: &VmName, devices: &[Bdf]) -> Result<PathBuf, RequestError> {
    let dir = host.path(REQUEST_DIR);
    if host.is_staged() {
        // A staged root (tests, --root) may lack /run, which a booted host always has.
        let run = host.path("/run");
        std::fs::create_dir_all(&run).map_err(|source| RequestError::Io {
            path: run,
            action: "cannot create",
            source,
        })?;
    }
    for d in [host.path(RUN_DIR), dir.clone()] {
        private_dir(&d, host.is_staged())?;
    }
    let target = path(host, vm);
    let temp = dir.join(format!(".{}.{}.tmp", vm.escaped(), std::process::id()));
    let io = |action, source| RequestError::Io {
        path: temp.clone(),
        action,
        source,
    };
    let body = serde_json::to_vec(&Record {
        vm: vm.to_string(),
        devices: devices.to_vec(),
    })
    .expect("a record always serializes");
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&temp)
        .map_err(|e| io("cannot create", e))?;
    file.write_all(&body).map_err(|e| io("cannot write", e))?;
    file.sync_all().map_err(|e| io("cannot sync", e))?;
    std::fs::rename(&temp, &target).map_err(|e| io("cannot rename into place", e))?;
    Ok(target)
}

/// The devices recorded for `vm`, `None` when the hook recorded none.
pub fn read(host: &Host, vm: &VmName) -> Result<Option<Vec<Bdf>>, RequestError> {
    let target = path(host, vm);
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&target)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RequestError::Io {
                path: target,
                action: "cannot open",
                source,
            })
        }
    };
    let refused = |reason: String| RequestError::Refused {
        path: target.clone(),
        reason,
    };
    let meta = file.metadata().map_err(|e| refused(e.to_string()))?;
    let owner = crate::config::expected_owner(host.is_staged());
    if !meta.is_file() || meta.uid() != owner || meta.mode() & 0o022 != 0 {
        return Err(refused(format!(
            "not a regular file owned by uid {owner} and writable only by it; delete it and start the VM again"
        )));
    }
    let record: Record = serde_json::from_reader(std::io::BufReader::new(file).take_limit())
        .map_err(|e| refused(format!("not a pitcrew request: {e}")))?;
    if record.vm != vm.as_str() {
        return Err(refused(format!("it is for VM '{}', not '{vm}'", record.vm)));
    }
    Ok(Some(record.devices))
}

/// Creates `dir` as 0700 if missing; refuses one that others can write or enter.
fn private_dir(dir: &std::path::Path, staged: bool) -> Result<(), RequestError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            // The umask may have taken bits away, never added them; set the mode exactly.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
                |source| RequestError::Io {
                    path: dir.to_path_buf(),
                    action: "cannot set mode 0700",
                    source,
                },
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(dir).map_err(|source| RequestError::Io {
                path: dir.to_path_buf(),
                action: "cannot inspect",
                source,
            })?;
            let owner = crate::config::expected_owner(staged);
            if !meta.is_dir() || meta.mode() & 0o077 != 0 || meta.uid() != owner {
                return Err(RequestError::Refused {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "expected a directory of uid {owner} and mode 0700, found uid {} mode {:04o}; remove it",
                        meta.uid(),
                        meta.mode() & 0o7777
                    ),
                });
            }
            Ok(())
        }
        Err(source) => Err(RequestError::Io {
            path: dir.to_path_buf(),
            action: "cannot create",
            source,
        }),
    }
}

/// Requests are a few hundred bytes; never read an unbounded file.
trait TakeLimit: std::io::Read + Sized {
    fn take_limit(self) -> std::io::Take<Self> {
        self.take(64 * 1024)
    }
}
impl<R: std::io::Read> TakeLimit for R {}
