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
use std::path::PathBuf;

pub(super) const REQUEST_DIR: &str = "/run/pitcrew/vm";

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
    let Some(bytes) = runfile::read_private(host, &target, MAX_BYTES)? else {
        return Ok(None);
    };
    let refused = |reason: String| RequestError::Refused {
        path: target.clone(),
        reason,
    };
    // serde's messages quote what they met verbatim: cut and escaped, it is one short line.
    let request: RequestFile = serde_json::from_slice(&bytes).map_err(|e| {
        refused(format!(
            "not a pitcrew request ({}); delete it and start the VM again",
            crate::text::one_line(&e.to_string(), 200)
        ))
    })?;
    if request.vm != vm.as_str() {
        return Err(refused(format!(
            "it is for VM '{}', not '{vm}'; delete it and start the VM again",
            crate::text::shown(&request.vm)
        )));
    }
    Ok(Some(request.devices))
}

/// Requests are a few hundred bytes; never read an unbounded file.
const MAX_BYTES: u64 = 64 * 1024;

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
         {header} in {CONFIG_PATH}, or start the VM through libvirt so the hook records its GPUs",
        header = crate::config::vm_table_header(.0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic::{temp_name, NAME_MAX};

    /// Names whose escaped forms walk up to and past the unit-name limit: plain bytes (1 escaped
    /// byte each), bytes escaped to 4 (`-`), two-byte characters (8) and a leading '.'.
    fn boundary_names() -> Vec<String> {
        let mut names = Vec::new();
        for plain in 0..=4 {
            for dashes in 50..=61 {
                names.push(format!("{}{}", "a".repeat(plain), "-".repeat(dashes)));
                names.push(format!(".{}{}", "-".repeat(dashes), "a".repeat(plain)));
            }
        }
        for n in 180..=260 {
            names.push("a".repeat(n));
        }
        for n in 25..=31 {
            names.push(format!("{}{}", "é".repeat(n), "b".repeat(n % 8)));
        }
        names
    }

    #[test]
    fn request_and_temporary_names_fit_name_max_for_every_accepted_name() {
        let mut longest = 0;
        for name in boundary_names() {
            let Ok(vm) = VmName::parse(&name) else {
                continue;
            };
            let file = format!("{}.json", vm.escaped());
            longest = longest.max(vm.escaped().len());
            assert!(file.len() <= NAME_MAX, "{name}: {file}");
            // pid_max is at most 4194304: 7 digits.
            for pid in [1, 99_999, 999_999, 4_194_304, 9_999_999] {
                let temp = temp_name(&file, pid);
                assert!(temp.len() <= NAME_MAX, "{name} pid {pid}: {}", temp.len());
                assert!(temp.starts_with('.') && temp.ends_with(&format!(".{pid}.tmp")));
            }
        }
        // systemd's limit on a unit name, less the template around the escaped name.
        let limit = 255 - "pitcrew@.service".len();
        assert_eq!(longest, limit, "the boundary was not reached");
    }

    #[test]
    fn the_longest_names_are_written_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::real(dir.path());
        for name in ["a".repeat(3) + &"-".repeat(59), "a".repeat(200)] {
            let vm = VmName::parse(&name).unwrap();
            write(&host, &vm, &[]).unwrap();
            assert_eq!(read(&host, &vm).unwrap(), Some(vec![]));
            // The file system itself takes the longest temporary name.
            let temp = temp_name(&format!("{}.json", vm.escaped()), 9_999_999);
            std::fs::write(dir.path().join(temp), "").unwrap();
        }
    }
}
