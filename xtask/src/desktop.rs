//! What the full-stack image has of a desktop: a user (`pc`, uid 1000) whom LightDM logs in
//! automatically into a small X session (openbox), PipeWire, WirePlumber and pipewire-pulse in that
//! session (Debian enables their user units for every user), and sway for a Wayland session.
//! Written as files into the debootstrapped tree, no chroot.

use anyhow::{Context, Result};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Added to the image's package list.
pub const PACKAGES: &[&str] = &[
    "pipewire",
    "pipewire-pulse",
    "wireplumber",
    "openbox",
    "sway",
    "weston",
    "x11-utils",
];

/// The desktop's scenarios, reported by testbed/fullstack/desktop.sh.
pub const SCENARIOS: &[&str] = &[
    "desktop_stays",
    "sound_released",
    "sound_released_repeat",
    "wayland_desktop_stays",
    "session_on_the_card",
];

pub const USER: &str = "pc";
const UID: u32 = 1000;

/// The X session LightDM logs `pc` into; desktop.sh switches `autologin-session` to
/// `pitcrew-sway` for the Wayland scenario.
const X_SESSION: &str = "\
[Desktop Entry]
Name=openbox (pitcrew test)
Exec=/usr/bin/openbox
Type=Application
";
const SWAY_SESSION: &str = "\
[Desktop Entry]
Name=sway with pixman (pitcrew test)
Exec=/usr/local/bin/pitcrew-sway
Type=Application
";
/// Debian's LightDM runs every session through /etc/X11/Xsession, which would split a quoted
/// command line: the environment goes in a script. wlroots draws with pixman (the emulated
/// cards have no 3D); sway's own log is kept for a failure's reason.
const SWAY_WRAPPER: &str = "\
#!/bin/sh
export WLR_RENDERER=pixman WLR_NO_HARDWARE_CURSORS=1
exec /usr/bin/sway 2>/tmp/sway.log
";
/// A Wayland session drawn on the GPU being lent (bochs at 00:03.0, whose dumb buffers weston's
/// pixman renderer can use, where wlroots cannot): weston takes the card through logind, so
/// logind holds it too, as on every GNOME or KDE Wayland desktop.
const WESTON_SESSION: &str = "\
[Desktop Entry]
Name=weston on 00:03.0 (pitcrew test)
Exec=/usr/local/bin/pitcrew-weston
Type=Application
";
/// Weston 10 (Debian 12) and 14 (Debian 13) spell the pixman renderer differently.
const WESTON_WRAPPER: &str = "\
#!/bin/sh
card=$(basename \"$(readlink -f /dev/dri/by-path/pci-0000:00:03.0-card)\")
printf '[core]\\nrequire-input=false\\n' >/tmp/weston.ini
case $(weston --version 2>&1) in
*\" 10.\"*) renderer=--use-pixman ;;
*) renderer=--renderer=pixman ;;
esac
exec /usr/bin/weston --config=/tmp/weston.ini --backend=drm-backend.so $renderer \\
	--drm-device=\"$card\" --log=/tmp/weston.log
";
const LIGHTDM_CONF: &str = "\
[Seat:*]
autologin-user=pc
autologin-user-timeout=0
autologin-session=pitcrew-x
";

/// What the image's cache key must cover of this file.
pub fn recipe() -> String {
    format!(
        "desktop-1\nuser={USER}:{UID}\n{X_SESSION}{SWAY_SESSION}{SWAY_WRAPPER}{WESTON_SESSION}{WESTON_WRAPPER}{LIGHTDM_CONF}pipewire at login\n"
    )
}

pub fn configure(rootfs: &Path) -> Result<()> {
    let etc = rootfs.join("etc");
    add_user(rootfs)?;
    let xsessions = rootfs.join("usr/share/xsessions");
    fs::create_dir_all(&xsessions)?;
    fs::write(xsessions.join("pitcrew-x.desktop"), X_SESSION)?;
    let wayland = rootfs.join("usr/share/wayland-sessions");
    fs::create_dir_all(&wayland)?;
    fs::write(wayland.join("pitcrew-sway.desktop"), SWAY_SESSION)?;
    let wrapper = rootfs.join("usr/local/bin/pitcrew-sway");
    fs::create_dir_all(wrapper.parent().unwrap())?;
    fs::write(&wrapper, SWAY_WRAPPER)?;
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))?;
    fs::write(wayland.join("pitcrew-weston.desktop"), WESTON_SESSION)?;
    let wrapper = rootfs.join("usr/local/bin/pitcrew-weston");
    fs::write(&wrapper, WESTON_WRAPPER)?;
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))?;
    let conf = etc.join("lightdm/lightdm.conf.d");
    fs::create_dir_all(&conf)?;
    fs::write(conf.join("50-pitcrew-autologin.conf"), LIGHTDM_CONF)?;
    enable_pipewire(rootfs)
}

/// The user `pc` (uid 1000) with a home, as files.
pub fn add_user(rootfs: &Path) -> Result<()> {
    let etc = rootfs.join("etc");
    let append = |file: &str, line: String| -> Result<()> {
        let path = etc.join(file);
        let mut text = fs::read_to_string(&path).with_context(|| format!("reading {file}"))?;
        if !text.lines().any(|l| l.starts_with(&format!("{USER}:"))) {
            text.push_str(&line);
            fs::write(&path, text).with_context(|| format!("writing {file}"))?;
        }
        Ok(())
    };
    append(
        "passwd",
        format!("{USER}:x:{UID}:{UID}:pitcrew test user:/home/{USER}:/bin/bash\n"),
    )?;
    append("shadow", format!("{USER}:*:19000:0:99999:7:::\n"))?;
    append("group", format!("{USER}:x:{UID}:\n"))?;
    let home = rootfs.join("home").join(USER);
    fs::create_dir_all(&home)?;
    std::os::unix::fs::chown(&home, Some(UID), Some(UID)).context("chown the user's home")?;
    fs::set_permissions(&home, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// PipeWire, pipewire-pulse and WirePlumber started by every user's manager.
pub fn enable_pipewire(rootfs: &Path) -> Result<()> {
    let etc = rootfs.join("etc");
    // Debian socket-activates PipeWire: a full desktop's first client starts it at login, a
    // bare openbox session has none, so the user manager starts it (and WirePlumber, which its
    // package wants by pipewire.service) as a desktop would.
    for (unit, target) in [
        ("pipewire.service", "default.target"),
        ("pipewire-pulse.service", "default.target"),
        ("wireplumber.service", "pipewire.service"),
    ] {
        let wants = etc.join(format!("systemd/user/{target}.wants"));
        fs::create_dir_all(&wants)?;
        let link = wants.join(unit);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("/usr/lib/systemd/user/{unit}"), &link)
                .with_context(|| format!("enabling {unit} for every user"))?;
        }
    }
    Ok(())
}
