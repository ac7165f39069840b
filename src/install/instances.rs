//! OpenRC's per-VM instance links (`/etc/init.d/pitcrew.<vm>` -> `pitcrew`), which libvirt's hook
//! makes: uninstall removes those OpenRC does not have started, so no service is left whose
//! script is gone while it holds a card.

use super::manifest::{Entry, Kind};
use super::write::Writer;
use super::InstallError;
use crate::host::init::openrc::{self, INIT_D, INSTANCE_PREFIX};
use crate::host::Host;
use std::path::Path;

/// OpenRC's states in which an instance's stop has not finished.
const BUSY: [&str; 3] = ["started", "starting", "stopping"];

pub(super) fn remove_stopped(host: &Host, w: &mut Writer) -> Result<(), InstallError> {
    let mut links: Vec<String> = std::fs::read_dir(host.path(INIT_D))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(INSTANCE_PREFIX))
        .filter(|name| {
            std::fs::read_link(host.path(openrc::script(name)))
                .is_ok_and(|target| target == Path::new("pitcrew"))
        })
        .collect();
    links.sort();
    for service in links {
        if let Some(state) = BUSY.iter().find(|s| openrc::in_state(host, s, &service)) {
            let _ = writeln!(
                w.out(),
                "keep {} (OpenRC has it {state}: stop its VM, then uninstall again)",
                openrc::script(&service)
            );
            continue;
        }
        w.remove(&Entry {
            path: openrc::script(&service),
            kind: Kind::Symlink,
        })?;
    }
    Ok(())
}
