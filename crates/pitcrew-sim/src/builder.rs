//! Describing a simulated machine: its PCI devices, kernel modules, processes and systemd units.

use crate::model::Model;
use crate::SimHost;

/// cgroup of a process started by a system unit, as `/proc/<pid>/cgroup` names it.
pub fn unit_cgroup(unit: &str) -> String {
    format!("/system.slice/{unit}")
}

/// cgroup of a process in the first graphical login of user 1000.
pub const SESSION_SCOPE: &str = "/user.slice/user-1000.slice/session-2.scope";

/// One PCI function.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub(crate) bdf: String,
    pub(crate) vendor: u16,
    pub(crate) device: u16,
    pub(crate) class: u32,
    pub(crate) subsystem: (u16, u16),
    pub(crate) native_driver: Option<String>,
    pub(crate) bound: bool,
    pub(crate) driver_override: Option<String>,
    pub(crate) group: Option<u32>,
    pub(crate) drm_card: Option<u32>,
    pub(crate) boot_vga: bool,
    pub(crate) nvidia_minor: Option<u32>,
    pub(crate) nodes: Vec<String>,
    pub(crate) reset_method: Option<String>,
    pub(crate) sound_card: Option<u32>,
    /// BAR index, address (None: the renderer picks one), size.
    pub(crate) bars: Vec<(usize, Option<u64>, u64)>,
    pub(crate) resizable: Vec<usize>,
    pub(crate) i2c_buses: Vec<u32>,
    pub(crate) framebuffer: bool,
}

impl DeviceSpec {
    /// `bdf` in the full `dddd:bb:dd.f` form; `class` as sysfs shows it (0x030000 for VGA).
    pub fn new(bdf: &str, vendor: u16, device: u16, class: u32) -> DeviceSpec {
        DeviceSpec {
            bdf: bdf.to_string(),
            vendor,
            device,
            class,
            subsystem: (vendor, 0),
            native_driver: None,
            bound: true,
            driver_override: None,
            group: None,
            drm_card: None,
            boot_vga: false,
            nvidia_minor: None,
            nodes: Vec::new(),
            reset_method: None,
            sound_card: None,
            bars: Vec::new(),
            resizable: Vec::new(),
            i2c_buses: Vec::new(),
            framebuffer: false,
        }
    }

    pub fn subsystem(mut self, vendor: u16, device: u16) -> DeviceSpec {
        self.subsystem = (vendor, device);
        self
    }

    /// The driver whose id table matches the device; bound at start when its module is loaded.
    pub fn driver(mut self, native: &str) -> DeviceSpec {
        self.native_driver = Some(native.to_string());
        self
    }

    /// Starts unbound even though its driver is loaded (as after a manual unbind).
    pub fn unbound(mut self) -> DeviceSpec {
        self.bound = false;
        self
    }

    pub fn driver_override(mut self, driver: &str) -> DeviceSpec {
        self.driver_override = Some(driver.to_string());
        self
    }

    pub fn group(mut self, group: u32) -> DeviceSpec {
        self.group = Some(group);
        self
    }

    /// The DRM minor: `card<n>` and `renderD<128+n>` exist while a DRM driver drives it.
    pub fn drm_card(mut self, n: u32) -> DeviceSpec {
        self.drm_card = Some(n);
        self
    }

    /// Only meaningful on display-class devices, which always show `boot_vga`.
    pub fn boot_vga(mut self, boot_vga: bool) -> DeviceSpec {
        self.boot_vga = boot_vga;
        self
    }

    /// `/dev/nvidia<minor>` and `/proc/driver/nvidia/gpus/<bdf>/` exist while bound to `nvidia`.
    pub fn nvidia_minor(mut self, minor: u32) -> DeviceSpec {
        self.nvidia_minor = Some(minor);
        self
    }

    /// A device node (`/dev/nvme0n1`) that exists while the native driver drives the device and
    /// is owned by that driver's module.
    pub fn node(mut self, path: &str) -> DeviceSpec {
        self.nodes.push(path.to_string());
        self
    }

    /// ALSA card `n` while the native driver drives it: `sound/card<n>/` in sysfs and
    /// /dev/snd/controlC<n>, pcmC<n>D3p, hwC<n>D0. As with snd_hda_intel, an unbind waits until
    /// every one of them is closed.
    pub fn sound_card(mut self, n: u32) -> DeviceSpec {
        self.sound_card = Some(n);
        self
    }

    /// An I2C bus of the card (a DDC channel) with its i2c-dev node /dev/i2c-<n> while the
    /// native driver drives it; an unbind waits until the node is closed.
    pub fn i2c_bus(mut self, n: u32) -> DeviceSpec {
        self.i2c_buses.push(n);
        self
    }

    /// `reset_method` as the kernel lists it (`flr bus`); without this the file is absent, as
    /// for a device the kernel knows no way to reset.
    pub fn reset_method(mut self, methods: &str) -> DeviceSpec {
        self.reset_method = Some(methods.to_string());
        self
    }

