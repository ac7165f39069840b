//! The OpenRC full stack (`cargo xtask full-test --suite trixie --stack openrc`): Debian 13 with
//! sysvinit-core as PID 1 running OpenRC, elogind, dbus, libvirtd, virtlogd and LightDM logging
//! `pc` into an openbox session whose bus comes from dbus-launch and which starts PipeWire and
//! WirePlumber itself. No systemd: elogind conflicts with it.
//!
//! debootstrap resolves `a | b` by taking `a` (sysv-rc, which conflicts with openrc; systemd for
//! udev; libpam-systemd), so it lays down minbase alone; apt in the chroot then installs the rest,
//! naming openrc, libpam-elogind, dbus-x11 and systemd-standalone-sysusers (udev's other choice),
//! and would refuse systemd since elogind conflicts with it.

use crate::desktop;
use crate::fullstack::TOOLS;
use crate::stack::LIGHTDM_PACKAGES;
use crate::suite::Suite;
use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// What debootstrap installs on top of minbase: nothing that has an `a | b` to get wrong.
pub const BOOTSTRAP: &[&str] = &["kmod"];

/// The init, the login and session bus without systemd; apt installs these, [`TOOLS`], trixie's
/// libvirt drivers and LightDM with Xorg, without recommends.
const BASE: &[&str] = &[
    "sysvinit-core",
    "openrc",
    "linux-image-amd64",
    "initramfs-tools",
    "systemd-standalone-sysusers",
    "udev",
    "dbus",
    "dbus-x11",
    "elogind",
    "libpam-elogind",
];
/// The session: openbox, PipeWire started by it, and xdpyinfo for the scenarios.
const SESSION_PACKAGES: &[&str] = &["openbox", "pipewire", "wireplumber", "x11-utils"];

/// What apt installs in the chroot.
pub fn packages() -> Vec<&'static str> {
    BASE.iter()
        .chain(TOOLS)
        .chain(Suite::Trixie.extra_packages())
        .chain(LIGHTDM_PACKAGES)
        .chain(SESSION_PACKAGES)
        .copied()
        .collect()
}

/// Reported by testbed/fullstack/openrc.sh.
pub const SCENARIOS: &[&str] = &[
    "lend_return",
    "dm_stop",
    "desktop_stays",
    "sound_released",
    "stuck_write_service",
    "runlevel_change",
];

/// Services of the default runlevel (Debian's LSB scripts, run by OpenRC).
const DEFAULT_RUNLEVEL: &[&str] = &[
    "dbus",
    "elogind",
    "virtlogd",
    "libvirtd",
    "lightdm",
    "pitcrew-fulltest",
];

/// The test runner, started by OpenRC in the default runlevel: it returns at once (the run
/// re-enters the runlevel itself, which must not wait on it) and the run goes on in the
/// background, in this service's cgroup.
const TEST_SERVICE: &str = "\
#!/sbin/openrc-run
description=\"pitcrew full-stack test run (OpenRC)\"
depend() {
	after dbus elogind libvirtd lightdm
}
start() {
	mkdir -p /mnt/fulltest
	mountpoint -q /mnt/fulltest || mount -o ro,noload /dev/vdb /mnt/fulltest || return 1
	setsid /bin/sh /mnt/fulltest/openrc.sh </dev/null >/dev/console 2>&1 &
}
";

