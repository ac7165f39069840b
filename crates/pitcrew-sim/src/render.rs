//! Renders the model into the tree the engine reads, the way the kernel lays it out.
//!
//! `render` reconciles everything after each change instead of patching the tree piecemeal,
//! so the tree cannot drift from the model; unchanged files are left alone.

use std::fs;
use std::io;
use std::path::Path;

use crate::builder::SimInit;
use crate::model::{Device, Model, Proc};
use crate::tree::Tree;

/// The kernel release modprobe's messages mention.
pub(crate) const RELEASE: &str = "6.8.0-sim";

/// Where the kernel keeps a device: `/sys/bus/pci/devices/<bdf>` links here. Devices sit flat
/// under their host bridge (the real tree nests them under bridges), at the depth where the
/// kernel's relative links (`../../../bus/pci/drivers/<d>`) resolve.
pub(crate) fn device_dir(bdf: &str) -> String {
    let domain = bdf.get(..4).unwrap_or("0000");
    format!("/sys/devices/pci{domain}:00/{bdf}")
}

/// `path` relative to /sys, for links between sysfs directories.
fn under_sys(path: &str) -> &str {
    path.strip_prefix("/sys/").unwrap_or(path)
}

/// The parts that never change: device identity, IOMMU groups, the display manager alias.
pub(crate) fn render_static(t: &Tree, model: &Model) -> io::Result<()> {
    t.dir("/sys/bus/pci/drivers")?;
    t.file("/sys/bus/pci/drivers_probe", "")?;
    t.dir("/sys/kernel/iommu_groups")?;
    t.dir("/dev")?;
    crate::services::render_init(t, model)?;
    // The session bus of user 1000 (a socket on a real host).
    t.file("/run/user/1000/bus", "")?;
    for dev in model.devices.values() {
        let s = &dev.spec;
        let dir = device_dir(&s.bdf);
        t.dir(&dir)?;
        t.symlink(
            &format!("/sys/bus/pci/devices/{}", s.bdf),
            &format!("../../../{}", under_sys(&dir)),
        )?;
        let (sub_vendor, sub_device) = s.subsystem;
        t.file(&format!("{dir}/vendor"), &format!("0x{:04x}\n", s.vendor))?;
        t.file(&format!("{dir}/device"), &format!("0x{:04x}\n", s.device))?;
        t.file(&format!("{dir}/class"), &format!("0x{:06x}\n", s.class))?;
        t.file(
            &format!("{dir}/subsystem_vendor"),
            &format!("0x{sub_vendor:04x}\n"),
        )?;
        t.file(
            &format!("{dir}/subsystem_device"),
            &format!("0x{sub_device:04x}\n"),
        )?;
        for (bar, sizes) in &s.resizable {
            t.file(
                &format!("{dir}/resource{bar}_resize"),
                &format!("{sizes:016x}\n"),
            )?;
        }
        if s.is_display() {
            let flag = if s.boot_vga { "1\n" } else { "0\n" };
            t.file(&format!("{dir}/boot_vga"), flag)?;
        }
        if let Some(group) = s.group {
            t.symlink(
                &format!("{dir}/iommu_group"),
                &format!("../../../kernel/iommu_groups/{group}"),
            )?;
            t.symlink(
                &format!("/sys/kernel/iommu_groups/{group}/devices/{}", s.bdf),
                &format!("../../../../{}", under_sys(&dir)),
            )?;
        }
    }
    render_kernel(t, model)?;
    Ok(())
}

/// The running kernel's identity and its module lists: what `uname -r`, /proc and
/// /lib/modules/<release> show.
fn render_kernel(t: &Tree, model: &Model) -> io::Result<()> {
    t.file("/proc/sys/kernel/osrelease", &format!("{RELEASE}\n"))?;
    t.file("/proc/cmdline", &format!("{}\n", model.cmdline))?;
    t.file(
        "/proc/cpuinfo",
        &format!("processor\t: 0\nvendor_id\t: {}\n", model.cpu_vendor),
    )?;
    t.file(
        "/proc/stat",
        &format!("cpu  0 0 0 0 0 0 0 0 0 0\nbtime {}\n", model.boot_time),
    )?;
    let path = |m: &str| format!("kernel/drivers/{m}.ko");
    let (mut dep, mut builtin) = (String::new(), String::new());
    for m in model.modules.values() {
        if m.spec.builtin {
            builtin.push_str(&format!("{}\n", path(&m.spec.name)));
        } else {
            let deps: Vec<String> = m.spec.deps.iter().map(|d| path(d)).collect();
            dep.push_str(&format!("{}: {}\n", path(&m.spec.name), deps.join(" ")));
        }
    }
    t.file(&format!("/lib/modules/{RELEASE}/modules.dep"), &dep)?;
    t.file(&format!("/lib/modules/{RELEASE}/modules.builtin"), &builtin)
}

/// Each BAR's index, first and last address: where given, else packed from 0x60_0000_0000 up.
pub(crate) fn bar_ranges(bars: &[(usize, Option<u64>, u64)]) -> Vec<(usize, u64, u64)> {
    let mut next = 0x60_0000_0000u64;
    bars.iter()
        .map(|&(index, at, size)| {
            let start = at.unwrap_or_else(|| {
                let start = next;
                next += size;
                start
            });
            (index, start, start + size - 1)
        })
        .collect()
}

