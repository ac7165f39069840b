//! What the unit's `pitcrew detach --vm NAME` / `reattach --vm NAME` act on.

use super::Config;
use crate::bdf::Bdf;
use crate::domain::{NameError, VmName};
use crate::hook::request::{self, RequestError};
use crate::host::Host;
use crate::policy::Policy;

#[derive(Debug, thiserror::Error)]
pub enum VmDevicesError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(
        "VM '{0}': no devices to hand over: list them as `devices = [\"0000:01:00.0\"]` under \
         [vm.\"{0}\"] in {path}, or start the VM through libvirt so the hook records its GPUs",
        path = super::CONFIG_PATH
    )]
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
    match request::read(host, &vm)? {
        Some(devices) if !devices.is_empty() => Ok(devices),
        _ => Err(VmDevicesError::NoDevices(vm.to_string())),
    }
}

/// The handover policy for `name`: its own table, else `[defaults]`.
pub fn policy_for_vm(config: &Config, name: &VmName) -> Policy {
    config.for_vm(name).policy.clone()
}