    /// A memory BAR of `size` bytes (a power of two), shown in `resource`.
    pub fn bar(mut self, index: usize, size: u64) -> DeviceSpec {
        self.bars.push((index, None, size));
        self
    }

    /// A memory BAR at a given address, so a firmware frame buffer can sit in it; also shown in
    /// /proc/iomem.
    pub fn bar_at(mut self, index: usize, start: u64, size: u64) -> DeviceSpec {
        self.bars.push((index, Some(start), size));
        self
    }

    /// The BAR can be resized (`resource<N>_resize` exists).
    pub fn resizable(mut self, index: usize) -> DeviceSpec {
        self.resizable.push(index);
        self
    }

    /// Its native driver registers a frame buffer (DRM fbdev emulation) while it drives the
    /// device with its DRM module loaded, and removes a firmware frame buffer in its BARs when it
    /// binds, as DRM drivers do.
    pub fn framebuffer(mut self) -> DeviceSpec {
        self.framebuffer = true;
        self
    }

    pub(crate) fn is_display(&self) -> bool {
        self.class >> 16 == 0x03
    }
}

/// One kernel module.
#[derive(Debug, Clone)]
pub struct ModuleSpec {
    pub(crate) name: String,
    pub(crate) deps: Vec<String>,
    pub(crate) drivers: Vec<String>,
    pub(crate) drm_for: Vec<String>,
    pub(crate) nodes: Vec<String>,
    pub(crate) builtin: bool,
    pub(crate) loaded: bool,
    pub(crate) size: u64,
    pub(crate) params: Vec<(String, String)>,
}

impl ModuleSpec {
    /// A loadable module, loaded at start unless [`ModuleSpec::unloaded`].
    pub fn new(name: &str) -> ModuleSpec {
        ModuleSpec {
            name: name.to_string(),
            deps: Vec::new(),
            drivers: Vec::new(),
            drm_for: Vec::new(),
            nodes: Vec::new(),
            builtin: false,
            loaded: true,
            size: 16384,
            params: Vec::new(),
        }
    }

    /// Modules it needs; modprobe loads them first.
    pub fn deps(mut self, deps: &[&str]) -> ModuleSpec {
        self.deps = deps.iter().map(|d| d.to_string()).collect();
        self
    }

    /// PCI drivers it registers (`/sys/bus/pci/drivers/<name>`).
    pub fn drivers(mut self, drivers: &[&str]) -> ModuleSpec {
        self.drivers = drivers.iter().map(|d| d.to_string()).collect();
        self
    }

    /// Drivers whose devices get DRM nodes while this module is loaded: a DRM driver lists
    /// itself; `nvidia_drm` lists `nvidia`. The nodes are owned by this module.
    pub fn drm_for(mut self, drivers: &[&str]) -> ModuleSpec {
        self.drm_for = drivers.iter().map(|d| d.to_string()).collect();
        self
    }

    /// Device nodes that exist, owned by this module, while it is loaded (`/dev/nvidiactl`).
    pub fn nodes(mut self, nodes: &[&str]) -> ModuleSpec {
        self.nodes = nodes.iter().map(|n| n.to_string()).collect();
        self
    }

    /// Built into the kernel: always present, never removable, absent from /proc/modules.
    pub fn builtin(mut self) -> ModuleSpec {
        self.builtin = true;
        self
    }

    pub fn unloaded(mut self) -> ModuleSpec {
        self.loaded = false;
        self
    }

    pub fn size(mut self, size: u64) -> ModuleSpec {
        self.size = size;
        self
    }

    /// A parameter in `/sys/module/<name>/parameters/` while loaded (`modeset`, `Y`).
    pub fn param(mut self, name: &str, value: &str) -> ModuleSpec {
        self.params.push((name.to_string(), value.to_string()));
        self
    }
}

/// What a process holds open, resolved when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdSpec {
    /// This node, if it exists when the process starts.
    Node(String),
    /// Every present node named `<prefix><digits>`: `Numbered("/dev/dri/card")` is every card.
    Numbered(String),
}

/// A process to create: at build time with a fixed pid, or by a unit on `systemctl start`.
#[derive(Debug, Clone)]
pub struct ProcessTemplate {
    pub(crate) comm: String,
    pub(crate) cmdline: Vec<String>,
    pub(crate) fds: Vec<FdSpec>,
    pub(crate) started: Option<u64>,
}

impl ProcessTemplate {
    /// `comm` is also the whole command line until [`ProcessTemplate::cmdline`] says otherwise.
    pub fn new(comm: &str) -> ProcessTemplate {
        ProcessTemplate {
            comm: comm.to_string(),
            cmdline: vec![comm.to_string()],
            fds: Vec::new(),
            started: None,
        }
    }

