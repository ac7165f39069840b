//! `cargo xtask dist`: what the packages install, named once. The man pages and shell
//! completions are generated from pitcrew's clap definition into target/dist/; [`contents`] says
//! where every file goes on Debian, Arch and Fedora/openSUSE. `--install` lays a package out from
//! it (the PKGBUILD's package() and the spec's %install call it), `--list` prints what a built
//! package must hold (scripts/packages.sh compares it with `dpkg -c`, `pacman -Qlp`, `rpm -qlp`),
//! and the tests below hold Cargo.toml's cargo-deb assets, the spec's %files and the PKGBUILD to
//! the same list, so the three packages cannot drift apart.

use anyhow::{bail, Context, Result};
use clap_complete::Shell;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Args)]
pub struct Args {
    /// Whose paths: Debian's, Arch's or the RPM distributions' (they differ for zsh)
    #[arg(long, value_enum)]
    layout: Option<Layout>,
    /// Lay out every file of the package under DIR (the PKGBUILD's package(), the spec's %install)
    #[arg(long, value_name = "DIR", requires = "layout")]
    install: Option<PathBuf>,
    /// The pitcrew binary to install [default: release/pitcrew in the target directory]
    #[arg(long, value_name = "PATH", requires = "install")]
    binary: Option<PathBuf>,
    /// Print what the built packages hold instead of generating: a row per file or link, its
    /// kind (file, config, link:TARGET, debian) and its path in the .deb, the Arch package and
    /// the RPM ("-" where it is not in one), tab-separated
    #[arg(long, conflicts_with_all = ["layout", "install"])]
    list: bool,
    /// Then build the .deb with `cargo deb` and take the hook's link off its conffiles (dpkg
    /// supports only regular files there; cargo-deb lists everything under /etc)
    #[arg(long, conflicts_with_all = ["layout", "install", "list"])]
    deb: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Layout {
    Deb,
    Arch,
    Rpm,
}

/// Where a packaged file comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The release binary.
    Binary,
    /// A file of the repository, relative to its root.
    Repo(&'static str),
    /// A file `cargo xtask dist` generated, relative to target/dist.
    Generated(String),
    /// A man page generated into target/dist: every package manager compresses these.
    Man(String),
    /// A symbolic link to this path.
    Link(&'static str),
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub source: Source,
    deb: String,
    /// Arch and the RPM distributions agree on every path.
    other: String,
    /// The administrator's file: kept on upgrades (conffile, backup=, %config(noreplace)).
    pub config: bool,
}

/// libvirt runs every executable in qemu.d; pitcrew is the hook when started under this path.
pub const HOOK: &str = "/etc/libvirt/hooks/qemu.d/pitcrew";

/// Files only the .deb has: Debian policy (12.5, 12.7) wants a copyright file and a changelog in
/// every binary package, where pacman and rpm keep the license and the changelog in the
/// package's own metadata; lintian reads the overrides (dist/debian/lintian-overrides says why).
pub const DEBIAN_ONLY: [&str; 3] = [
    "/usr/share/doc/pitcrew/copyright",
    "/usr/share/doc/pitcrew/changelog.Debian.gz",
    "/usr/share/lintian/overrides/pitcrew",
];

impl Entry {
    fn new(source: Source, path: impl Into<String>) -> Entry {
        let path = path.into();
        Entry {
            source,
            deb: path.clone(),
            other: path,
            config: false,
        }
    }

    pub fn path(&self, layout: Layout) -> &str {
        match layout {
            Layout::Deb => &self.deb,
            Layout::Arch | Layout::Rpm => &self.other,
        }
    }

    /// The path as the package lists it.
    pub fn packaged(&self, layout: Layout) -> String {
        match self.source {
            Source::Man(_) => format!("{}.gz", self.path(layout)),
            _ => self.path(layout).to_string(),
        }
    }

    pub fn mode(&self) -> u32 {
        if self.source == Source::Binary {
            0o755
        } else {
            0o644
        }
    }
}

/// Every file the packages install.
pub fn contents() -> Vec<Entry> {
    let mut entries = vec![
        Entry::new(Source::Binary, "/usr/bin/pitcrew"),
        Entry::new(
            Source::Repo("dist/pitcrew@.service"),
            "/usr/lib/systemd/system/pitcrew@.service",
        ),
        Entry::new(Source::Link("/usr/bin/pitcrew"), HOOK),
        Entry {
            config: true,
            ..Entry::new(
                Source::Repo("dist/pitcrew.toml"),
                "/etc/pitcrew/pitcrew.toml",
            )
        },
        // The documented original, for when the one in /etc has been edited.
        Entry::new(
            Source::Repo("dist/pitcrew.toml"),
            "/usr/share/doc/pitcrew/examples/pitcrew.toml",
        ),
        Entry::new(
            Source::Generated("completions/pitcrew".into()),
            "/usr/share/bash-completion/completions/pitcrew",
        ),
        // Debian's zsh reads vendor-completions; Arch's, Fedora's and openSUSE's site-functions.
        Entry {
            other: "/usr/share/zsh/site-functions/_pitcrew".into(),
            ..Entry::new(
                Source::Generated("completions/_pitcrew".into()),
                "/usr/share/zsh/vendor-completions/_pitcrew",
            )
        },
        Entry::new(
            Source::Generated("completions/pitcrew.fish".into()),
            "/usr/share/fish/vendor_completions.d/pitcrew.fish",
        ),
    ];
    for (name, _) in man_pages() {
        let path = format!("/usr/share/man/man1/{name}");
        entries.push(Entry::new(Source::Man(name), path));
    }
    entries
}

/// pitcrew.1 plus pitcrew-<sub>.1 for each subcommand (man pitcrew-install), with their commands.
fn man_pages() -> Vec<(String, clap::Command)> {
    let command = pitcrew::command();
    let mut pages = vec![("pitcrew.1".to_string(), command.clone())];
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        // clap wants 'static names; this process ends right after.
        let name: &'static str = format!("pitcrew-{}", sub.get_name()).leak();
        pages.push((
            format!("{name}.1"),
            sub.clone().name(name).display_name(name),
        ));
    }
    pages
}

pub fn run(args: Args) -> Result<()> {
    if args.list {
        for row in table() {
            println!("{}", row.join("\t"));
        }
        return Ok(());
    }
    if args.layout.is_some() && args.install.is_none() {
        bail!("--layout goes with --install or --list");
    }
    generate()?;
    if let (Some(dir), Some(layout)) = (&args.install, args.layout) {
        let binary = args
            .binary
            .clone()
            .unwrap_or_else(|| target_dir().join("release/pitcrew"));
        install(dir, layout, &binary)?;
        println!("laid out the {layout:?} package in {}", dir.display());
    }
    if args.deb {
        let deb = cargo_deb()?;
        fix_conffiles(&deb)?;
        println!("{}", deb.display());
    }
    Ok(())
}

/// `--list`'s rows: kind, then the path in each package as its package manager lists it.
pub fn table() -> Vec<[String; 4]> {
    let mut rows: Vec<[String; 4]> = contents()
        .iter()
        .map(|e| {
            let kind = match e.source {
                Source::Link(target) => format!("link:{target}"),
                _ if e.config => "config".to_string(),
                _ => "file".to_string(),
            };
            [
                kind,
                e.packaged(Layout::Deb),
                e.packaged(Layout::Arch),
                e.packaged(Layout::Rpm),
            ]
        })
        .collect();
    for path in DEBIAN_ONLY {
        rows.push(["debian".into(), path.into(), "-".into(), "-".into()]);
    }
    rows
}

fn generate() -> Result<()> {
    let out = dist_dir();
    let completions = out.join("completions");
    std::fs::create_dir_all(&completions)
        .with_context(|| format!("creating {}", completions.display()))?;
    for (name, command) in man_pages() {
        let mut buf = Vec::new();
        clap_mangen::Man::new(command).render(&mut buf)?;
        write(&out.join(name), &buf)?;
    }
    let command = pitcrew::command();
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

fn install(root: &Path, layout: Layout, binary: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in contents() {
        let dest = root.join(entry.path(layout).trim_start_matches('/'));
        let parent = dest.parent().expect("every path has a directory");
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let from = match &entry.source {
            Source::Binary => binary.to_path_buf(),
            Source::Repo(path) => crate::workspace().join(path),
            Source::Generated(name) | Source::Man(name) => dist_dir().join(name),
            Source::Link(target) => {
                // A second run replaces the link instead of failing on it.
                let _ = std::fs::remove_file(&dest);
                std::os::unix::fs::symlink(target, &dest)
                    .with_context(|| format!("linking {} to {target}", dest.display()))?;
                continue;
            }
        };
        std::fs::copy(&from, &dest)
            .with_context(|| format!("copying {} to {}", from.display(), dest.display()))?;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(entry.mode()))
            .with_context(|| format!("setting the mode of {}", dest.display()))?;
    }
    Ok(())
}

/// Runs `cargo deb` and returns the path of the .deb it made (its last line of output).
fn cargo_deb() -> Result<PathBuf> {
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["deb", "--quiet"])
        .current_dir(crate::workspace())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo deb (cargo install cargo-deb)")?;
    if !out.status.success() {
        bail!("cargo deb failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout
        .lines()
        .rfind(|l| l.ends_with(".deb"))
        .context("cargo deb named no .deb")?;
    Ok(crate::workspace().join(path.trim()))
}

/// cargo-deb makes every file under /etc a conffile, the hook's link included; dpkg supports
/// only regular files as conffiles (lintian: conffile-has-bad-file-type), which is why
/// debhelper's dh_installdeb lists only those. This does the same to the built .deb.
fn fix_conffiles(deb: &Path) -> Result<()> {
    let unpacked = target_dir().join("debian/unpacked");
    let _ = std::fs::remove_dir_all(&unpacked);
    dpkg_deb(&["-R".as_ref(), deb.as_os_str(), unpacked.as_os_str()])?;
    let conffiles = unpacked.join("DEBIAN/conffiles");
    let listed = std::fs::read_to_string(&conffiles)
        .with_context(|| format!("reading {}", conffiles.display()))?;
    let regular: String = listed
        .lines()
        .filter(|path| {
            let file = unpacked.join(path.trim_start_matches('/'));
            std::fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_file())
        })
        .map(|path| format!("{path}\n"))
        .collect();
    write(&conffiles, regular.as_bytes())?;
    dpkg_deb(&[
        "--root-owner-group".as_ref(),
        "-Zxz".as_ref(),
        "--build".as_ref(),
        unpacked.as_os_str(),
        deb.as_os_str(),
    ])?;
    std::fs::remove_dir_all(&unpacked).with_context(|| format!("removing {}", unpacked.display()))
}

fn dpkg_deb(args: &[&std::ffi::OsStr]) -> Result<()> {
    let status = Command::new("dpkg-deb")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running dpkg-deb")?;
    if !status.success() {
        bail!("dpkg-deb {args:?} failed ({status})");
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace().join("target"))
}

fn dist_dir() -> PathBuf {
    target_dir().join("dist")
}

#[cfg(test)]
mod tests;
