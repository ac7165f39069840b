//! Describing a simulated machine: its PCI devices, kernel modules, processes and systemd units.

mod device;
pub use device::DeviceSpec;

use crate::model::Model;
use crate::SimHost;

/// cgroup of a process started by a system unit, as `/proc/<pid>/cgroup` names it.
pub fn unit_cgroup(unit: &str) -> String {
    service_cgroup(SimInit::Systemd, unit)
}

/// The service manager of the simulated host, and the cgroup layout its version uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimInit {
    /// systemd (`/run/systemd/system`), services under `/system.slice`.
    #[default]
    Systemd,
    /// OpenRC 0.53 on (`/run/openrc/softlevel`): `0::/openrc.<svc>`.
    OpenRc,
    /// OpenRC 0.51-0.52: `0::/<svc>`.
    OpenRcBare,
    /// OpenRC before 0.51 (Debian 12's 0.45): a `name=openrc:/<svc>` v1 line, `0::/` beside it.
    OpenRcV1,
    /// Neither (runit, s6, plain sysvinit).
    Neither,
}

impl SimInit {
    /// Whether OpenRC runs the services.
    pub fn is_openrc(self) -> bool {
        matches!(
            self,
            SimInit::OpenRc | SimInit::OpenRcBare | SimInit::OpenRcV1
        )
    }
}

/// The cgroup of a service's processes as the model keeps it (the path in the hierarchy that
/// names services: the unified one, or OpenRC's v1 `name=openrc`).
pub fn service_cgroup(init: SimInit, service: &str) -> String {
    match init {
        SimInit::Systemd => format!("/system.slice/{service}"),
        SimInit::OpenRc => format!("/openrc.{service}"),
        SimInit::OpenRcBare | SimInit::OpenRcV1 | SimInit::Neither => format!("/{service}"),
    }
}

/// cgroup of a process in the first graphical login of user 1000.
pub const SESSION_SCOPE: &str = "/user.slice/user-1000.slice/session-2.scope";

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
    pub(crate) pre_softdeps: Vec<String>,
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
            pre_softdeps: Vec::new(),
        }
    }

    /// `softdep <name> pre: <modules>` in modprobe.d (`softdep nvidia pre: vfio-pci` is a
    /// common VFIO setting): modprobe loads them before the module, and `modprobe -r` removes
    /// them after it, each when nothing uses it.
    pub fn softdep_pre(mut self, modules: &[&str]) -> ModuleSpec {
        self.pre_softdeps = modules.iter().map(|m| m.to_string()).collect();
        self
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

/// What a process has mapped, shown in its `/proc/<pid>/maps` as the kernel shows it: the
/// file's device (of its filesystem) and inode, then its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapSpec {
    /// This node, if it exists when the process starts, with the device and inode its file has
    /// under the root; it pins the node's module as an open fd does.
    Node(String),
    /// Some other file: device `major:minor`, inode, name.
    File {
        major: u32,
        minor: u32,
        inode: u64,
        name: String,
    },
    /// This many mappings of the kind every process has (libraries, heap, anonymous memory).
    Ordinary(usize),
}

/// A process to create: at build time with a fixed pid, or by a unit on `systemctl start`.
#[derive(Debug, Clone)]
pub struct ProcessTemplate {
    pub(crate) comm: String,
    pub(crate) cmdline: Vec<String>,
    pub(crate) fds: Vec<FdSpec>,
    pub(crate) maps: Vec<MapSpec>,
    pub(crate) started: Option<u64>,
}

impl ProcessTemplate {
    /// `comm` is also the whole command line until [`ProcessTemplate::cmdline`] says otherwise.
    pub fn new(comm: &str) -> ProcessTemplate {
        ProcessTemplate {
            comm: comm.to_string(),
            cmdline: vec![comm.to_string()],
            fds: Vec::new(),
            maps: Vec::new(),
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

    /// Has this node mapped (when it exists), with no fd open on it unless [`Self::holds`]
    /// says so too.
    pub fn maps(mut self, node: &str) -> ProcessTemplate {
        self.maps.push(MapSpec::Node(node.to_string()));
        self
    }

    /// Has a file mapped that is not a node: device `major:minor`, inode `inode`, shown as
    /// `name`.
    pub fn maps_file(mut self, major: u32, minor: u32, inode: u64, name: &str) -> ProcessTemplate {
        self.maps.push(MapSpec::File {
            major,
            minor,
            inode,
            name: name.to_string(),
        });
        self
    }

    /// Has `count` more mappings of libraries and anonymous memory, as a browser has thousands.
    pub fn ordinary_mappings(mut self, count: usize) -> ProcessTemplate {
        self.maps.push(MapSpec::Ordinary(count));
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
    pub(crate) init: SimInit,
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

    /// The service manager; systemd unless set. Give service processes their cgroup with
    /// [`service_cgroup`] of the same init.
    pub fn init(mut self, init: SimInit) -> Builder {
        self.init = init;
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
