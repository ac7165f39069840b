//! What a command fails with, sorted by what it means for the user: bad input (nothing was
//! changed, exit 2) or a failure (exit 1). The exit code is decided here and nowhere else.
//!
//! Every message is complete on its own (what, where, what to do), so the edge prints the
//! top-level message only; the typed causes stay reachable through `source()`.

use crate::config::ConfigError;
use crate::handover::HandoverError;
use crate::hook::request::VmDevicesError;
use crate::install::InstallError;
use crate::plan::PlanError;
use crate::snapshot::ReadError;
use crate::vm::NameError;
use std::path::PathBuf;

/// A command's failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: nothing was changed (exit 2).
    #[error(transparent)]
    Input(#[from] Input),
    /// The command failed; a handover rolled back and says how that went (exit 1).
    #[error(transparent)]
    Failed(#[from] Failed),
}

/// Input that cannot be acted on.
#[derive(Debug, thiserror::Error)]
pub enum Input {
    /// The devices cannot be handed over (unknown, a bridge, no IOMMU group, a card pitcrew
    /// did not lend...).
    #[error(transparent)]
    Devices(PlanError),
    /// The config file is missing, unreadable, invalid or insecure.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A VM name libvirt would not accept.
    #[error(transparent)]
    VmName(#[from] NameError),
    /// Neither the config nor the hook's request names devices for the VM.
    #[error(transparent)]
    VmDevices(#[from] VmDevicesError),
    /// A handover asked of a staged tree.
    #[error(
        "--root {} is a staged tree, not a running kernel: only --dry-run can plan against it",
        .0.display()
    )]
    StagedRoot(PathBuf),
    /// A `--root` that is no tree to work on.
    #[error("--root {}: {reason}", .root.display())]
    BadRoot {
        /// The root given.
        root: PathBuf,
        /// What is wrong with it, and what to give instead.
        reason: String,
    },
    /// `keep-off` of something that is not a GPU of this host.
    #[error("{0}")]
    KeepOff(String),
    /// A timeout that is not a duration.
    #[error("--term-timeout {0}: not a number of seconds")]
    TermTimeout(f64),
    /// `--force` given to a detach.
    #[error("--force only applies to reattach")]
    ForceDetach,
    /// `--service` that is not a VM's OpenRC instance.
    #[error(
        "--service {0:?} is not an instance of /etc/init.d/pitcrew (pitcrew.<VM name, escaped>); \
         libvirt's hook makes those links, or pass --vm NAME"
    )]
    Service(String),
}

/// A command that was carried out and failed.
#[derive(Debug, thiserror::Error)]
pub enum Failed {
    /// The handover failed (and rolled back).
    #[error(transparent)]
    Handover(HandoverError),
    /// The host could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The host runs a service manager pitcrew does not support: it is not ready, not wrong.
    #[error(transparent)]
    Init(#[from] crate::host::init::Unsupported),
    /// Install or uninstall failed.
    #[error(transparent)]
    Install(InstallError),
    /// `keep-off` could not write its rules or reach udev.
    #[error(transparent)]
    KeepOff(crate::keepoff::KeepOffError),
    /// SIGTERM could not be watched for.
    #[error("cannot watch for SIGTERM, SIGINT and SIGHUP: {0}")]
    Signals(#[source] std::io::Error),
    /// The running binary could not be found to copy it.
    #[error("cannot find the running binary to install: {0}")]
    Binary(#[source] std::io::Error),
    /// `pitcrew doctor` found checks that fail (the report says which).
    #[error("doctor: {0} failed, see the lines marked fail")]
    Doctor(usize),
    /// Writing the report to stdout failed.
    #[error("cannot write to stdout: {0}")]
    Stdout(#[source] std::io::Error),
}

impl From<HandoverError> for Error {
    fn from(e: HandoverError) -> Error {
        match e {
            HandoverError::Plan(e) if e.is_input() => Input::Devices(e).into(),
            e => Failed::Handover(e).into(),
        }
    }
}

impl From<InstallError> for Error {
    fn from(e: InstallError) -> Error {
        match e {
            InstallError::Name(e) => Input::VmName(e).into(),
            e => Failed::Install(e).into(),
        }
    }
}

impl Error {
    /// 2 for bad input, 1 for a failure, as the man page says.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Input(_) => 2,
            Error::Failed(_) => 1,
        }
    }
}
