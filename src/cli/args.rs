//! The command line, one definition for parsing, the man page and shell completions.

use crate::bdf::Bdf;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "pitcrew",
    version,
    about = "Hands a GPU and its IOMMU group from the host driver to vfio-pci and back",
    long_about = "GPU Pit Crew hands a graphics card, with every function of its IOMMU group, from its \
host driver to vfio-pci when a libvirt VM that passes it through starts, and gives it back when the \
VM stops. Exit codes: 0 done, 1 failed (rolled back), 2 bad usage or input."
)]
/// The command line of `pitcrew`.
pub struct Cli {
    /// Resolve every system path (/sys, /proc, /dev, /etc, /run) under DIR
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// More detail in the log (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    /// What to do.
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show GPUs, their functions, drivers, IOMMU groups and what holds them
    Status {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Check what would keep a VM from getting its GPU: IOMMU, vfio-pci, each GPU's group, holders,
    /// reset and BARs, the hook, the libvirt daemon, the unit, the config and the VM definitions.
    /// Reads only. Exit 0 when no check fails, 1 otherwise
    Doctor {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
        /// Check only this VM and its GPUs
        #[arg(long, value_name = "NAME")]
        vm: Option<String>,
    },
    /// Move GPUs (with their whole IOMMU groups) to vfio-pci
    Detach(HandoverArgs),
    /// Give GPUs back to the drivers they had before the detach
    Reattach(HandoverArgs),
    /// Keep the desktop (display server, compositor, sound server) off GPUs that serve VMs, so
    /// lending them never stops the display manager
    #[command(name = "keep-off")]
    KeepOff(KeepOff),
    /// Entry point for libvirt's QEMU hook: <vm> <op> <subop> [extra], domain XML on stdin
    Hook {
        vm: String,
        op: String,
        subop: String,
        extra: Option<String>,
    },
    /// Install the binary, systemd unit, libvirt hook and config
    Install {
        /// Manage this VM (repeat for several)
        #[arg(long = "vm", value_name = "NAME")]
        vms: Vec<String>,
        /// Print what would be done and change nothing
        #[arg(long)]
        dry_run: bool,
        /// Do not reload the running libvirt daemon (libvirtd or virtqemud) when the hook is new
        #[arg(long)]
        no_reload: bool,
    },
    /// Internal: the reservation helper a handover starts as the sound server's user
    #[command(name = "reserve-audio", hide = true)]
    ReserveAudio {
        #[arg(long)]
        card: u32,
        #[arg(long)]
        bus: String,
        #[arg(long)]
        until_vfio: Bdf,
        #[arg(long)]
        hold_at_most: u64,
    },
    /// Remove exactly what install wrote
    Uninstall {
        /// Also remove the configuration file
        #[arg(long)]
        purge: bool,
        /// Print what would be done and change nothing
        #[arg(long)]
        dry_run: bool,
        /// Do not reload the running libvirt daemon after removing the hook
        #[arg(long)]
        no_reload: bool,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["devices", "vm", "service"])))]
pub struct HandoverArgs {
    /// PCI addresses (01:00.0 or 0000:01:00.0); a GPU pulls in its whole IOMMU group
    #[arg(value_name = "BDF")]
    pub devices: Vec<Bdf>,
    /// Use the devices configured for this VM in /etc/pitcrew/pitcrew.toml
    #[arg(long, value_name = "NAME")]
    pub vm: Option<String>,
    /// The VM as its OpenRC instance names it (`pitcrew.<escaped>`), as the init script passes it
    #[arg(long, value_name = "SERVICE", hide = true)]
    pub service: Option<String>,
    /// Print the ordered plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds a process holding the card has to exit after SIGTERM before SIGKILL
    #[arg(long, value_name = "SECONDS")]
    pub term_timeout: Option<f64>,
    /// reattach: also give back functions pitcrew did not lend (parked on vfio-pci by the
    /// kernel command line or driverctl), to the driver the kernel picks
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
#[command(
    long_about = "Writes /etc/udev/rules.d/73-pitcrew-keep-off.rules: each GPU's DRM nodes go \
to a seat of their own (ID_SEAT=seat-pitcrew, without the master-of-seat tag, and tagged \
mutter-device-ignore), so Xorg, GNOME, KDE and wlroots compositors leave the card alone, and the \
sound cards of its audio functions get ACP_IGNORE and PULSE_IGNORE, so PipeWire and PulseAudio do \
too. udev re-reads its rules at once; a card nothing has open is re-triggered, one the desktop \
has open is let go at its next lend or the next boot (a trigger would crash a running X server). \
Exit codes: 0 done, 1 failed, 2 bad input (nothing changed)."
)]
pub struct KeepOff {
    /// PCI addresses of the GPUs (their audio functions come along)
    #[arg(value_name = "BDF", required = true)]
    pub devices: Vec<Bdf>,
    /// Take the GPUs out of the rules: the desktop may use them again
    #[arg(long)]
    pub undo: bool,
    /// Leave the GPUs' HDMI/DP audio to the host's sound server
    #[arg(long, conflicts_with = "undo")]
    pub keep_sound: bool,
    /// Also make the GPUs' render nodes root's alone (mode 0600), for hosts where render nodes
    /// are open to everyone (mode 0666) or the user is in the `render` group. The cost: no
    /// program of the host can use those GPUs for rendering or compute between lends either
    #[arg(long, conflicts_with = "undo")]
    pub strict: bool,
    /// Print what would be written and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// The clap command, for generating the man page and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        super::command().debug_assert();
    }
}