/// The X session: its bus comes from Debian's Xsession (dbus-launch, dbus-x11); Debian ships
/// PipeWire only as systemd user units, so the session starts it, as a desktop's autostart would.
/// WirePlumber gives up when PipeWire's socket is not there yet: the script polls for it (10 s).
const SESSION: &str = "\
#!/bin/sh
pipewire &
i=0
while [ ! -S \"$XDG_RUNTIME_DIR/pipewire-0\" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
wireplumber &
exec openbox
";
const X_SESSION: &str = "\
[Desktop Entry]
Name=openbox with PipeWire (pitcrew OpenRC test)
Exec=/usr/local/bin/pitcrew-openrc-session
Type=Application
";
const LIGHTDM_CONF: &str = "\
[Seat:*]
autologin-user=pc
autologin-user-timeout=0
autologin-session=pitcrew-x
";
/// Keeps the chroot's package scripts from starting daemons.
const POLICY_RC_D: &str = "#!/bin/sh\nexit 101\n";

pub fn recipe() -> String {
    format!(
        "openrc-2 (fstab pass 0)\nbootstrap={}\napt={}\nrunlevel={}\n{TEST_SERVICE}{SESSION}{X_SESSION}{LIGHTDM_CONF}",
        BOOTSTRAP.join(","),
        packages().join(","),
        DEFAULT_RUNLEVEL.join(",")
    )
}

/// apt in the chroot, with the suite's .deb cache shared both ways (hard links, same disk).
pub fn apt_install(rootfs: &Path, debs: &Path) -> Result<()> {
    let archives = rootfs.join("var/cache/apt/archives");
    fs::create_dir_all(&archives)?;
    let link_debs = |from: &Path, to: &Path| -> Result<()> {
        for e in fs::read_dir(from)? {
            let p = e?.path();
            let target = to.join(p.file_name().unwrap());
            if p.extension().is_some_and(|x| x == "deb") && !target.exists() {
                fs::hard_link(&p, &target).or_else(|_| fs::copy(&p, &target).map(|_| ()))?;
            }
        }
        Ok(())
    };
    link_debs(debs, &archives)?;
    let policy = rootfs.join("usr/sbin/policy-rc.d");
    fs::write(&policy, POLICY_RC_D)?;
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o755))?;
    let proc_dir = rootfs.join("proc");
    run(Command::new("mount")
        .args(["-t", "proc", "proc"])
        .arg(&proc_dir))?;
    let chroot = |args: &[&str]| {
        let mut c = Command::new("chroot");
        c.arg(rootfs)
            .args(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q"])
            .args(args);
        run(c.stdout(std::process::Stdio::null()))
    };
    let result = chroot(&["update"]).and_then(|()| {
        let mut args = vec!["install", "-y", "--no-install-recommends"];
        args.extend(packages());
        chroot(&args)
    });
    // Never go on with /proc mounted: the tree is copied into the image and then removed.
    run(Command::new("umount").arg(&proc_dir))?;
    result?;
    link_debs(&archives, debs)?;
    chroot(&["clean"])?;
    fs::remove_file(&policy)?;
    if rootfs.join("var/lib/dpkg/info/systemd.list").exists() {
        bail!("systemd got installed into the OpenRC image");
    }
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

pub fn configure(rootfs: &Path) -> Result<()> {
    let etc = rootfs.join("etc");
    desktop::add_user(rootfs)?;
    let script = etc.join("init.d/pitcrew-fulltest");
    fs::write(&script, TEST_SERVICE)?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    let default = etc.join("runlevels/default");
    fs::create_dir_all(&default)?;
    for svc in DEFAULT_RUNLEVEL {
        if !etc.join("init.d").join(svc).exists() {
            bail!("the OpenRC image has no /etc/init.d/{svc}");
        }
        let link = default.join(svc);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("/etc/init.d/{svc}"), &link)?;
    }
    let session = rootfs.join("usr/local/bin/pitcrew-openrc-session");
    fs::create_dir_all(session.parent().unwrap())?;
    fs::write(&session, SESSION)?;
    fs::set_permissions(&session, fs::Permissions::from_mode(0o755))?;
    let xsessions = rootfs.join("usr/share/xsessions");
    fs::create_dir_all(&xsessions)?;
    fs::write(xsessions.join("pitcrew-x.desktop"), X_SESSION)?;
    let conf = etc.join("lightdm/lightdm.conf.d");
    fs::create_dir_all(&conf)?;
    fs::write(conf.join("50-pitcrew-autologin.conf"), LIGHTDM_CONF)?;
    Ok(())
}
