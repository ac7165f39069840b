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
    // The codec driver of QEMU's hda-duplex: with it the GPU's audio function has a sound card.
    "snd_hda_codec_generic",
    // The split-slot machine's NIC, in the GPU's slot but an IOMMU group of its own.
    "e1000e",
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
    let pkgs = kernel_packages()?;
    let mut recipe = format!("{RECIPE_REV}\n");
    for p in &pkgs {
        recipe += &format!("{p}={}\n", apt_field(p, "Version")?);
    }
    let busybox_version = dpkg_version("busybox-static").unwrap_or_else(|| "unknown".into());
    recipe += &format!("modules={}\nbusybox={busybox_version}\n", MODULES.join(","));
    let dir = cache_root()?.join(format!("{:016x}", fnv1a(recipe.as_bytes())));
    let ready = dir.join("READY");
    let what = recipe.lines().nth(1).unwrap_or_default().replace('=', " ");
    if !ready.exists() {
        eprintln!("xtask: building kernel kit for {what} in {}", dir.display());
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("recipe.txt"), &recipe)?;
        build(&dir, &pkgs)?;
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
        recipe: format!("{what}, cache {}", dir.display()),
    })
}

/// The distribution's kernel meta package: Debian's linux-image-amd64, Ubuntu's
/// linux-image-generic.
fn meta_package() -> &'static str {
    let os = fs::read_to_string("/etc/os-release").unwrap_or_default();
    let ubuntu = os
        .lines()
        .any(|l| (l.starts_with("ID=") || l.starts_with("ID_LIKE=")) && l.contains("ubuntu"));
    if ubuntu {
        "linux-image-generic"
    } else {
        "linux-image-amd64"
    }
}

fn depends(pkg: &str) -> Vec<String> {
    let Ok(out) = Command::new("apt-cache").args(["depends", pkg]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(str::to_string)
        .collect()
}

/// The versioned kernel image package the meta package depends on (or
/// $PITCREW_TESTBED_KERNEL_PKG), and, where modules ship apart (Ubuntu), its linux-modules and
/// linux-modules-extra packages.
fn kernel_packages() -> Result<Vec<String>> {
    let image = match std::env::var("PITCREW_TESTBED_KERNEL_PKG") {
        Ok(p) => p,
        Err(_) => {
            let meta = meta_package();
            let find = || {
                depends(meta)
                    .into_iter()
                    .find(|d| d.starts_with("linux-image-"))
            };
            match find() {
                Some(p) => p,
                None => {
                    // A fresh machine may have no package lists yet.
                    prereqs::apt_update()?;
                    find().with_context(|| {
                        format!("apt-cache depends {meta} names no linux-image-* package")
                    })?
                }
            }
        }
    };
    let mut pkgs = vec![image.clone()];
    pkgs.extend(
        depends(&image)
            .into_iter()
            .filter(|d| d.starts_with("linux-modules-")),
    );
    let flavour = image
        .trim_start_matches("linux-image-")
        .trim_start_matches("unsigned-");
    let extra = format!("linux-modules-extra-{flavour}");
    if !pkgs.contains(&extra) && apt_field(&extra, "Version").is_ok() {
        pkgs.push(extra);
    }
    Ok(pkgs)
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

fn build(dir: &Path, pkgs: &[String]) -> Result<()> {
    let debdir = dir.join("deb");
    fs::create_dir_all(&debdir)?;
    run(Command::new("apt-get")
        .args(["download", "-q"])
        .args(pkgs)
        .current_dir(&debdir))?;
    let unpack = dir.join("unpack");
    for deb in fs::read_dir(&debdir)? {
        let deb = deb?.path();
        if deb.extension().is_some_and(|e| e == "deb") {
            run(Command::new("dpkg").arg("-x").arg(&deb).arg(&unpack))?;
        }
    }

    let mods_parent = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|p| unpack.join(p))
        .find(|p| p.is_dir())
        .context("the kernel packages have no lib/modules")?;
    // The module tree that has a matching vmlinuz in boot/.
    let version = fs::read_dir(&mods_parent)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|v| unpack.join(format!("boot/vmlinuz-{v}")).exists())
        .context("no lib/modules/<version> with a boot/vmlinuz-<version>")?;
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
        decompress(&to)?;
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

/// Busybox modprobe loads plain .ko files: unpack .ko.zst / .ko.xz / .ko.gz (Ubuntu, newer
/// Debian) in place; depmod then indexes the plain names.
fn decompress(path: &Path) -> Result<()> {
    let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
        return Ok(());
    };
    let (tool, package) = match ext {
        "zst" => ("zstd", "zstd"),
        "xz" => ("xz", "xz-utils"),
        "gz" => ("gzip", "gzip"),
        _ => return Ok(()),
    };
    let tool = prereqs::ensure_tool(tool, package)?;
    run(Command::new(tool).args(["-d", "-q", "-f"]).arg(path))
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

#[cfg(test)]
mod decompress_tests {
    #[test]
    fn gzip_modules_are_unpacked_in_place() {
        let dir = std::env::temp_dir().join(format!("xtask-decompress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ko = dir.join("m.ko");
        std::fs::write(&ko, b"module").unwrap();
        let st = std::process::Command::new("gzip")
            .arg(&ko)
            .status()
            .unwrap();
        assert!(st.success());
        super::decompress(&dir.join("m.ko.gz")).unwrap();
        assert_eq!(std::fs::read(&ko).unwrap(), b"module");
        assert!(!dir.join("m.ko.gz").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
