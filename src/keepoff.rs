//! `pitcrew keep-off`: keep the desktop (display server, compositor, sound server) off the cards
//! that serve VMs, so lending one never needs the display manager stopped.
//!
//! One udev rules file does it ([`rules`]); udev re-reads it at once, and a card is re-triggered
//! only while nothing has it open: a trigger of a card a running Xorg uses as a hot-added screen
//! crashes Xorg, and a sound server that opened a card before the flag existed must see its
//! removal. Such a card keeps being used until it is next added (its next lend, the next boot),
//! which `keep-off` and `status` say.

use crate::bdf::Bdf;
use crate::host::holders::Holder;
use crate::host::keepoff::{self as state, rules, Entry, RULES};
use crate::host::pci;
use crate::host::{sound, udev, Host};
use crate::snapshot::{ReadError, Snapshot};
use std::io::Write;
use std::path::PathBuf;

/// What `keep-off` is asked to do.
pub struct Options {
    /// Take the cards out of the rules instead.
    pub undo: bool,
    /// Leave the cards' HDMI/DP audio to the host's sound server.
    pub keep_sound: bool,
    /// Make the render nodes root's alone (mode 0600).
    pub strict: bool,
    /// Print the rules and change nothing.
    pub dry_run: bool,
    /// udev runs on this root: reload it and re-trigger the cards (false for a staged root,
    /// where the rules apply from that system's next boot).
    pub live: bool,
}

/// Why `keep-off` did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum KeepOffError {
    /// Bad input: nothing was changed (exit 2).
    #[error("{0}")]
    Input(String),
    /// The rules file is not pitcrew's, or unreadable.
    #[error(transparent)]
    Load(#[from] state::LoadError),
    /// The host could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The rules file could not be written or removed.
    #[error("{path}: {action}: {cause}", path = .path.display(), cause = crate::untrusted::cause(.path, .source))]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
    /// udevadm failed.
    #[error("{0}; the rules file is written, run `pitcrew keep-off` again once udev works")]
    Udev(String),
}

/// Adds (or with `undo` removes) the GPUs' rules, reloads udev, and applies them to each card
/// nothing holds, telling `out` what takes effect when.
pub fn run(
    host: &Host,
    requested: &[Bdf],
    opts: &Options,
    out: &mut dyn Write,
) -> Result<(), KeepOffError> {
    let snapshot = Snapshot::read(host)?;
    let before = state::load(host)?;
    let mut after = before.clone();
    for bdf in requested {
        if opts.undo {
            if after.remove(bdf).is_none() {
                let _ = writeln!(out, "{bdf} is not kept off: nothing to undo");
            }
            continue;
        }
        let device = snapshot.devices.get(bdf).ok_or_else(|| {
            KeepOffError::Input(format!(
                "{bdf}: no such PCI device under {}/sys/bus/pci/devices",
                host.root().display()
            ))
        })?;
        if !device.is_display() {
            return Err(KeepOffError::Input(format!(
                "{bdf} is not a GPU (its class is {1:#08x}, {0}): give the GPU's address; its \
                 audio functions come with it",
                device.kind(),
                device.class
            )));
        }
        let audio = snapshot
            .devices
            .values()
            .filter(|d| {
                d.kind() == "audio" && same_card(d.iommu_group, device.iommu_group, *bdf, d.bdf)
            })
            .map(|d| d.bdf)
            .collect();
        after.insert(
            *bdf,
            Entry {
                gpu: *bdf,
                audio,
                sound_off: !opts.keep_sound,
                strict: opts.strict,
            },
        );
    }
    if after == before {
        let _ = writeln!(out, "{RULES} already says so: nothing to change");
        return Ok(());
    }
    write_rules(host, &after, opts.dry_run, out)?;
    if opts.dry_run || !opts.live {
        let why = if opts.dry_run {
            "dry run"
        } else {
            "staged root"
        };
        let _ = writeln!(
            out,
            "skip `udevadm control --reload` and the re-triggers ({why}): the rules apply from \
             that system's next boot"
        );
        return Ok(());
    }
    udev::udevadm(host, &["control", "--reload"]).map_err(KeepOffError::Udev)?;
    let changed = before
        .keys()
        .chain(after.keys())
        .filter(|gpu| before.get(gpu) != after.get(gpu));
    for gpu in changed.collect::<std::collections::BTreeSet<_>>() {
        apply(host, &snapshot, before.get(gpu), after.get(gpu), *gpu, out)?;
    }
    Ok(())
}

/// An audio function belongs to the GPU when it shares its IOMMU group, or its slot where
/// there are no groups.
fn same_card(group: Option<u32>, gpu_group: Option<u32>, gpu: Bdf, function: Bdf) -> bool {
    match (group, gpu_group) {
        (Some(a), Some(b)) => a == b,
        _ => function.slot() == gpu.slot(),
    }
}

