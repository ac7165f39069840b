//! The statically linked `pitcrew` that goes into the guest.

use crate::prereqs::is_static_elf;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds pitcrew with crt-static and fault injection into target/static (apart from the normal build), or takes
/// the binary given with --pitcrew. Either way it must be a static ELF.
pub fn get(workspace: &Path, given: Option<&Path>) -> Result<PathBuf> {
    let bin = match given {
        Some(p) => p.to_path_buf(),
        None => build(workspace)?,
    };
    if !is_static_elf(&bin)? {
        bail!(
            "{} is not statically linked: the guest has no libc",
            bin.display()
        );
    }
    Ok(bin)
}

fn build(workspace: &Path) -> Result<PathBuf> {
    let target_dir = workspace.join("target/static");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "xtask: building a static pitcrew ({TARGET}, crt-static) in {}",
        target_dir.display()
    );
    let status = Command::new(cargo)
        .current_dir(workspace)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "pitcrew",
            "--bin",
            "pitcrew",
            // crash_converge.sh kills runs between steps through PITCREW_CRASH_AFTER_STEP.
            "--features",
            "fault-injection",
        ])
        .args(["--target", TARGET, "--target-dir"])
        .arg(&target_dir)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building the static pitcrew failed ({status})");
    }
    Ok(target_dir.join(TARGET).join("release/pitcrew"))
}
