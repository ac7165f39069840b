//! Making the running libvirt daemon see a hook that came or went: a reload (SIGHUP: systemd's
//! reload job sends it through the unit's ExecReload, OpenRC's is pitcrew's own), which makes
//! libvirt look for hooks again and touches no VM, instead of a restart.

use super::{systemctl, InstallError};
use crate::host::init::Init;
use crate::host::libvirt::{self, Daemon};
use crate::host::{Host, Signal};
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
                "not reloading {} (--no-reload): until `{}`, VM starts do not run {}",
                daemon.unit,
                daemon.reload_command(),
                super::layout::HOOK
            );
            continue;
        }
        match daemon.init {
            Init::Systemd => systemctl(host, dry_run, &["reload", &daemon.unit], out)?,
            Init::OpenRc => hang_up(host, dry_run, &daemon, out)?,
        }
    }
    Ok(())
}

/// SIGHUP to the daemon's own pid (its pid file's, checked to be that daemon): what Debian's
/// script does for `reload`, and the one reload Gentoo's and Alpine's scripts lack.
fn hang_up(
    host: &Host,
    dry_run: bool,
    daemon: &Daemon,
    out: &mut dyn Write,
) -> Result<(), InstallError> {
    let command = daemon.reload_command();
    if dry_run || host.is_staged() {
        let why = if dry_run { "dry run" } else { "staged root" };
        let _ = writeln!(out, "skip `{command}` ({why})");
        return Ok(());
    }
    let failed = |reason: String| InstallError::Command {
        command: command.clone(),
        reason,
    };
    let pid = daemon.pid.ok_or_else(|| {
        failed(format!(
            "no process named {} in /run/{}.pid or the service's cgroup",
            daemon.name, daemon.name
        ))
    })?;
    let _ = writeln!(out, "send SIGHUP to {} (pid {pid})", daemon.name);
    host.effects()
        .process(pid)
        .and_then(|process| process.signal(Signal::Hup))
        .map_err(|e| failed(e.to_string()))
}