fn write_rules(
    host: &Host,
    entries: &rules::Entries,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<(), KeepOffError> {
    let path = host.path(RULES);
    let io = |action, source| KeepOffError::Io {
        path: path.clone(),
        action,
        source,
    };
    let Some(text) = rules::render(entries) else {
        let _ = writeln!(out, "remove {} (no card is kept off)", path.display());
        if !dry_run {
            std::fs::remove_file(&path).map_err(|e| io("cannot remove", e))?;
        }
        return Ok(());
    };
    let gpus: Vec<String> = entries.keys().map(Bdf::to_string).collect();
    let _ = writeln!(
        out,
        "write {} (keeps the desktop off {})",
        path.display(),
        gpus.join(", ")
    );
    if dry_run {
        let _ = write!(out, "{text}");
        return Ok(());
    }
    let dir = path.parent().expect("the rules path has a directory");
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create its directory", e))?;
    // Replaced in one rename: udev never reads half a file.
    let tmp = dir.join(".73-pitcrew-keep-off.rules.tmp");
    std::fs::write(&tmp, text).map_err(|e| io("cannot write", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("cannot replace", e))
}

/// Applies the changed rules of one GPU now where that is safe, and says what waits.
fn apply(
    host: &Host,
    snapshot: &Snapshot,
    before: Option<&Entry>,
    after: Option<&Entry>,
    gpu: Bdf,
    out: &mut dyn Write,
) -> Result<(), KeepOffError> {
    let kept = after.is_some();
    let strict_changed = before.is_some_and(|e| e.strict) != after.is_some_and(|e| e.strict);
    if before.is_some() != kept || strict_changed {
        let cards = state::drm_cards(&snapshot.devices, gpu);
        let nodes = snapshot.own_nodes(gpu);
        let holders: Vec<&Holder> = snapshot
            .holders
            .iter()
            .filter(|h| !h.nodes.is_disjoint(&nodes))
            .collect();
        if cards.is_empty() {
            let _ = writeln!(
                out,
                "{gpu} has no DRM node now (lent or unbound): the rule applies when it comes back"
            );
        } else if !holders.is_empty() {
            let _ = writeln!(
                out,
                "{gpu} is open in {}: udev is not re-triggered (a trigger, like an unbind, of a \
                 card a running X server uses crashes it), so {} at the card's next lend (the \
                 display manager is stopped one last time) or at the next boot",
                names(&holders),
                if kept {
                    "the desktop lets go of it"
                } else {
                    "the desktop may use it again"
                }
            );
        } else {
            let mut paths: Vec<String> = cards
                .iter()
                .map(|card| pci::device_path(gpu, &format!("drm/{card}")))
                .collect();
            paths.extend(render_and_ddc(gpu, &nodes));
            trigger(host, &paths)?;
            let _ = writeln!(
                out,
                "{gpu}: {}",
                if kept {
                    "from now on the desktop leaves it alone (Xorg, GNOME, KDE and wlroots \
                     compositors skip a card of another seat)"
                } else {
                    "desktops may use it again from their next start, or when the card is next \
                     added (its next return from a VM)"
                }
            );
        }
    }
    let sound_before = before.is_some_and(|e| e.sound_off);
    let sound_after = after.is_some_and(|e| e.sound_off);
    if sound_before == sound_after {
        return Ok(());
    }
    let functions = after
        .or(before)
        .map(|e| e.audio.clone())
        .unwrap_or_default();
    for function in functions {
        for card in sound::cards(host, function) {
            let holders = sound::holders(host, &[card]);
            let holders: Vec<&Holder> = holders.iter().collect();
            if holders.is_empty() {
                trigger(
                    host,
                    &[pci::device_path(function, &format!("sound/card{card}"))],
                )?;
                let _ = writeln!(
                    out,
                    "{function} (ALSA card {card}): {}",
                    if sound_after {
                        "PipeWire and PulseAudio leave it alone from now on"
                    } else {
                        "the sound server may open it again"
                    }
                );
            } else {
                let _ = writeln!(
                    out,
                    "{function} (ALSA card {card}) is open in {}: {} once the sound server \
                     restarts (at the next login); until then, lending the card has to make it \
                     let go",
                    names(&holders),
                    if sound_after {
                        "it leaves the card alone"
                    } else {
                        "it may use the card again"
                    }
                );
            }
        }
    }
    Ok(())
}

/// The sysfs paths of the card's render nodes and I2C buses, whose rules apply at a change event.
fn render_and_ddc(gpu: Bdf, nodes: &std::collections::BTreeSet<String>) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|node| {
            if let Some(name) = node.strip_prefix("/dev/dri/") {
                name.starts_with("renderD")
                    .then(|| pci::device_path(gpu, &format!("drm/{name}")))
            } else {
                node.strip_prefix("/dev/i2c-")
                    .map(|n| format!("/sys/class/i2c-dev/i2c-{n}"))
            }
        })
        .collect()
}

/// A change event makes udev apply the current rules to the device and store the result.
fn trigger(host: &Host, paths: &[String]) -> Result<(), KeepOffError> {
    let mut args = vec!["trigger", "--action=change", "--settle"];
    args.extend(paths.iter().map(String::as_str));
    udev::udevadm(host, &args).map_err(KeepOffError::Udev)
}

fn names(holders: &[&Holder]) -> String {
    holders
        .iter()
        .map(|h| format!("{} (pid {})", h.comm, h.pid))
        .collect::<Vec<_>>()
        .join(", ")
}
