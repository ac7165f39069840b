//! A simulated Linux host for pitcrew's tests.
//!
//! [`Builder`] (or a ready machine from [`fixtures`]) renders a kernel's sysfs, procfs, /dev,
//! systemd and cgroup layout into a temp dir. [`SimHost::host`] gives the engine a
//! [`pitcrew::Host`] over that root whose effects are simulated: sysfs writes, modprobe
//! and systemctl change the model the way the kernel would, the tree is re-rendered, and every
//! call is recorded as an [`Event`]. Faults (blocked or failing writes, failing commands,
//! processes ignoring SIGTERM) are injected through [`SimHost`].
//!
//! Layout choices worth knowing when reading the tree:
//! - Devices live at `/sys/devices/pciDDDD:00/<bdf>/` and `/sys/bus/pci/devices/<bdf>` is a
//!   symlink there, as in the kernel; at that depth the kernel's relative links
//!   (`driver -> ../../../bus/pci/drivers/<d>`, `iommu_group -> ../../../kernel/iommu_groups/N`)
//!   resolve.
//! - A module's refcnt is its loaded dependents plus the live processes holding one of its
//!   nodes; an open node keeps pinning its module after the node disappears (unbind).
//! - The fourth /proc/modules column is the kernel's "used by" list (the holders).
//! - `modprobe -r` also removes dependencies left unused, silently, as kmod does.
//! - `/dev/nvidia<minor>` and `/proc/driver/nvidia/gpus/<bdf>/` exist while the GPU is bound
//!   to `nvidia`; DRM nodes while its driver has a loaded DRM module (`nvidia_drm` for nvidia).
//! - Processes have fds 0-2 on `/dev/null`, then one per node they hold. A node they map
//!   shows in `/proc/<pid>/maps` with the device and inode of its file under the root, and
//!   pins its module like an open fd.
//! - A device's sound card (`sound/card<N>/`, /dev/snd/*C<N>*) and I2C buses
//!   (`i2c-<N>/i2c-dev/`, /dev/i2c-<N>) exist while its native driver drives it. An unbind waits,
//!   as snd_card_free and i2c_del_adapter do, until no live process holds one of them (or, on
//!   vfio-pci, the group's /dev/vfio node); meanwhile every other write about that device waits
//!   on its lock.

mod bare;
mod builder;
mod commands;
mod console;
mod effects;
mod faults;
pub mod fixtures;
mod kernel;
mod maps;
mod model;
mod processes;
mod rebar;
mod render;
mod services;
mod sound_servers;
mod state;
mod tree;

pub use bare::{domain_xml, FakeRunner, TestHost, HOOK_OPS};
pub use builder::{
    service_cgroup, unit_cgroup, Builder, DeviceSpec, FdSpec, FirmwareFbSpec, MapSpec, ModuleSpec,
    ProcessTemplate, SimInit, UnitSpec, SESSION_SCOPE,
};
pub use faults::WriteBlock;
pub use pitcrew::Signal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pitcrew::{Effects, Host};

use effects::SimEffects;
use model::Model;
use state::Shared;

/// Linux errno values the simulated kernel answers with.
pub mod errno {
    pub const ENOENT: i32 = 2;
    pub const ESRCH: i32 = 3;
    pub const EIO: i32 = 5;
    pub const EACCES: i32 = 13;
    pub const EBUSY: i32 = 16;
    pub const ENODEV: i32 = 19;
    pub const EINVAL: i32 = 22;
    pub const ENOSPC: i32 = 28;
}

/// One call the engine made on the host, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `path` is host-absolute, as the engine named it (`/sys/bus/pci/drivers/nvidia/unbind`).
    Write {
        path: String,
        value: String,
    },
    /// `argv[0]` is the program as given (`modprobe`).
    Command {
        argv: Vec<String>,
    },
    Signal {
        pid: u32,
        signal: Signal,
    },
    /// A process started to outlive the engine (the sleep inhibitor's holder).
    Spawn {
        argv: Vec<String>,
    },
}

/// A simulated machine in its own temp dir, removed when this is dropped.
pub struct SimHost {
    shared: Arc<Shared>,
    _dir: tempfile::TempDir,
}

impl SimHost {
    /// Leaves the tree on disk for other tools to read (`pitcrew status --root`) and returns
    /// its root; nothing simulates writes to it any more.
    pub fn keep(mut self) -> PathBuf {
        self._dir.disable_cleanup(true);
        self.root().to_path_buf()
    }

