//! Making the running libvirt daemon see a hook that came or went: a reload (SIGHUP, through
//! the unit's ExecReload), which makes libvirt look for hooks again and touches no VM, instead
//! of a restart.

use super::{systemctl, InstallError};
use crate::host::libvirt;
use crate::host::Host;
use std::io::Write;

/// Reloads every running libvirt daemon (libvirtd, or the modular virtqemud) so it sees the
/// hook as it now is; with `reload` false only says what to run. Nothing runs under a staged
/// root or in a dry run.
pub(super) fn reload_daemons(
    host: &Host,
    reload: bool,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<(), InstallError> {
    let running = libvirt::running(host);
    if running.is_empty() {
        let _ = writeln!(
            out,
            "no libvirt daemon runs now: it looks for the hook when it starts"
        );
        return Ok(());
    }
    for daemon in running {
        if !reload {
            let _ = writeln!(
                out,
                "not reloading {} (--no-reload): until `systemctl reload {}`, VM starts do not \
                 run {}",
                daemon.unit,
                daemon.unit,
                super::layout::HOOK
            );
            continue;
        }
        systemctl(host, dry_run, &["reload", daemon.unit], out)?;
    }
    Ok(())
}
