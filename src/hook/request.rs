//! The hand-off from the hook to the unit: the GPUs found in a VM's XML, recorded in
//! `/run/pitcrew/vm/<escaped name>.json` before `systemctl start`, because the unit cannot read
//! the XML itself (asking libvirt from inside its own hook could deadlock it). This module is
//! the only one that knows the file; the unit's side asks [`devices_for_vm`].

use crate::bdf::Bdf;
use crate::config::{Config, CONFIG_PATH};
use crate::host::Host;
use crate::runfile;
use crate::vm::{NameError, VmName};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

const REQUEST_DIR: &str = "/run/pitcrew/vm";

pub use crate::runfile::RunFileError as RequestError;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestFile {
    vm: String,
    devices: Vec<Bdf>,
}

/// Where the request for `vm` lives (under the host's root).
pub fn path(host: &Host, vm: &VmName) -> PathBuf {
    host.path(format!("{REQUEST_DIR}/{}.json", vm.escaped()))
}

/// Writes the request for `vm`, replacing any earlier one atomically.
pub fn write(host: &Host, vm: &VmName, devices: &[Bdf]) -> Result<PathBuf, RequestError> {
    let dir = runfile::private_dir(host, REQUEST_DIR)?;
    let body = serde_json::to_vec(&RequestFile {
        vm: vm.to_string(),
        devices: devices.to_vec(),
    })
    .expect("a request always serializes");
    runfile::write_atomic(&dir, &format!("{}.json", vm.escaped()), &body)
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
    let owner = host.owner();
    if !meta.is_file() || meta.uid() != owner || meta.mode() & 0o022 != 0 {
        return Err(refused(format!(
            "not a regular file owned by uid {owner} and writable only by it; delete it and start the VM again"
        )));
    }
    let request: RequestFile = serde_json::from_reader(std::io::BufReader::new(file).take_limit())
        .map_err(|e| refused(format!("not a pitcrew request: {e}")))?;
    if request.vm != vm.as_str() {
        return Err(refused(format!(
            "it is for VM '{}', not '{vm}'",
            request.vm
        )));
    }
    Ok(Some(request.devices))
}

#[derive(Debug, thiserror::Error)]
/// Why the devices for `--vm NAME` are not known.
pub enum VmDevicesError {
    #[error(transparent)]
    /// The name is not one libvirt allows.
    Name(#[from] NameError),
    #[error(transparent)]
    /// The hook's request exists but cannot be trusted or read.
    Request(#[from] RequestError),
    #[error(
        "VM '{0}': no devices to hand over: list them as `devices = [\"0000:01:00.0\"]` under \
         [vm.\"{0}\"] in {CONFIG_PATH}, or start the VM through libvirt so the hook records its GPUs"
    )]
    /// Neither the config nor a request names devices.
    NoDevices(String),
}

/// The devices to hand over for `name`: those the config names, otherwise the GPUs the hook
/// found in the VM's XML and recorded under /run/pitcrew before starting the unit.
pub fn devices_for_vm(
    host: &Host,
    config: &Config,
    name: &str,
) -> Result<Vec<Bdf>, VmDevicesError> {
    let vm = VmName::parse(name)?;
    if let Some(listed) = config.listed(&vm) {
        if !listed.devices.is_empty() {
            return Ok(listed.devices.clone());
        }
    }
    match read(host, &vm)? {
        Some(devices) if !devices.is_empty() => Ok(devices),
        _ => Err(VmDevicesError::NoDevices(vm.to_string())),
    }
}

/// Requests are a few hundred bytes; never read an unbounded file.
trait TakeLimit: std::io::Read + Sized {
    fn take_limit(self) -> std::io::Take<Self> {
        self.take(64 * 1024)
    }
}
impl<R: std::io::Read> TakeLimit for R {}
