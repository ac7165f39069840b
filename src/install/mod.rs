//! `pitcrew install` / `pitcrew uninstall`: put the binary, the unit (OpenRC: the init script),
//! the libvirt hook and the config in place (under `--root` when staging), record what was
//! written, and remove exactly that.

mod instances;
pub mod layout;
mod legacy;
mod manifest;
mod offer;
mod reload;
mod write;

pub use manifest::{Entry, Kind, Manifest};

use crate::config::{Config, ConfigError, CONFIG_PATH};
use crate::host::init::Init;
use crate::host::Host;
use crate::untrusted::{self, Last};
use crate::vm::{NameError, VmName};
use std::path::{Path, PathBuf};
use std::time::Duration;
use write::Writer;

const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, thiserror::Error)]
/// Why install or uninstall stopped.
pub enum InstallError {
    #[error(transparent)]
    /// A `--vm` name libvirt would not accept.
    Name(#[from] NameError),
    #[error(transparent)]
    /// The host runs neither systemd nor OpenRC.
    Init(#[from] crate::host::init::Unsupported),
    #[error("{0}")]
    /// The bash GPU Pit Crew is installed; the text says how to migrate.
    Legacy(String),
    #[error("{path} exists and was not written by `pitcrew install`; move it away and run install again", path = .0.display())]
    /// A file install would write is not its own.
    Exists(PathBuf),
    #[error("{path}: {action}: {cause}", path = .path.display(), cause = crate::untrusted::cause(.path, .source))]
    /// A file operation failed.
    Io {
        /// The file.
        path: PathBuf,
        /// What was tried.
        action: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
    #[error("{0}; fix the config, install never replaces it")]
    /// The existing config is invalid or insecure.
    Config(#[from] ConfigError),
    #[error("{path}: {reason}", path = .path.display())]
    /// The install manifest is missing or damaged.
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    #[error("`{command}` failed: {reason}")]
    /// A command (systemctl, libvirt's reload by SIGHUP) failed.
    Command {
        /// The command line.
        command: String,
        /// Why.
        reason: String,
    },
    #[error(
        "pitcrew has lent {0} to vfio-pci: stop the VM or run `pitcrew reattach` with those \
         addresses first, then uninstall"
    )]
    /// Uninstall while a card is lent would leave nothing to give it back.
    Lent(String),
}

impl From<crate::atomic::WriteError> for InstallError {
    fn from(e: crate::atomic::WriteError) -> InstallError {
        InstallError::Io {
            path: e.path,
            action: e.action,
            source: e.source,
        }
    }
}

/// What `pitcrew install` was asked for.
pub struct InstallOptions<'a> {
    /// VMs to add a config table for.
    pub vms: &'a [String],
    /// The binary to copy (the running one, normally).
    pub binary: &'a Path,
    /// Print what would be done and change nothing.
    pub dry_run: bool,
    /// Reload the running libvirt daemon when the hook is new, so it runs it.
    pub reload: bool,
}

/// What `uninstall` does besides removing what install wrote.
pub struct UninstallOptions {
    /// Also remove the config (or put back what it was before install).
    pub purge: bool,
    /// Print what would be done and change nothing.
    pub dry_run: bool,
    /// Reload the running libvirt daemon when the hook was removed.
    pub reload: bool,
}

/// Installs under the host's root, printing each action to `out`.
pub fn install(
    host: &Host,
    opts: &InstallOptions,
    out: &mut dyn std::io::Write,
) -> Result<(), InstallError> {
    let vms = opts
        .vms
        .iter()
        .map(|name| VmName::parse(name))
        .collect::<Result<Vec<_>, _>>()?;
    let found = legacy::find(host);
    if !found.is_empty() {
        return Err(InstallError::Legacy(legacy::migration_help(&found)));
    }
    let init = init_of(host, out)?;
    let mut manifest = read_manifest(host)?.unwrap_or_default();
    let mut w = Writer::new(host, opts.dry_run, out);
    let (service, text, mode) = match init {
        Init::Systemd => (layout::UNIT, layout::unit_text(layout::BINARY), 0o644),
        Init::OpenRc => (
            layout::INIT_SCRIPT,
            layout::init_script_text(layout::BINARY),
            0o755,
        ),
    };

    // Refuse before writing anything: every file install writes must be new or its own.
    for path in [layout::BINARY, service, layout::HOOK, layout::MANIFEST] {
        if w.exists(path) && !manifest.owns(path) {
            return Err(InstallError::Exists(host.path(path)));
        }
    }
    let hook_is_new = !w.exists(layout::HOOK);
    let binary = std::fs::read(opts.binary).map_err(|source| InstallError::Io {
        path: opts.binary.to_path_buf(),
        action: "cannot read the binary to install",
        source,
    })?;
    w.file(&mut manifest, layout::BINARY, 0o755, &binary)?;
    w.file(&mut manifest, service, mode, text.as_bytes())?;
    w.symlink(&mut manifest, layout::HOOK, layout::BINARY)?;
    config(host, &mut w, &mut manifest, &vms)?;
    // The manifest lists itself and its directory, so uninstall removes those too.
    w.dirs(&mut manifest, layout::MANIFEST)?;
    manifest.record(layout::MANIFEST, Kind::File);
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serializes") + "\n";
    w.file(&mut manifest, layout::MANIFEST, 0o644, json.as_bytes())?;

    if init == Init::Systemd {
        systemctl(host, opts.dry_run, &["daemon-reload"], w.out())?;
    }
    if hook_is_new {
        reload::reload_daemons(host, opts.reload, opts.dry_run, w.out())?;
    }
    offer::desktop(host, &vms, w.out());
    Ok(())
}

/// Removing the unit while a card is lent would leave nothing to give it back when its VM stops.
fn refuse_while_lent(host: &Host) -> Result<(), InstallError> {
    let record = crate::record::Record::load(host).map_err(|source| InstallError::Io {
        path: crate::record::path(host),
        action: "cannot read",
        source,
    })?;
    if record.lent.is_empty() {
        return Ok(());
    }
    let lent: Vec<String> = record
        .lent
        .iter()
        .map(|(bdf, lent)| match &lent.owner {
            Some(vm) => format!("{bdf} (VM '{vm}')"),
            None => bdf.to_string(),
        })
        .collect();
    Err(InstallError::Lent(lent.join(", ")))
}

/// Removes what install recorded; with `purge` also the config (or its pre-install contents).
pub fn uninstall(
    host: &Host,
    opts: &UninstallOptions,
    out: &mut dyn std::io::Write,
) -> Result<(), InstallError> {
    let UninstallOptions { purge, dry_run, .. } = *opts;
    let Some(manifest) = read_manifest(host)? else {
        return Err(InstallError::Manifest {
            path: host.path(layout::MANIFEST),
            reason: "missing: nothing was installed by `pitcrew install` here (a .deb is removed with apt)".into(),
        });
    };
    refuse_while_lent(host)?;
    let init = init_of(host, out)?;
    let mut w = Writer::new(host, dry_run, out);
    if init == Init::OpenRc {
        instances::remove_stopped(host, &mut w)?;
    }
    let files = manifest
        .entries
        .iter()
        .rev()
        .filter(|e| e.kind != Kind::Dir);
    for entry in files.filter(|e| e.path != layout::MANIFEST) {
        w.remove(entry)?;
    }
    if purge {
        match (&manifest.config_original, manifest.config_created) {
            (Some(original), _) => w.restore(CONFIG_PATH, original.as_bytes())?,
            (None, true) => w.remove(&Entry {
                path: CONFIG_PATH.into(),
                kind: Kind::File,
            })?,
            (None, false) => {}
        }
    } else if manifest.config_created || manifest.config_original.is_some() {
        let _ = writeln!(w.out(), "keep {CONFIG_PATH} (uninstall --purge removes it)");
    }
    w.remove(&Entry {
        path: layout::MANIFEST.into(),
        kind: Kind::File,
    })?;
    for dir in manifest
        .entries
        .iter()
        .rev()
        .filter(|e| e.kind == Kind::Dir)
    {
        w.remove(dir)?;
    }
    let hook_removed = manifest.owns(layout::HOOK) && (dry_run || !w.exists(layout::HOOK));
    if init == Init::Systemd {
        systemctl(host, dry_run, &["daemon-reload"], w.out())?;
    }
    if hook_removed {
        reload::reload_daemons(host, opts.reload, dry_run, w.out())?;
    }
    Ok(())
}

/// Creates the config, or appends tables for the VMs it does not list yet; never replaces it.
fn config(
    host: &Host,
    w: &mut Writer,
    manifest: &mut Manifest,
    vms: &[VmName],
) -> Result<(), InstallError> {
    let existing = match untrusted::open(&host.path(CONFIG_PATH), Last::Follow)
        .and_then(|file| file.read_text(crate::config::MAX_CONFIG_BYTES))
    {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(InstallError::Io {
                path: host.path(CONFIG_PATH),
                action: "cannot read",
                source,
            })
        }
    };
    match existing {
        None => {
            let mut text = layout::EXAMPLE_CONFIG.to_string();
            vms.iter()
                .for_each(|vm| text.push_str(&layout::vm_table(vm.as_str())));
            w.dirs(manifest, CONFIG_PATH)?;
            w.write_config(CONFIG_PATH, 0o644, text.as_bytes())?;
            manifest.config_created = true;
        }
        Some(text) => {
            // Load (not just parse) so an insecure or invalid config stops the install.
            let config = Config::load(host)?.unwrap_or_default();
            let missing: Vec<&VmName> = vms
                .iter()
                .filter(|vm| config.listed(vm).is_none())
                .collect();
            if missing.is_empty() {
                let _ = writeln!(
                    w.out(),
                    "keep {CONFIG_PATH} (already lists every VM asked for)"
                );
                return Ok(());
            }
            let mut merged = text.clone();
            if !merged.ends_with('\n') {
                merged.push('\n');
            }
            missing
                .iter()
                .for_each(|vm| merged.push_str(&layout::vm_table(vm.as_str())));
            if !manifest.config_created && manifest.config_original.is_none() {
                manifest.config_original = Some(text);
            }
            w.write_config(CONFIG_PATH, 0, merged.as_bytes())?;
        }
    }
    Ok(())
}