    pub fn cmdline(mut self, argv: &[&str]) -> ProcessTemplate {
        self.cmdline = argv.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Holds this node open (when it exists).
    pub fn holds(mut self, node: &str) -> ProcessTemplate {
        self.fds.push(FdSpec::Node(node.to_string()));
        self
    }

    /// Started this many seconds after boot (`/proc/<pid>/stat`). Unset: a process present at
    /// build time started 5 s after boot, one a unit spawns at that moment.
    pub fn started(mut self, secs_after_boot: u64) -> ProcessTemplate {
        self.started = Some(secs_after_boot);
        self
    }

    /// Holds every present `<prefix><digits>` node open.
    pub fn holds_every(mut self, prefix: &str) -> ProcessTemplate {
        self.fds.push(FdSpec::Numbered(prefix.to_string()));
        self
    }
}

/// The frame buffer the firmware left set up, as the kernel's sysfb makes it a platform device.
#[derive(Debug, Clone)]
pub struct FirmwareFbSpec {
    pub(crate) device: String,
    pub(crate) driver: String,
    pub(crate) claim: String,
    pub(crate) range: (u64, u64),
    pub(crate) bound: bool,
}

impl FirmwareFbSpec {
    /// efifb: `efi-framebuffer.0` bound to driver `efi-framebuffer`, claiming `size` bytes at
    /// `start` as `efifb` in /proc/iomem.
    pub fn efifb(start: u64, size: u64) -> FirmwareFbSpec {
        FirmwareFbSpec {
            device: "efi-framebuffer.0".into(),
            driver: "efi-framebuffer".into(),
            claim: "efifb".into(),
            range: (start, start + size - 1),
            bound: true,
        }
    }
}

/// A systemd service.
#[derive(Debug, Clone)]
pub struct UnitSpec {
    pub(crate) name: String,
    pub(crate) running: bool,
    pub(crate) spawns: Vec<ProcessTemplate>,
}

impl UnitSpec {
    /// `name` with its suffix (`lightdm.service`); starts stopped.
    pub fn new(name: &str) -> UnitSpec {
        UnitSpec {
            name: name.to_string(),
            running: false,
            spawns: Vec::new(),
        }
    }

    /// Running at start; give its processes with [`Builder::process`] in [`unit_cgroup`].
    pub fn running(mut self) -> UnitSpec {
        self.running = true;
        self
    }

    /// A process `systemctl start` creates.
    pub fn spawns(mut self, template: ProcessTemplate) -> UnitSpec {
        self.spawns.push(template);
        self
    }
}

/// Assembles a machine, then [`Builder::build`] renders it into a fresh temp root.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    pub(crate) devices: Vec<DeviceSpec>,
    pub(crate) modules: Vec<ModuleSpec>,
    pub(crate) processes: Vec<(u32, String, ProcessTemplate)>,
    pub(crate) units: Vec<UnitSpec>,
    pub(crate) display_manager: Option<String>,
    pub(crate) cpu_vendor: Option<String>,
    pub(crate) cmdline: Option<String>,
    pub(crate) firmware_fb: Option<FirmwareFbSpec>,
    pub(crate) fbcon: bool,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    pub fn device(mut self, device: DeviceSpec) -> Builder {
        self.devices.push(device);
        self
    }

    pub fn module(mut self, module: ModuleSpec) -> Builder {
        self.modules.push(module);
        self
    }

    pub fn modules(mut self, modules: impl IntoIterator<Item = ModuleSpec>) -> Builder {
        self.modules.extend(modules);
        self
    }

    /// A process alive at start; `cgroup` as [`unit_cgroup`] or [`SESSION_SCOPE`].
    pub fn process(mut self, pid: u32, cgroup: &str, template: ProcessTemplate) -> Builder {
        self.processes.push((pid, cgroup.to_string(), template));
        self
    }

    pub fn unit(mut self, unit: UnitSpec) -> Builder {
        self.units.push(unit);
        self
    }

    /// The firmware's frame buffer device.
    pub fn firmware_fb(mut self, fb: FirmwareFbSpec) -> Builder {
        self.firmware_fb = Some(fb);
        self
    }

    /// fbcon, vtcon1 `(M) frame buffer device`, bound at start (beside vtcon0, the dummy
    /// console every machine has).
    pub fn fbcon(mut self) -> Builder {
        self.fbcon = true;
        self
    }

    /// The unit `display-manager.service` points at (`lightdm.service`).
    pub fn display_manager(mut self, unit: &str) -> Builder {
        self.display_manager = Some(unit.to_string());
        self
    }

    /// `vendor_id` in /proc/cpuinfo; GenuineIntel unless set.
    pub fn cpu_vendor(mut self, vendor: &str) -> Builder {
        self.cpu_vendor = Some(vendor.to_string());
        self
    }

    /// /proc/cmdline; unless set, a distribution kernel's with `intel_iommu=on iommu=pt`.
    pub fn kernel_cmdline(mut self, cmdline: &str) -> Builder {
        self.cmdline = Some(cmdline.to_string());
        self
    }

    /// Renders the machine into a new temp dir.
    ///
    /// Panics on an inconsistent description (a device bound to a driver no loaded module
    /// provides, a dependency on an unknown module): those are bugs in the test, not the engine.
    pub fn build(self) -> SimHost {
        SimHost::from_model(Model::from_builder(self))
    }
}
