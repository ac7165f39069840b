//! The service manager's side of the tree: what says which one runs (systemd's directory,
//! OpenRC's softlevel), OpenRC's scripts and state, and each service's cgroup in the layout of
//! the simulated init.

use crate::builder::SimInit;
use crate::model::Model;
use crate::tree::Tree;
use std::io;

/// What says which service manager runs, its service scripts and the display manager's choice.
pub(crate) fn render_init(t: &Tree, model: &Model) -> io::Result<()> {
    if model.init == SimInit::Systemd {
        t.dir("/sys/fs/cgroup/system.slice")?;
        // sd_booted()'s test: logind is there to take inhibitors.
        t.dir("/run/systemd/system")?;
        if let Some(dm) = &model.display_manager {
            t.symlink(
                "/etc/systemd/system/display-manager.service",
                &format!("/lib/systemd/system/{dm}"),
            )?;
        }
    }
    if model.init.is_openrc() {
        t.file("/run/openrc/softlevel", "default\n")?;
        // elogind keeps logind's layout.
        t.dir("/run/systemd/seats")?;
        for unit in model.units.keys() {
            t.file(&format!("/etc/init.d/{unit}"), "#!/bin/sh\n")?;
        }
        // Debian's LSB scripts name the display manager there.
        if let Some(dm) = &model.display_manager {
            t.file(
                "/etc/X11/default-display-manager",
                &format!("/usr/sbin/{dm}\n"),
            )?;
        }
    }
    Ok(())
}

pub(crate) fn render_units(t: &Tree, model: &Model) -> io::Result<()> {
    for unit in model.units.values() {
        let name = &unit.spec.name;
        let dir = match model.init {
            SimInit::Systemd => format!("/sys/fs/cgroup/system.slice/{name}"),
            SimInit::OpenRc => format!("/sys/fs/cgroup/openrc.{name}"),
            SimInit::OpenRcBare | SimInit::Neither => format!("/sys/fs/cgroup/{name}"),
            SimInit::OpenRcV1 => format!("/sys/fs/cgroup/openrc/{name}"),
        };
        if model.init.is_openrc() {
            let started = format!("/run/openrc/started/{name}");
            if unit.running {
                t.symlink(&started, &format!("/etc/init.d/{name}"))?;
            } else {
                t.remove(&started)?;
            }
        }
        if !unit.running {
            t.remove(&dir)?;
            continue;
        }
        let procs: String = model
            .unit_pids(&unit.spec.name)
            .iter()
            .map(|pid| format!("{pid}\n"))
            .collect();
        t.file(&format!("{dir}/cgroup.procs"), &procs)?;
    }
    Ok(())
}
