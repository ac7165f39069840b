//! GPU Pit Crew: hands a GPU from its host driver to vfio-pci when a libvirt VM starts, and back
//! when it stops.
//!
//! # Glossary
//! One name per concept, in the command line, the code and the docs:
//! - **function**: one PCI function (`0000:01:00.1`, a [`Bdf`]); a GPU card has several (video,
//!   audio, USB-C), and a request is widened to every function of their IOMMU groups.
//! - **detach**: move functions from their host drivers to vfio-pci, so a VM can use them;
//!   **reattach**: give them back to the drivers they had. Together: a **handover**, whose
//!   [`Direction`] is one or the other.
//! - **lent**: a function pitcrew detached and has not reattached yet, as the [`Record`] says.
//! - **parked**: bound to vfio-pci or pci-stub, the drivers that only hold a function.
//! - **holder**: a process with one of a card's device nodes open or mapped.
//! - **record**: the state record in /run/pitcrew/state.json (what pitcrew changed);
//!   **request**: the file the hook leaves for the unit in /run/pitcrew/vm/ (which devices).
//! - **VM**: what libvirt calls a domain; "domain" in pitcrew is only the PCI domain of an
//!   address, and libvirt's "domain XML".
//! - **host**: the machine seen through one root directory ([`Host`]).
//! - **service**: what the host's service manager ([`Init`]: systemd or OpenRC) starts and
//!   stops: a systemd unit (`lightdm.service`) or an OpenRC service (`lightdm`); a VM's
//!   **instance** is the service holding its GPU (`pitcrew@win11.service`, `pitcrew.win11`).
//!
//! # Layers
//! Each module uses only those below it: `host` -> `record`, `snapshot` -> `plan` -> `exec` ->
//! `handover` -> `hook`, `install` -> `doctor` -> `error` -> `cli`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod atomic;
mod bdf;
mod cli;
mod config;
mod doctor;
mod error;
mod exec;
#[cfg(feature = "fault-injection")]
mod fault;
mod handover;
mod hook;
mod host;
mod install;
mod keepoff;
mod plan;
mod policy;
mod record;
mod reserve;
mod runfile;
mod snapshot;
mod status;
mod text;
mod tuning;
mod untrusted;
mod vendor;
mod vm;
mod wait;

pub use bdf::{Bdf, BdfError};
pub use cli::{command, run as run_command, run_hook, Cli};
pub use config::{
    policy_for_vm, vm_table_header, Config, ConfigError, VmConfig, HOOK_MARGIN, UNIT_CEILING,
};
pub use doctor::{run as doctor, Check, Level, Report};
pub use error::{Error, Failed, Input};
pub use exec::{ExecError, Rollback, StepError, Timed};
pub use handover::{run as handover, HandoverError, Outcome, Request};
pub use hook::request::{devices_for_vm, VmDevicesError};
pub use hook::{invoked_as_hook, run as hook, HookArgs, Reply, MAX_MESSAGE};
pub use host::init::openrc::{escape as openrc_escape, unescape as openrc_unescape};
pub use host::init::{Init, Unsupported as UnsupportedInit};
pub use host::keepoff::{Effect as KeepOffEffect, State as KeptOff, RULES as KEEP_OFF_RULES};
pub use host::sound::{is_node_of as is_sound_node_of, ReserveRequest};
pub use host::{
    serve_writes, CmdOutput, Effects, Host, Process, RealEffects, Signal, StuckWrite, WRITE_HELPER,
};
pub use install::{install, uninstall, InstallError, InstallOptions, UninstallOptions};
pub use keepoff::{run as keep_off, KeepOffError, Options as KeepOffOptions};
pub use plan::{Direction, Plan, PlanError, ReattachError, SelectError, Step, TuningError};
pub use policy::{DisplayManagerPolicy, Policy};
pub use record::{Lent, Record};
pub use snapshot::{ReadError, Snapshot};
pub use status::Status;
pub use tuning::{LendTuning, Rebar, ResetMethod, Tuning};
pub use vm::{pci_hostdevs, read_xml, systemd_escape, NameError, VmName, XmlError};