    pub(crate) fn from_model(model: Model) -> SimHost {
        let dir = tempfile::Builder::new()
            .prefix("pitcrew-sim")
            .tempdir()
            .expect("create the simulated root");
        // The root is a subdirectory so file staging can sit beside it, outside the host paths.
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("create the simulated root");
        let shared = Shared::new(root, model).expect("render the simulated host");
        SimHost {
            shared: Arc::new(shared),
            _dir: dir,
        }
    }

    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// A host over the simulated root whose changes go through the simulated kernel.
    pub fn host(&self) -> Host {
        Host::new(self.root(), self.effects())
    }

    pub fn effects(&self) -> Arc<dyn Effects> {
        Arc::new(SimEffects {
            shared: self.shared.clone(),
        })
    }

    /// Everything the engine did so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.shared.lock().events.clone()
    }

    /// The values written to one host path, in order.
    pub fn writes_to(&self, path: &str) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Write { path: p, value } if p == path => Some(value),
                _ => None,
            })
            .collect()
    }

    /// The command lines run so far, in order.
    pub fn commands(&self) -> Vec<Vec<String>> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Command { argv } => Some(argv),
                _ => None,
            })
            .collect()
    }

    /// The driver bound to `bdf` (full `dddd:bb:dd.f` form), if any.
    pub fn driver(&self, bdf: &str) -> Option<String> {
        self.shared.lock().model.devices.get(bdf)?.driver.clone()
    }

    /// The size of a BAR now, in bytes.
    pub fn bar_size(&self, bdf: &str, bar: usize) -> Option<u64> {
        let state = self.shared.lock();
        let dev = state.model.devices.get(bdf)?;
        dev.bars.iter().find(|b| b.0 == bar).map(|b| b.2)
    }

    /// What `reset_method` lists now; None when the function has no such file.
    pub fn reset_method(&self, bdf: &str) -> Option<String> {
        self.shared
            .lock()
            .model
            .devices
            .get(bdf)?
            .reset_method
            .clone()
    }

    pub fn driver_override(&self, bdf: &str) -> Option<String> {
        self.shared
            .lock()
            .model
            .devices
            .get(bdf)?
            .driver_override
            .clone()
    }

    /// Builtin modules count as loaded.
    pub fn module_loaded(&self, name: &str) -> bool {
        let state = self.shared.lock();
        state.model.modules.get(name).is_some_and(|m| m.loaded)
    }

    /// What `/sys/module/<name>/refcnt` shows; None when not loaded or builtin.
    pub fn module_refcnt(&self, name: &str) -> Option<usize> {
        let state = self.shared.lock();
        let m = state.model.modules.get(name)?;
        (m.loaded && !m.spec.builtin).then(|| state.model.refcnt(name))
    }

    /// `name` with or without `.service` (an OpenRC service by its name).
    pub fn unit_active(&self, name: &str) -> bool {
        let state = self.shared.lock();
        let name = service_name(&state.model, name);
        state.model.units.get(&name).is_some_and(|u| u.running)
    }

    /// Live pids in the unit's cgroup.
    pub fn unit_pids(&self, name: &str) -> Vec<u32> {
        let state = self.shared.lock();
        state.model.unit_pids(&service_name(&state.model, name))
    }

    pub fn process_alive(&self, pid: u32) -> bool {
        let state = self.shared.lock();
        state.model.processes.get(&pid).is_some_and(|p| p.alive)
    }

    /// Live pids whose comm is `comm` (a restarted Xorg has a new pid).
    pub fn pids_of(&self, comm: &str) -> Vec<u32> {
        let state = self.shared.lock();
        state
            .model
            .processes
            .values()
            .filter(|p| p.alive && p.comm == comm)
            .map(|p| p.pid)
            .collect()
    }

    /// The device nodes a process holds, host-absolute.
    pub fn process_fds(&self, pid: u32) -> Vec<String> {
        let state = self.shared.lock();
        state
            .model
            .processes
            .get(&pid)
            .map(|p| p.fds.iter().map(|f| f.target.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether a host path (`/dev/vfio/12`) exists in the rendered tree.
    pub fn dev_exists(&self, path: &str) -> bool {
        let state = self.shared.lock(); // not mid-render
        let exists = std::fs::symlink_metadata(self.root().join(path.trim_start_matches('/')));
        drop(state);
        exists.is_ok()
    }

    /// Gives `uid` an entry in a node's ACL (`system.posix_acl_access`), as udev's `uaccess`
    /// step does for the user of the node's seat. The temp dir's filesystem must support ACLs.
    pub fn grant_acl(&self, node: &str, uid: u32) {
        let _rendering = self.shared.lock();
        // Version 2, then (tag, permissions, id): owner rw, the user rw, group rw, mask rw,
        // others nothing; the id of all but the user's entry is unused (-1).
        let mut value = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (0x01u16, 6u16, u32::MAX),
            (0x02, 6, uid),
            (0x04, 6, u32::MAX),
            (0x10, 6, u32::MAX),
            (0x20, 0, u32::MAX),
        ] {
            value.extend(
                [
                    &tag.to_le_bytes()[..],
                    &perm.to_le_bytes(),
                    &id.to_le_bytes(),
                ]
                .concat(),
            );
        }
        let path = self.root().join(node.trim_start_matches('/'));
        rustix::fs::lsetxattr(
            &path,
            "system.posix_acl_access",
            &value,
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap_or_else(|e| panic!("set an ACL on {}: {e}", path.display()));
    }

    /// What `systemd-inhibit --list` shows: one line per live holder.
    pub fn inhibitors(&self) -> Vec<String> {
        commands::inhibitors(&self.shared.lock().model)
    }

    /// Whether the console drawn on frame buffers (fbcon, vtcon1) is bound.
    pub fn fbcon_bound(&self) -> bool {
        self.shared.lock().model.consoles.fbcon == console::Fbcon::Bound
    }

    /// The firmware frame buffer's state: None when the device is gone, else whether its
    /// driver holds it.
    pub fn firmware_fb_bound(&self) -> Option<bool> {
        let state = self.shared.lock();
        let fb = state.model.firmware_fb.as_ref()?;
        fb.present.then_some(fb.bound)
    }

    /// The registered frame buffers, each as the sysfs dir of its device.
    pub fn framebuffers(&self) -> Vec<String> {
        self.shared.lock().model.framebuffers()
    }

    /// The process survives SIGTERM (SIGKILL still ends it).
    pub fn ignore_term(&self, pid: u32) {
        if let Some(p) = self.shared.lock().model.processes.get_mut(&pid) {
            p.ignore_term = true;
        }
    }

    /// Starts a process now (in `cgroup`, as [`unit_cgroup`] or [`SESSION_SCOPE`]) holding
    /// what `template` names among the nodes present; returns its pid.
    pub fn spawn(&self, cgroup: &str, template: ProcessTemplate) -> u32 {
        let mut state = self.shared.lock();
        let pid = state.model.spawn(cgroup, &template);
        self.shared
            .commit(&state)
            .expect("render the simulated host");
        pid
    }

    /// Starts a process now under a pid of the test's choosing (PID 1, systemd), which must be
    /// free.
    pub fn spawn_at(&self, pid: u32, cgroup: &str, template: ProcessTemplate) -> u32 {
        let mut state = self.shared.lock();
        assert!(
            !state.model.processes.contains_key(&pid),
            "pid {pid} is taken"
        );
        state.model.insert_process(pid, cgroup, &template);
        self.shared
            .commit(&state)
            .expect("render the simulated host");
        pid
    }

    /// Starts a process on the first write to `path` (host-absolute), before the write takes
    /// effect: a holder that appears between the plan and the step.
    pub fn spawn_on_write(&self, path: &str, cgroup: &str, template: ProcessTemplate) {
        let mut state = self.shared.lock();
        state
            .faults
            .spawns
            .push((path.to_string(), cgroup.to_string(), template));
    }

    /// Where a write to `path` waits in the simulated kernel right now, if it does.
    pub fn waits_in(&self, path: &str) -> Option<&'static str> {
        self.shared.lock().waits_in.get(path).copied()
    }

    /// `broker` holds what it holds on behalf of `client` and closes those nodes when `client`
    /// ends, as logind does with the devices a compositor took through TakeDevice.
    pub fn brokers_for(&self, broker: u32, client: u32) {
        self.shared.lock().model.brokered.push((broker, client));
    }

    /// Ends a process on its own, as if it exited; waiters in `wait_exit` wake up.
    pub fn exit_process(&self, pid: u32) {
        let mut state = self.shared.lock();
        state.model.end_process(pid);
        self.shared
            .commit(&state)
            .expect("render the simulated host");
    }
}

impl Drop for SimHost {
    /// Frees writers stuck on a block, so a test never hangs on a thread it leaked.
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
    }
}

fn service_name(model: &Model, name: &str) -> String {
    if name.contains('.') || model.units.contains_key(name) {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}