/// `resource`: start, end and flags of BARs 0-5 and the ROM; unused ones are all zero.
fn resource(bars: &[(usize, Option<u64>, u64)]) -> String {
    let ranges = bar_ranges(bars);
    (0..7)
        .map(|n| match ranges.iter().find(|(i, _, _)| *i == n) {
            Some((_, start, end)) => format!("0x{start:016x} 0x{end:016x} 0x000000000014220c\n"),
            None => format!("0x{0:016x} 0x{0:016x} 0x{0:016x}\n", 0),
        })
        .collect()
}

/// Everything that changes with bindings, modules, processes and units.
pub(crate) fn render(t: &Tree, model: &Model) -> io::Result<()> {
    for dev in model.devices.values() {
        render_device(t, model, dev)?;
    }
    render_drivers(t, model)?;
    render_modules(t, model)?;
    render_nodes(t, model)?;
    for p in model.processes.values() {
        render_process(t, p, model.init)?;
    }
    crate::console::render(t, model)?;
    crate::services::render_units(t, model)
}

fn render_device(t: &Tree, model: &Model, dev: &Device) -> io::Result<()> {
    let bdf = &dev.spec.bdf;
    let dir = device_dir(bdf);
    let override_text = match &dev.driver_override {
        Some(d) => format!("{d}\n"),
        None => "(null)\n".to_string(),
    };
    t.file(&format!("{dir}/driver_override"), &override_text)?;
    t.file(&format!("{dir}/resource"), &resource(&dev.bars))?;
    if let Some(methods) = &dev.reset_method {
        // The kernel prints nothing at all once every method is disabled.
        let text = if methods.is_empty() {
            String::new()
        } else {
            format!("{methods}\n")
        };
        t.file(&format!("{dir}/reset_method"), &text)?;
    }
    match &dev.driver {
        Some(d) => t.symlink(
            &format!("{dir}/driver"),
            &format!("../../../bus/pci/drivers/{d}"),
        )?,
        None => t.remove(&format!("{dir}/driver"))?,
    }
    match dev.spec.drm_card {
        Some(n) if model.has_drm(dev) => {
            // DRM's character major is 226; a render node's minor is 128 above its card's.
            t.file(&format!("{dir}/drm/card{n}/dev"), &format!("226:{n}\n"))?;
            let render = 128 + n;
            t.file(
                &format!("{dir}/drm/renderD{render}/dev"),
                &format!("226:{render}\n"),
            )?;
        }
        _ => t.remove(&format!("{dir}/drm"))?,
    }
    // Sound cards and I2C buses are the native driver's children: gone with the binding.
    let native = dev.driver.is_some() && dev.driver == dev.spec.native_driver;
    if let (Some(n), true) = (dev.spec.sound_card, native) {
        for node in crate::model::sound_nodes(n) {
            let name = node.trim_start_matches("/dev/snd/");
            t.file(&format!("{dir}/sound/card{n}/{name}/dev"), "116:0\n")?;
        }
    } else {
        t.remove(&format!("{dir}/sound"))?;
    }
    for n in &dev.spec.i2c_buses {
        let (bus, class) = (
            format!("{dir}/i2c-{n}"),
            format!("/sys/class/i2c-dev/i2c-{n}"),
        );
        if native {
            t.file(&format!("{bus}/i2c-dev/i2c-{n}/dev"), &format!("89:{n}\n"))?;
            let target = format!("../../{}/i2c-dev/i2c-{n}", under_sys(&bus));
            t.symlink(&class, &target)?;
        } else {
            t.remove(&bus)?;
            t.remove(&class)?;
        }
    }
    let info_dir = format!("/proc/driver/nvidia/gpus/{bdf}");
    match dev.spec.nvidia_minor {
        // nvidia's own format, tab included.
        Some(minor) if dev.driver.as_deref() == Some("nvidia") => t.file(
            &format!("{info_dir}/information"),
            &format!(
                "Model: \t\t NVIDIA GPU\nBus Type: \t PCIe\nBus Location: \t {bdf}\n\
                 Device Minor: \t {minor}\nGPU Excluded:\t No\n"
            ),
        ),
        _ => t.remove(&info_dir),
    }
}

fn render_drivers(t: &Tree, model: &Model) -> io::Result<()> {
    for module in model.modules.values() {
        for driver in &module.spec.drivers {
            let dir = format!("/sys/bus/pci/drivers/{driver}");
            if !module.loaded {
                t.remove(&dir)?;
                continue;
            }
            // Plain files, so an open-for-write succeeds as on sysfs.
            for attr in ["bind", "unbind", "new_id", "remove_id"] {
                t.file(&format!("{dir}/{attr}"), "")?;
            }
            t.symlink(
                &format!("{dir}/module"),
                &format!("../../../../module/{}", module.spec.name),
            )?;
            let bound: Vec<&String> = model
                .devices
                .values()
                .filter(|d| d.driver.as_deref() == Some(driver.as_str()))
                .map(|d| &d.spec.bdf)
                .collect();
            for bdf in &bound {
                t.symlink(
                    &format!("{dir}/{bdf}"),
                    &format!("../../../../{}", under_sys(&device_dir(bdf))),
                )?;
            }
            for name in t.entries(&dir) {
                if model.devices.contains_key(&name) && !bound.contains(&&name) {
                    t.remove(&format!("{dir}/{name}"))?;
                }
            }
        }
    }
    Ok(())
}