/// The service manager whose files install lays out. A staged root that shows neither is
/// staged for systemd, as before OpenRC was supported (`run/openrc/softlevel` stages for
/// OpenRC); this machine itself must run one of them.
fn init_of(host: &Host, out: &mut dyn std::io::Write) -> Result<Init, InstallError> {
    match Init::detect(host) {
        Ok(init) => Ok(init),
        Err(_) if host.is_staged() => {
            let _ = writeln!(
                out,
                "neither /run/systemd/system nor {} under the staged root: laying out systemd's files",
                crate::host::init::openrc::SOFTLEVEL
            );
            Ok(Init::Systemd)
        }
        Err(e) => Err(e.into()),
    }
}

fn read_manifest(host: &Host) -> Result<Option<Manifest>, InstallError> {
    let path = host.path(layout::MANIFEST);
    match untrusted::open(&path, Last::Follow).and_then(|file| file.read_text(1024 * 1024)) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| InstallError::Manifest {
                path,
                reason: format!("not a pitcrew install manifest: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(InstallError::Io {
            path,
            action: "cannot read",
            source,
        }),
    }
}

/// Runs systemctl on the real host; a staged root only says what it would run.
fn systemctl(
    host: &Host,
    dry_run: bool,
    args: &[&str],
    out: &mut dyn std::io::Write,
) -> Result<(), InstallError> {
    let command = format!("systemctl {}", args.join(" "));
    if dry_run || host.is_staged() {
        let why = if dry_run { "dry run" } else { "staged root" };
        let _ = writeln!(out, "skip `{command}` ({why})");
        return Ok(());
    }
    let _ = writeln!(out, "run `{command}`");
    match host.effects().run("systemctl", args, SYSTEMCTL_TIMEOUT) {
        Ok(o) if o.success => Ok(()),
        Ok(o) => Err(InstallError::Command {
            command,
            reason: o.stderr.trim().to_string(),
        }),
        Err(e) => Err(InstallError::Command {
            command,
            reason: e.to_string(),
        }),
    }
}
