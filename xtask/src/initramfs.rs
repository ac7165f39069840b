//! The initramfs, built anew for every run: busybox, the trimmed modules, the static pitcrew
//! and the guest scripts from testbed/. Uncompressed newc cpio: cheap to build and to unpack.

use crate::kernel::Kit;
use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

pub fn build(
    kit: &Kit,
    pitcrew: &Path,
    against: Option<&Path>,
    testbed: &Path,
    out: &Path,
) -> Result<()> {
    let stage = out.with_extension("d");
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "run", "tmp", "etc",
    ] {
        fs::create_dir_all(stage.join(d))?;
    }
    install(&kit.busybox, &stage.join("bin/busybox"), 0o755)?;
    install(pitcrew, &stage.join("usr/sbin/pitcrew"), 0o755)?;
    if let Some(other) = against {
        install(other, &stage.join("usr/sbin/pitcrew-b"), 0o755)?;
    }
    copy_tree(&kit.modroot.join("lib"), &stage.join("lib"))?;
    install(&testbed.join("init.sh"), &stage.join("init"), 0o755)?;
    copy_tree(testbed, &stage.join("testbed"))?;

    let files = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    // Sorted paths keep the archive reproducible; -R 0:0 makes everything root's.
    let list = Command::new("find")
        .arg(".")
        .current_dir(&stage)
        .output()
        .context("running find")?;
    let mut names: Vec<&str> = std::str::from_utf8(&list.stdout)?.lines().collect();
    names.sort_unstable();
    let mut cpio = Command::new("cpio")
        .args(["-o", "-H", "newc", "-R", "0:0", "--quiet"])
        .current_dir(&stage)
        .stdin(Stdio::piped())
        .stdout(files)
        .spawn()
        .context("running cpio")?;
    {
        use std::io::Write;
        let mut stdin = cpio.stdin.take().unwrap();
        stdin.write_all(names.join("\n").as_bytes())?;
        stdin.write_all(b"\n")?;
    }
    let status = cpio.wait()?;
    if !status.success() {
        bail!("cpio failed ({status})");
    }
    fs::remove_dir_all(&stage)?;
    Ok(())
}

fn install(from: &Path, to: &Path, mode: u32) -> Result<()> {
    fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(())
}
