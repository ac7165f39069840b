//! Host prerequisites: check them, and install the missing ones with apt-get.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One thing the test bed needs on the host, and the Debian package that provides it.
struct Need {
    what: &'static str,
    package: &'static str,
    present: fn() -> bool,
}

const NEEDS: &[Need] = &[
    Need {
        what: "qemu-system-x86_64",
        package: "qemu-system-x86",
        present: || find_tool("qemu-system-x86_64").is_some(),
    },
    Need {
        what: "cpio",
        package: "cpio",
        present: || find_tool("cpio").is_some(),
    },
    Need {
        what: "depmod",
        package: "kmod",
        present: || find_tool("depmod").is_some(),
    },
    Need {
        what: "glibc's static libc.a (for the crt-static pitcrew)",
        package: "libc6-dev",
        present: || {
            [
                "/usr/lib/x86_64-linux-gnu/libc.a",
                "/usr/lib64/libc.a",
                "/usr/lib/libc.a",
            ]
            .iter()
            .any(|p| Path::new(p).exists())
        },
    },
    Need {
        what: "OVMF, the UEFI firmware for the uefi-* machines",
        package: "ovmf",
        present: || Path::new(crate::qemu::OVMF).exists(),
    },
    Need {
        what: "a statically linked /bin/busybox",
        package: "busybox-static",
        present: || is_static_elf(Path::new(BUSYBOX)).unwrap_or(false),
    },
];

pub const BUSYBOX: &str = "/bin/busybox";

/// Checks every prerequisite and installs what is missing (apt-get update + install -y).
pub fn ensure() -> Result<()> {
    let missing: Vec<&Need> = NEEDS.iter().filter(|n| !(n.present)()).collect();
    if missing.is_empty() {
        eprintln!(
            "xtask: prerequisites present (qemu-system-x86, cpio, kmod, libc6-dev, ovmf, busybox-static)"
        );
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|n| n.package).collect();
    for n in &missing {
        eprintln!("xtask: missing {} (package {})", n.what, n.package);
    }
    apt_update()?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(&packages);
    apt_get(&args)?;
    if let Some(n) = NEEDS.iter().find(|n| !(n.present)()) {
        bail!("{} is still missing after installing {}", n.what, n.package);
    }
    Ok(())
}

/// A tool only some recipes need (a decompressor): installed on first use.
pub fn ensure_tool(tool: &str, package: &str) -> Result<PathBuf> {
    if let Some(p) = find_tool(tool) {
        return Ok(p);
    }
    apt_update()?;
    apt_get(&["install", "-y", "--no-install-recommends", package])?;
    find_tool(tool).with_context(|| format!("{tool} still missing after installing {package}"))
}

pub fn apt_update() -> Result<()> {
    apt_get(&["update"])
}

/// Runs apt-get as root: directly when we are root, through `sudo -n` otherwise.
fn apt_get(args: &[&str]) -> Result<()> {
    let mut cmd = if is_root() {
        Command::new("apt-get")
    } else if find_tool("sudo").is_some() {
        let mut c = Command::new("sudo");
        c.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        c
    } else {
        bail!(
            "apt-get {} needs root: run this as root or install sudo",
            args.join(" ")
        );
    };
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    eprintln!("xtask: apt-get {}", args.join(" "));
    let status = cmd.status().context("running apt-get")?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Finds a tool in PATH or in the sbin directories a non-root PATH often lacks.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// True when the file is an ELF executable without a program interpreter (statically linked).
pub fn is_static_elf(path: &Path) -> Result<bool> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return Ok(false);
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[32..40].try_into()?) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        let Some(bytes) = data.get(o..o + 4) else {
            return Ok(false);
        };
        if u32::from_le_bytes(bytes.try_into()?) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}
