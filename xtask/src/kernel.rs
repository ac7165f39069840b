//! The Debian kernel, fetched with `apt-get download`, trimmed to the modules the scenarios need,
//! and cached under ~/.cache/pitcrew-testbed/<recipe-hash>/ with busybox.

use crate::prereqs::{self, BUSYBOX};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when the way the cache is built changes.
const RECIPE_REV: &str = "testbed-kit-1";

/// Modules the guest loads (their dependency closure comes from modules.dep).
pub const MODULES: &[&str] = &[
    "bochs",
    "snd_hda_intel",
    "vfio",
    "vfio_pci",
    "vfio_iommu_type1",
];

/// Everything cached for one recipe.
pub struct Kit {
    pub version: String,
    pub vmlinuz: PathBuf,
    /// A root holding lib/modules/<version>/ with only the needed modules and a fresh modules.dep.
    pub modroot: PathBuf,
    pub busybox: PathBuf,
    pub recipe: String,
}

pub fn cache_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PITCREW_TESTBED_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache"),
    };
    Ok(base.join("pitcrew-testbed"))
}

/// Returns the cached kit for the current recipe, building it when absent.
pub fn prepare() -> Result<Kit> {
    let pkg = kernel_package()?;
    let pkg_version = apt_field(&pkg, "Version")?;
    let busybox_version = dpkg_version("busybox-static").unwrap_or_else(|| "unknown".into());
    let recipe = format!(
        "{RECIPE_REV}\n{pkg}={pkg_version}\nmodules={}\nbusybox={busybox_version}\n",
        MODULES.join(",")
    );
    let dir = cache_root()?.join(format!("{:016x}", fnv1a(recipe.as_bytes())));
    let ready = dir.join("READY");
    if !ready.exists() {
        eprintln!(
            "xtask: building kernel kit for {pkg} {pkg_version} in {}",
            dir.display()
        );
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("recipe.txt"), &recipe)?;
        build(&dir, &pkg)?;
        fs::write(&ready, "")?;
    }
    let version = fs::read_to_string(dir.join("kernel-version"))?
        .trim()
        .to_string();
    Ok(Kit {
        vmlinuz: dir.join("vmlinuz"),
        modroot: dir.join("modroot"),
        busybox: dir.join("busybox"),
        version,
        recipe: format!("{pkg} {pkg_version}, cache {}", dir.display()),
    })
}

/// The versioned image package that linux-image-amd64 depends on (or $PITCREW_TESTBED_KERNEL_PKG).
fn kernel_package() -> Result<String> {
    if let Ok(p) = std::env::var("PITCREW_TESTBED_KERNEL_PKG") {
        return Ok(p);
    }
    let find = || -> Option<String> {
        let out = Command::new("apt-cache")
            .args(["depends", "linux-image-amd64"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|d| d.starts_with("linux-image-"))
            .map(str::to_string)
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    // A fresh machine may have no package lists yet.
    prereqs::apt_update()?;
    find().context("apt-cache depends linux-image-amd64 names no linux-image-* package")
}

fn apt_field(pkg: &str, field: &str) -> Result<String> {
    let out = Command::new("apt-cache")
        .args(["show", "--no-all-versions", pkg])
        .output()
        .context("running apt-cache show")?;
    let prefix = format!("{field}: ");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .with_context(|| format!("apt-cache show {pkg} has no {field}"))
}

fn dpkg_version(pkg: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", pkg])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

fn build(dir: &Path, pkg: &str) -> Result<()> {
    let debdir = dir.join("deb");
    fs::create_dir_all(&debdir)?;
    run(Command::new("apt-get")
        .args(["download", "-q", pkg])
        .current_dir(&debdir))?;
    let deb = fs::read_dir(&debdir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    let unpack = dir.join("unpack");
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&unpack))?;

    let mods_parent = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|p| unpack.join(p))
        .find(|p| p.is_dir())
        .context("the kernel package has no lib/modules")?;
    let version = fs::read_dir(&mods_parent)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .context("lib/modules is empty")?;
    let depmod = prereqs::find_tool("depmod").context("depmod not found")?;
    // depmod -b wants <base>/lib/modules; the unpacked tree may only have usr/lib/modules.
    let base = mods_parent.parent().and_then(Path::parent).unwrap();
    run(Command::new(&depmod).arg("-b").arg(base).arg(&version))?;
    let full = mods_parent.join(&version);
    fs::copy(
        unpack.join("boot").join(format!("vmlinuz-{version}")),
        dir.join("vmlinuz"),
    )
    .context("copying vmlinuz")?;

    let dep = fs::read_to_string(full.join("modules.dep"))?;
    let files = closure(&dep, MODULES)?;
    let trimmed = dir.join("modroot/lib/modules").join(&version);
    for rel in &files {
        let to = trimmed.join(rel);
        fs::create_dir_all(to.parent().unwrap())?;
        fs::copy(full.join(rel), &to).with_context(|| format!("copying {rel}"))?;
    }
    for f in [
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.order",
    ] {
        if full.join(f).exists() {
            fs::copy(full.join(f), trimmed.join(f))?;
        }
    }
    run(Command::new(&depmod)
        .arg("-b")
        .arg(dir.join("modroot"))
        .arg(&version))?;
    eprintln!("xtask: kept {} of the kernel's modules", files.len());
    fs::copy(BUSYBOX, dir.join("busybox")).context("copying busybox")?;
    fs::write(dir.join("kernel-version"), &version)?;
    fs::remove_dir_all(&unpack)?;
    Ok(())
}

/// A module's name from its path in modules.dep: kernel/x/snd-hda-intel.ko.xz -> snd_hda_intel.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split(".ko").next().unwrap_or(file).replace('-', "_")
}

/// The files of the wanted modules and everything they depend on.
fn closure(modules_dep: &str, wanted: &[&str]) -> Result<BTreeSet<String>> {
    let mut deps: HashMap<String, (String, Vec<String>)> = HashMap::new();
    for line in modules_dep.lines() {
        let Some((file, rest)) = line.split_once(':') else {
            continue;
        };
        let d = rest.split_whitespace().map(str::to_string).collect();
        deps.insert(module_name(file), (file.to_string(), d));
    }
    let mut out = BTreeSet::new();
    let mut todo: Vec<String> = wanted.iter().map(|w| w.replace('-', "_")).collect();
    while let Some(name) = todo.pop() {
        let (file, d) = deps
            .get(&name)
            .with_context(|| format!("module {name} is not in modules.dep"))?;
        if out.insert(file.clone()) {
            todo.extend(d.iter().map(|f| module_name(f)));
        }
    }
    Ok(out)
}

/// FNV-1a, 64 bit: a hash that stays the same across Rust releases (cache keys).
pub fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closure_follows_dependencies() {
        let dep = "kernel/a/bochs.ko: kernel/a/drm-vram.ko kernel/a/drm.ko\n\
                   kernel/a/drm-vram.ko: kernel/a/drm.ko\nkernel/a/drm.ko:\nkernel/b/other.ko:\n";
        let got: Vec<_> = closure(dep, &["bochs"]).unwrap().into_iter().collect();
        assert_eq!(
            got,
            [
                "kernel/a/bochs.ko",
                "kernel/a/drm-vram.ko",
                "kernel/a/drm.ko"
            ]
        );
        assert!(closure(dep, &["missing"]).is_err());
    }

    #[test]
    fn module_names_are_normalised() {
        assert_eq!(module_name("kernel/s/snd-hda-intel.ko.xz"), "snd_hda_intel");
    }
}
