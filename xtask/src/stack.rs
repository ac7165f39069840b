//! What runs on top of the full stack's system: LightDM with small sessions (both suites), or
//! GNOME and KDE Plasma with their own display managers (Debian 13).

use crate::suite::Suite;
use crate::{desktop, gnome_plasma, openrc};
use anyhow::{bail, Result};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stack {
    /// LightDM with openbox, sway and weston sessions, started at boot
    Lightdm,
    /// GNOME (GDM) and KDE Plasma (SDDM) on Wayland, one after the other in one boot (trixie)
    GnomePlasma,
    /// sysvinit + OpenRC + elogind, LightDM into openbox with PipeWire (trixie, no systemd)
    Openrc,
}

/// LightDM with Xorg (the OpenRC stack's too).
pub const LIGHTDM_PACKAGES: &[&str] = &[
    "lightdm",
    "lightdm-gtk-greeter",
    "xserver-xorg-core",
    "xserver-xorg-video-fbdev",
    "xserver-xorg-input-libinput",
];

impl Stack {
    pub fn check(self, suite: Suite) -> Result<()> {
        if self != Stack::Lightdm && suite != Suite::Trixie {
            bail!("the {self:?} stack is built from Debian 13 only: use --suite trixie");
        }
        Ok(())
    }

    pub fn packages(self) -> Vec<&'static str> {
        match self {
            // The user bus the sessions use comes from systemd's user manager.
            Stack::Lightdm => LIGHTDM_PACKAGES
                .iter()
                .chain(&["dbus-user-session"])
                .chain(desktop::PACKAGES)
                .copied()
                .collect(),
            Stack::GnomePlasma => gnome_plasma::PACKAGES.to_vec(),
            Stack::Openrc => openrc::packages(),
        }
    }

    /// The guest's verdicts (without the `<suite>/` prefix).
    pub fn scenarios(self) -> Vec<&'static str> {
        match self {
            Stack::Lightdm => crate::fullstack::LIGHTDM_SCENARIOS
                .iter()
                .chain(desktop::SCENARIOS)
                .copied()
                .collect(),
            Stack::GnomePlasma => gnome_plasma::SCENARIOS.to_vec(),
            Stack::Openrc => openrc::SCENARIOS.to_vec(),
        }
    }

    pub fn machine(self) -> &'static str {
        match self {
            Stack::Lightdm | Stack::Openrc => "full-stack",
            Stack::GnomePlasma => "full-desktops",
        }
    }

    /// The sparse image's size: GNOME and Plasma take some 3 GB more than LightDM's stack.
    pub fn image_size(self) -> &'static str {
        match self {
            Stack::Lightdm | Stack::Openrc => "4G",
            Stack::GnomePlasma => "10G",
        }
    }

    /// What the image's cache key must cover of the stack's own files.
    pub fn recipe(self) -> String {
        match self {
            Stack::Lightdm => format!("{}{}", crate::fullstack::TEST_UNIT, desktop::recipe()),
            Stack::GnomePlasma => format!("stack=gnome-plasma\n{}", gnome_plasma::recipe()),
            Stack::Openrc => format!("stack=openrc\n{}", openrc::recipe()),
        }
    }

    /// The boot's whole-run timeout. LightDM's: boot, every scenario (about 30 libvirt starts,
    /// 20 of them sound_released_repeat's; 750 s in all on trixie under TCG on 2 cores) and the
    /// power off. GNOME's and Plasma's: two logins, whose first frames take minutes under TCG.
    pub fn timeout(self) -> Duration {
        Duration::from_secs(match self {
            Stack::Lightdm => 1500,
            Stack::GnomePlasma => 2700,
            // Six scenarios, some ten libvirt starts.
            Stack::Openrc => 900,
        })
    }

    /// The console log's name: the LightDM stack's keeps the name it had alone.
    pub fn console_name(self, suite: Suite) -> String {
        match self {
            Stack::Lightdm => format!("full-stack-{}", suite.name()),
            Stack::GnomePlasma => format!("full-gnome-plasma-{}", suite.name()),
            Stack::Openrc => format!("full-openrc-{}", suite.name()),
        }
    }

    /// What the verdicts are named under: the suite, or `openrc` for the OpenRC stack.
    pub fn prefix(self, suite: Suite) -> &'static str {
        match self {
            Stack::Openrc => "openrc",
            _ => suite.name(),
        }
    }
}
