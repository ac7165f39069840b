//! The service manager running the host: systemd or OpenRC, behind one small interface.
//!
//! Everything that asks an init system something (is a service active, which service a process
//! runs in, stop or start one) goes through [`Init`], and what differs beyond that matches on it
//! (a VM's instance: src/hook/instance.rs; libvirt's reload: src/install/reload.rs), so the
//! engine (plan, exec) works in service names and never learns which one runs. The choice is made
//! at each run from the host's root, by Debian's own rule (`invoke-rc.d`): `/run/systemd/system`
//! being a directory means systemd (elogind creates `/run/systemd` too, so that alone proves
//! nothing), `/run/openrc/softlevel` means OpenRC.

pub mod openrc;
pub mod systemd;

use super::Host;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
/// A supported service manager.
pub enum Init {
    /// systemd as PID 1.
    Systemd,
    /// OpenRC running the services (under sysvinit, busybox init or openrc-init).
    OpenRc,
}

/// What `pitcrew` supports, for refusals and `doctor`.
pub const SUPPORTED: &str = "systemd (/run/systemd/system is a directory) or OpenRC \
                             (/run/openrc/softlevel exists)";

#[derive(Debug, thiserror::Error)]
#[error(
    "no supported service manager runs under {root}: pitcrew works with {SUPPORTED}; \
     runit, s6 and plain sysvinit are not supported"
)]
/// A host with neither systemd nor OpenRC (runit, s6, plain sysvinit).
pub struct Unsupported {
    /// The root that was looked at.
    pub root: String,
}

/// The start and stop a service manager offers for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Start it.
    Start,
    /// Stop it.
    Stop,
}

impl Verb {
    /// The verb as service managers spell it.
    pub fn word(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Stop => "stop",
        }
    }
}

impl Init {
    /// The service manager of the host under its root.
    pub fn detect(host: &Host) -> Result<Init, Unsupported> {
        if host.path("/run/systemd/system").is_dir() {
            Ok(Init::Systemd)
        } else if host.path(openrc::SOFTLEVEL).exists() {
            Ok(Init::OpenRc)
        } else {
            Err(Unsupported {
                root: host.root().display().to_string(),
            })
        }
    }

    /// Its name, as `status` and `doctor` print it.
    pub fn name(self) -> &'static str {
        match self {
            Init::Systemd => "systemd",
            Init::OpenRc => "OpenRC",
        }
    }

    /// The service a daemon runs as: `lightdm.service` under systemd, `lightdm` under OpenRC.
    pub fn service(self, daemon: &str) -> String {
        match self {
            Init::Systemd => format!("{daemon}.service"),
            Init::OpenRc => daemon.to_string(),
        }
    }

    /// Whether stopping a service ends every process left in its cgroup. systemd does; OpenRC
    /// leaves whatever outlives the script's own stop (its cgroup cleanup is off by default),
    /// such as a user's program started from the desktop session.
    pub fn stop_ends_cgroup(self) -> bool {
        self == Init::Systemd
    }

    /// The display manager's service as the host configures it, if any.
    pub fn display_manager(self, host: &Host) -> Option<String> {
        match self {
            Init::Systemd => systemd::display_manager(host),
            Init::OpenRc => openrc::display_manager(host),
        }
    }

    /// Whether a system service is active now, read from files so a staged root answers too.
    pub fn is_active(self, host: &Host, service: &str) -> bool {
        match self {
            Init::Systemd => systemd::is_running(host, service),
            Init::OpenRc => openrc::is_started(host, service),
        }
    }

    /// The processes in a service's cgroup.
    pub fn pids(self, host: &Host, service: &str) -> Vec<u32> {
        match self {
            Init::Systemd => systemd::pids(host, service),
            Init::OpenRc => openrc::pids(host, service),
        }
    }

    /// The service a process runs in, from the text of its `/proc/<pid>/cgroup`, and whether it
    /// is a system service (not a user's unit, whose name the user picks).
    pub fn service_of(self, cgroup: &str) -> (Option<String>, bool) {
        match self {
            Init::Systemd => systemd::unit_of(cgroup),
            Init::OpenRc => openrc::service_of(cgroup),
        }
    }

    /// The command line that starts or stops a system service.
    pub fn command(self, verb: Verb, service: &str) -> (&'static str, Vec<String>) {
        match self {
            Init::Systemd => ("systemctl", vec![verb.word().into(), service.into()]),
            // `rc-service` execs the script itself: an LSB script (Debian's lightdm, libvirtd)
            // then runs without OpenRC, which keeps it `started` and puts what it starts in the
            // caller's cgroup. openrc-run runs native and LSB scripts alike through OpenRC.
            Init::OpenRc => (
                openrc::OPENRC_RUN,
                vec![openrc::script(service), verb.word().into()],
            ),
        }
    }

    /// Where a service's own messages are: `journalctl -u 'pitcrew@gpu\x2dvm.service'` (a
    /// name that needs quoting is quoted, so the command pastes into a shell as shown).
    pub fn log_where(self, service: &str) -> String {
        match self {
            Init::Systemd => format!("`journalctl -u {}`", crate::text::shell_word(service)),
            Init::OpenRc => format!(
                "`{} {} status` and the system log",
                openrc::OPENRC_RUN,
                crate::text::shell_word(&openrc::script(service))
            ),
        }
    }

    /// An error's hint to where the service's messages are.
    pub fn log_hint(self, service: &str) -> String {
        match self {
            Init::Systemd => format!("{} tells more", self.log_where(service)),
            Init::OpenRc => format!("{} tell more", self.log_where(service)),
        }
    }

    /// The command that stops a service now and at every boot after.
    pub fn disable_now(self, service: &str) -> String {
        let service = crate::text::shell_word(service);
        match self {
            Init::Systemd => format!("`systemctl disable --now {service}`"),
            Init::OpenRc => format!(
                "`rc-update del {service} default && {} {INIT_D}/{service} stop`",
                openrc::OPENRC_RUN,
                INIT_D = openrc::INIT_D
            ),
        }
    }

    /// The program that holds a logind sleep inhibitor: systemd's, or elogind's of the same
    /// options and the same `org.freedesktop.login1` Inhibit call.
    pub fn inhibit_program(self) -> &'static str {
        match self {
            Init::Systemd => "systemd-inhibit",
            Init::OpenRc => "elogind-inhibit",
        }
    }

    /// Whether a login manager takes inhibitors: logind runs wherever systemd does; elogind
    /// keeps logind's `/run/systemd/seats` while it runs.
    pub fn logind(self, host: &Host) -> bool {
        match self {
            Init::Systemd => true,
            Init::OpenRc => host.path("/run/systemd/seats").is_dir(),
        }
    }
}

/// The pids listed in a `cgroup.procs` or `tasks` file.
fn pid_list(text: &str) -> Vec<u32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}
