//! The config and each managed VM's definition, read from /etc/libvirt/qemu (libvirt itself is
//! never asked).

use super::setup::INSTALL;
use super::{Check, ManagedVm};
use crate::bdf::Bdf;
use crate::config::{vm_table_header, Config, CONFIG_PATH};
use crate::host::libvirt::DOMAIN_DIR;
use crate::host::{pci, Host};
use crate::untrusted;
use crate::vm::{self, VmName};

/// The config check; the config itself when it is valid.
pub(super) fn config(host: &Host, checks: &mut Vec<Check>) -> Option<Config> {
    match Config::load(host) {
        Ok(Some(config)) if config.vms.is_empty() && !config.auto => {
            checks.push(Check::warn(
                "config",
                format!("{CONFIG_PATH} lists no VM and auto is off: no VM start lends a GPU"),
                format!("add a [vm.\"NAME\"] table to {CONFIG_PATH} or run `sudo pitcrew install --vm NAME`"),
            ));
            Some(config)
        }
        Ok(Some(config)) => {
            let names: Vec<&str> = config.vms.keys().map(VmName::as_str).collect();
            let auto = if config.auto {
                ", and any VM passing a GPU through (auto)"
            } else {
                ""
            };
            checks.push(Check::ok(
                "config",
                format!(
                    "{CONFIG_PATH} is valid: manages {}{auto}",
                    list_or_none(&names)
                ),
            ));
            Some(config)
        }
        Ok(None) => {
            checks.push(Check::warn(
                "config",
                format!("no {CONFIG_PATH}: no VM is managed"),
                INSTALL,
            ));
            None
        }
        Err(e) => {
            checks.push(Check::fail(
                "config",
                e.to_string(),
                "do as the finding says; until then every VM start fails",
            ));
            None
        }
    }
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "no listed VM".to_string()
    } else {
        format!("VM {}", names.join(", "))
    }
}

/// Checks each managed VM's definition (only `only` when given) and returns the VMs with the
/// GPUs they would get.
pub(super) fn vms(
    host: &Host,
    config: Option<&Config>,
    only: Option<&VmName>,
    checks: &mut Vec<Check>,
) -> Vec<ManagedVm> {
    let mut names: Vec<VmName> = config
        .map(|c| c.vms.keys().cloned().collect())
        .unwrap_or_default();
    if config.is_some_and(|c| c.auto) {
        for name in defined_vms(host) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    if let Some(only) = only {
        if !names.contains(only) {
            checks.push(Check::fail(
                format!("vm {only}"),
                format!("not managed: {CONFIG_PATH} does not list it, so its start lends nothing"),
                format!(
                    "run `sudo pitcrew install --vm {}` or add {} to {CONFIG_PATH}",
                    crate::text::shell_word(only.as_str()),
                    vm_table_header(only.as_str())
                ),
            ));
            return Vec::new();
        }
        names.retain(|n| n == only);
    }
    let listed = |n: &VmName| config.and_then(|c| c.listed(n));
    let mut managed = Vec::new();
    for name in names {
        let configured = listed(&name).map(|v| v.devices.clone()).unwrap_or_default();
        let (check, gpus) = vm(host, &name, &configured, listed(&name).is_some());
        // A VM that auto would manage but that passes no GPU through is none of ours.
        if listed(&name).is_some() || !gpus.is_empty() {
            checks.push(check);
            managed.push(ManagedVm { name, gpus });
        }
    }
    managed
}

/// Names of the VMs defined in /etc/libvirt/qemu (persistent domains of the system instance).
fn defined_vms(host: &Host) -> Vec<VmName> {
    let mut names: Vec<VmName> = std::fs::read_dir(host.path(DOMAIN_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            VmName::parse(file.strip_suffix(".xml")?).ok()
        })
        .collect();
    names.sort();
    names
}

/// One VM: defined, and passing through what pitcrew would lend for it.
fn vm(host: &Host, name: &VmName, configured: &[Bdf], listed: bool) -> (Check, Vec<Bdf>) {
    let label = format!("vm {name}");
    let path = format!("{DOMAIN_DIR}/{name}.xml");
    // libvirt's own file, but read the way every file under a --root is: bounded, never blocking.
    let xml = match untrusted::read_text(&host.path(&path), vm::MAX_XML_BYTES) {
        Ok(xml) => xml,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (
                Check::fail(
                    label,
                    format!("not defined: no {path}"),
                    format!("define it with `virsh define` (or virt-manager), or remove {} from {CONFIG_PATH}", vm_table_header(name.as_str())),
                ),
                configured.to_vec(),
            );
        }
        Err(e) => {
            return (
                Check::fail(
                    label,
                    format!("cannot read {path}: {e}"),
                    "run doctor as root",
                ),
                configured.to_vec(),
            )
        }
    };
    let hostdevs = match vm::pci_hostdevs(&xml) {
        Ok(h) => h,
        Err(e) => {
            return (
                Check::fail(
                    label,
                    format!("{path}: {e}"),
                    format!(
                        "fix the definition with `virsh edit {}`",
                        crate::text::shell_word(name.as_str())
                    ),
                ),
                configured.to_vec(),
            )
        }
    };
    let add = format!(
        "add a <hostdev mode='subsystem' type='pci' managed='yes'> with the card's address (`virsh edit {}`)",
        crate::text::shell_word(name.as_str())
    );
    let absent: Vec<String> = configured
        .iter()
        .filter(|b| pci::class(host, **b).is_err())
        .map(|b| b.to_string())
        .collect();
    if !absent.is_empty() {
        return (
            Check::fail(
                label,
                format!(
                    "{CONFIG_PATH} lends it {}, which this host does not have",
                    absent.join(", ")
                ),
                "correct the addresses under `devices` (`pitcrew status` lists the GPUs)",
            ),
            configured.to_vec(),
        );
    }
    if !configured.is_empty() {
        let missing: Vec<String> = configured
            .iter()
            .filter(|b| !hostdevs.contains(b))
            .map(|b| b.to_string())
            .collect();
        if !missing.is_empty() {
            return (
                Check::fail(
                    label,
                    format!(
                        "{path} does not pass {} through, which {CONFIG_PATH} lends to it",
                        missing.join(", ")
                    ),
                    add,
                ),
                configured.to_vec(),
            );
        }
        return (
            Check::ok(
                label,
                format!("defined; passes {} through", join(configured)),
            ),
            configured.to_vec(),
        );
    }
    let gpus: Vec<Bdf> = hostdevs
        .iter()
        .copied()
        .filter(|b| pci::class(host, *b).is_ok_and(pci::is_gpu_class))
        .collect();
    if gpus.is_empty() {
        let check = if listed {
            Check::fail(
                label,
                format!("{path} passes no GPU of this host through and {CONFIG_PATH} names no devices for it"),
                add,
            )
        } else {
            Check::ok(label, "passes no GPU through")
        };
        return (check, gpus);
    }
    (
        Check::ok(
            label,
            format!("defined; passes GPU {} through", join(&gpus)),
        ),
        gpus,
    )
}

fn join(bdfs: &[Bdf]) -> String {
    bdfs.iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
