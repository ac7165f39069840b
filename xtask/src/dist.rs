//! `cargo xtask dist`: man pages and shell completions generated from pitcrew's clap definition
//! (one source of truth), written to target/dist/ where [package.metadata.deb] picks them up.

use anyhow::{Context, Result};
use clap_complete::Shell;
use std::path::{Path, PathBuf};

pub fn run() -> Result<()> {
    let out = dist_dir();
    let completions = out.join("completions");
    std::fs::create_dir_all(&completions)
        .with_context(|| format!("creating {}", completions.display()))?;
    let command = pitcrew::command();

    // pitcrew.1 plus pitcrew-<sub>.1 for each subcommand (man pitcrew-install).
    write_man(&out, command.clone())?;
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        // clap wants 'static names; this process ends right after.
        let name: &'static str = format!("pitcrew-{}", sub.get_name()).leak();
        let sub = sub.clone().name(name).display_name(name);
        write_man(&out, sub)?;
    }
    for (shell, file) in [
        (Shell::Bash, "pitcrew"),
        (Shell::Zsh, "_pitcrew"),
        (Shell::Fish, "pitcrew.fish"),
    ] {
        let mut cmd = command.clone();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "pitcrew", &mut buf);
        write(&completions.join(file), &buf)?;
    }
    println!("wrote man pages and completions to {}", out.display());
    Ok(())
}

fn write_man(dir: &Path, command: clap::Command) -> Result<()> {
    let mut buf = Vec::new();
    let name = command.get_name().to_string();
    clap_mangen::Man::new(command).render(&mut buf)?;
    write(&dir.join(format!("{name}.1")), &buf)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn dist_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("dist")
}
