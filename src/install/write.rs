//! File operations of install/uninstall under the host's root, each printed as it happens (or,
//! in a dry run, instead of happening).

use super::manifest::{Entry, Kind, Manifest};
use super::InstallError;
use crate::atomic;
use crate::host::Host;
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub struct Writer<'a> {
    host: &'a Host,
    dry_run: bool,
    out: &'a mut dyn Write,
    /// Directories a dry run said it would create: said once, though they never appear.
    would_create: BTreeSet<String>,
}

fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> InstallError {
    let path = path.to_path_buf();
    move |source| InstallError::Io {
        path,
        action,
        source,
    }
}

impl<'a> Writer<'a> {
    pub fn new(host: &'a Host, dry_run: bool, out: &'a mut dyn Write) -> Writer<'a> {
        Writer {
            host,
            dry_run,
            out,
            would_create: BTreeSet::new(),
        }
    }

    pub fn out(&mut self) -> &mut dyn Write {
        self.out
    }

    fn say(&mut self, what: String) {
        let prefix = if self.dry_run { "would " } else { "" };
        let _ = writeln!(self.out, "{prefix}{what}");
    }

    pub fn exists(&self, path: &str) -> bool {
        std::fs::symlink_metadata(self.host.path(path)).is_ok()
    }

    /// Creates the missing parents of `path` (0755), recording each as created by install.
    pub fn dirs(&mut self, manifest: &mut Manifest, path: &str) -> Result<(), InstallError> {
        let mut missing: Vec<&Path> = Path::new(path)
            .ancestors()
            .skip(1)
            .filter(|dir| *dir != Path::new("/"))
            .take_while(|dir| {
                let dir = dir.to_string_lossy();
                !self.exists(&dir) && !self.would_create.contains(dir.as_ref())
            })
            .collect();
        missing.reverse();
        if !self.dry_run && !missing.is_empty() {
            // The staging root itself (`--root DIR`) is the user's, not recorded.
            let root = self.host.root();
            std::fs::create_dir_all(root).map_err(io(root, "cannot create the root"))?;
        }
        for dir in missing {
            let shown = dir.to_string_lossy().into_owned();
            self.say(format!("create {shown}/ (0755)"));
            if self.dry_run {
                self.would_create.insert(shown.clone());
            } else {
                let real = self.host.path(dir);
                std::fs::create_dir(&real).map_err(io(&real, "cannot create directory"))?;
                set_mode(&real, 0o755)?;
            }
            manifest.record(&shown, Kind::Dir);
        }
        Ok(())
    }

    /// Writes a file install owns (atomically, with `mode`) and records it.
    pub fn file(
        &mut self,
        manifest: &mut Manifest,
        path: &str,
        mode: u32,
        bytes: &[u8],
    ) -> Result<(), InstallError> {
        self.dirs(manifest, path)?;
        self.say(format!("write {path} ({mode:04o}, {} bytes)", bytes.len()));
        if !self.dry_run {
            atomic::write(&self.host.path(path), mode, bytes)?;
        }
        manifest.record(path, Kind::File);
        Ok(())
    }

    /// The config: written in place of the old one (keeping its mode when `mode` is 0).
    pub fn write_config(
        &mut self,
        path: &str,
        mode: u32,
        bytes: &[u8],
    ) -> Result<(), InstallError> {
        let real = self.host.path(path);
        let mode = match mode {
            0 => {
                std::fs::metadata(&real)
                    .map_err(io(&real, "cannot inspect"))?
                    .permissions()
                    .mode()
                    & 0o7777
            }
            mode => mode,
        };
        let verb = if real.exists() {
            "merge VM tables into"
        } else {
            "write"
        };
        self.say(format!("{verb} {path} ({mode:04o})"));
        if !self.dry_run {
            atomic::write(&real, mode, bytes)?;
        }
        Ok(())
    }

    pub fn restore(&mut self, path: &str, bytes: &[u8]) -> Result<(), InstallError> {
        self.say(format!("restore {path} as it was before install"));
        self.write_config(path, 0, bytes).map(|_| ())
    }

    pub fn symlink(
        &mut self,
        manifest: &mut Manifest,
        path: &str,
        target: &str,
    ) -> Result<(), InstallError> {
        self.dirs(manifest, path)?;
        // Left alone when right already: its ctime tells doctor when libvirt got the hook.
        if std::fs::read_link(self.host.path(path)).is_ok_and(|t| t == Path::new(target)) {
            self.say(format!("keep {path} -> {target}"));
            manifest.record(path, Kind::Symlink);
            return Ok(());
        }
        self.say(format!("link {path} -> {target}"));
        if !self.dry_run {
            let real = self.host.path(path);
            match std::fs::remove_file(&real) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&real, "cannot replace")(e)),
            }
            std::os::unix::fs::symlink(target, &real).map_err(io(&real, "cannot create link"))?;
        }
        manifest.record(path, Kind::Symlink);
        Ok(())
    }

    /// Removes an entry if it is still what install made; a directory only when empty.
    pub fn remove(&mut self, entry: &Entry) -> Result<(), InstallError> {
        let real = self.host.path(&entry.path);
        let Ok(meta) = std::fs::symlink_metadata(&real) else {
            self.say(format!("skip {} (already gone)", entry.path));
            return Ok(());
        };
        let matches = match entry.kind {
            Kind::Dir => meta.is_dir(),
            Kind::File => meta.is_file(),
            Kind::Symlink => meta.file_type().is_symlink(),
        };
        if !matches {
            self.say(format!("keep {} (no longer what install made)", entry.path));
            return Ok(());
        }
        if entry.kind == Kind::Dir
            && std::fs::read_dir(&real).map_or(true, |mut d| d.next().is_some())
        {
            self.say(format!("keep {}/ (not empty)", entry.path));
            return Ok(());
        }
        self.say(format!("remove {}", entry.path));
        if self.dry_run {
            return Ok(());
        }
        let result = match entry.kind {
            Kind::Dir => std::fs::remove_dir(&real),
            _ => std::fs::remove_file(&real),
        };
        result.map_err(io(&real, "cannot remove"))
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), InstallError> {
    // Explicit, so the result does not depend on the installing shell's umask.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io(path, "cannot set mode"))
}