fn render_modules(t: &Tree, model: &Model) -> io::Result<()> {
    let mut lines: Vec<(u64, String)> = Vec::new();
    for module in model.modules.values() {
        let name = &module.spec.name;
        let dir = format!("/sys/module/{name}");
        if !module.loaded {
            t.remove(&dir)?;
            continue;
        }
        t.dir(&dir)?;
        for (param, value) in &module.spec.params {
            t.file(&format!("{dir}/parameters/{param}"), &format!("{value}\n"))?;
        }
        if module.spec.builtin {
            continue;
        }
        let refcnt = model.refcnt(name);
        t.file(&format!("{dir}/refcnt"), &format!("{refcnt}\n"))?;
        t.file(&format!("{dir}/initstate"), "live\n")?;
        let holders = model.holders(name);
        t.dir(&format!("{dir}/holders"))?;
        for holder in &holders {
            t.symlink(
                &format!("{dir}/holders/{holder}"),
                &format!("../../{holder}"),
            )?;
        }
        for entry in t.entries(&format!("{dir}/holders")) {
            if !holders.contains(&entry) {
                t.remove(&format!("{dir}/holders/{entry}"))?;
            }
        }
        // The "used by" column names the holders, each followed by a comma, or "-".
        let used_by = if holders.is_empty() {
            "-".to_string()
        } else {
            holders.iter().map(|h| format!("{h},")).collect()
        };
        let line = format!(
            "{name} {} {refcnt} {used_by} Live 0x0000000000000000\n",
            module.spec.size
        );
        lines.push((module.seq, line));
    }
    lines.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    let text: String = lines.into_iter().map(|(_, line)| line).collect();
    t.file("/proc/modules", &text)
}

fn render_nodes(t: &Tree, model: &Model) -> io::Result<()> {
    let present = model.nodes();
    for node in model.possible_nodes() {
        t.file_iff(&node, present.contains_key(&node), "")?;
    }
    Ok(())
}

fn render_process(t: &Tree, p: &Proc, init: SimInit) -> io::Result<()> {
    let dir = format!("/proc/{}", p.pid);
    if !p.alive {
        return t.remove(&dir);
    }
    if t.exists(&dir) {
        // Its identity never changes, and its fds only close (a broker letting go of a
        // session's devices): drop the links of those.
        for n in t.entries(&format!("{dir}/fd")) {
            let link = format!("{dir}/fd/{n}");
            let target = fs::read_link(t.at(&link))?;
            let open = n.parse::<usize>().is_ok_and(|n| n < 3)
                || p.fds.iter().any(|f| Path::new(&f.target) == target);
            if !open {
                t.remove(&link)?;
            }
        }
        return Ok(());
    }
    // Built whole, so a scan of /proc never meets a process without its fds.
    t.dir_atomically(&dir, |staged: &Path| {
        fs::write(staged.join("comm"), format!("{}\n", p.comm))?;
        let cmdline: String = p.cmdline.iter().map(|a| format!("{a}\0")).collect();
        fs::write(staged.join("cmdline"), cmdline)?;
        let cgroup = match init {
            SimInit::OpenRcV1 => format!("1:name=openrc:{}\n0::/\n", p.cgroup),
            _ => format!("0::{}\n", p.cgroup),
        };
        fs::write(staged.join("cgroup"), cgroup)?;
        // Field 22 is the start time in clock ticks after boot (USER_HZ, 100 on Linux).
        fs::write(
            staged.join("stat"),
            format!(
                "{} ({}) S 1 {0} {0} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {} 0 0\n",
                p.pid,
                p.comm,
                p.started * 100
            ),
        )?;
        // Processes in a user's slice run as that user, the rest as root.
        let id = p
            .cgroup
            .split('/')
            .find_map(|part| part.strip_prefix("user-")?.strip_suffix(".slice"))
            .unwrap_or("0");
        fs::write(
            staged.join("status"),
            format!(
                "Name:\t{}\nUid:\t{id}\t{id}\t{id}\t{id}\nGid:\t{id}\t{id}\t{id}\t{id}\n",
                p.comm
            ),
        )?;
        fs::write(staged.join("maps"), crate::maps::text(t, p)?)?;
        let fd_dir = staged.join("fd");
        fs::create_dir(&fd_dir)?;
        let std_streams = ["/dev/null"; 3].into_iter();
        let targets = std_streams.chain(p.fds.iter().map(|f| f.target.as_str()));
        for (n, target) in targets.enumerate() {
            std::os::unix::fs::symlink(target, fd_dir.join(n.to_string()))?;
        }
        Ok(())
    })
}
