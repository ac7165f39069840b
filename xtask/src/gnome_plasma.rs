//! The GNOME and KDE Plasma full stack (Debian 13 only): the same system as the LightDM stack
//! (systemd, libvirt) with GNOME (gnome-shell, gdm3, gnome-session) and Plasma (kwin-wayland,
//! plasma-workspace, plasma-desktop, sddm, powerdevil) from Debian's packages, no recommends.
//! No display manager starts at boot: `fullstack/gnome_plasma.sh` writes the keep-off rule first,
//! then starts GDM, later SDDM, each logging the user `pc` straight into its Wayland session.
//! Written as files into the debootstrapped tree, no chroot.

use crate::desktop;
use anyhow::{Context, Result};
use std::fs;
use std::path::Path;

/// On top of the common system packages (minus LightDM's).
pub const PACKAGES: &[&str] = &[
    "gnome-shell",
    "gnome-session",
    // nautilus (which xdg-desktop-portal-gnome needs) depends on `localsearch`, a virtual
    // package (tracker-extract provides it), which debootstrap does not resolve.
    "tracker-extract",
    "gdm3",
    "kwin-wayland",
    "plasma-workspace",
    "plasma-desktop",
    "sddm",
    "powerdevil",
    "xwayland",
    "libgl1-mesa-dri",
    "pipewire",
    "pipewire-pulse",
    "wireplumber",
    "dbus-user-session",
    "acl",
    "python3",
    "x11-utils",
];

/// Reported by testbed/fullstack/gnome_plasma.sh.
pub const SCENARIOS: &[&str] = &[
    "gnome_desktop_stays",
    "plasma_desktop_stays",
    "app_on_the_card",
];

/// GDM logs `pc` in at its start; its Wayland session needs no setting (GDM prefers Wayland),
/// AccountsService names which one.
const GDM_CONF: &str = "\
[daemon]
AutomaticLoginEnable=true
AutomaticLogin=pc
WaylandEnable=true
";
const ACCOUNTS_USER: &str = "\
[User]
Session=gnome
SystemAccount=false
";
/// SDDM logs `pc` into Plasma's Wayland session (`plasma.desktop`; X11 is `plasmax11`).
const SDDM_CONF: &str = "\
[Autologin]
User=pc
Session=plasma
Relogin=false
";
/// Started by the test run, not at boot.
const TEST_UNIT: &str = "\
[Unit]
Description=pitcrew full-stack test run (GNOME and Plasma)
After=multi-user.target libvirtd.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'mkdir -p /mnt/fulltest && mount -o ro,noload /dev/vdb /mnt/fulltest && exec /bin/sh /mnt/fulltest/gnome_plasma.sh'
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=2400

[Install]
WantedBy=multi-user.target
";

pub fn recipe() -> String {
    format!("gnome-plasma-1\n{GDM_CONF}{ACCOUNTS_USER}{SDDM_CONF}{TEST_UNIT}")
}

pub fn configure(rootfs: &Path) -> Result<()> {
    let etc = rootfs.join("etc");
    let system = etc.join("systemd/system");
    desktop::add_user(rootfs)?;
    // Neither display manager at boot: the keep-off rule must be in place before either starts.
    let _ = fs::remove_file(system.join("display-manager.service"));
    let _ = fs::remove_file(system.join("default.target"));
    std::os::unix::fs::symlink(
        "/usr/lib/systemd/system/multi-user.target",
        system.join("default.target"),
    )
    .context("setting default.target")?;
    fs::write(system.join("pitcrew-fulltest.service"), TEST_UNIT)?;
    let wants = system.join("multi-user.target.wants");
    fs::create_dir_all(&wants)?;
    let link = wants.join("pitcrew-fulltest.service");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink("/etc/systemd/system/pitcrew-fulltest.service", &link)?;
    fs::create_dir_all(etc.join("gdm3"))?;
    fs::write(etc.join("gdm3/daemon.conf"), GDM_CONF)?;
    let accounts = rootfs.join("var/lib/AccountsService/users");
    fs::create_dir_all(&accounts)?;
    fs::write(accounts.join(desktop::USER), ACCOUNTS_USER)?;
    fs::create_dir_all(etc.join("sddm.conf.d"))?;
    fs::write(etc.join("sddm.conf.d/50-pitcrew-autologin.conf"), SDDM_CONF)?;
    desktop::enable_pipewire(rootfs)
}
