//! The udev rules file `pitcrew keep-off` owns: what it says, and reading it back.
//!
//! Every rule is keyed on a PCI address (`KERNELS==`), never on `cardN`: DRM and ALSA numbers
//! change when a card is unbound and bound again, which is what lending it does. The file sorts
//! after systemd's `71-seat.rules` (which tags every DRM card `master-of-seat`) and before
//! `73-seat-late.rules` (which turns `ID_SEAT` into the tag Xorg's non-seat0 matching uses).

use crate::bdf::Bdf;
use serde::Serialize;
use std::collections::BTreeMap;

/// The one file keep-off writes.
pub const RULES: &str = "/etc/udev/rules.d/73-pitcrew-keep-off.rules";
/// The seat the kept-off cards are put on. No seat by this name ever exists: the rules take the
/// `master-of-seat` tag away, so logind does not create it and nothing draws on the card.
pub const SEAT: &str = "seat-pitcrew";

const HEADER: &str = "\
# Written by `pitcrew keep-off`: the desktop leaves these cards to the VMs they are lent to.
# `pitcrew keep-off --undo ADDRESS` takes a card out; the file goes with the last one.
# Changes made here by hand are lost at the next keep-off.
";
const MARKER: &str = "# keep-off ";

/// One GPU the desktop keeps off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The display function whose DRM nodes go to the other seat.
    pub gpu: Bdf,
    /// The audio functions of its IOMMU group (its HDMI/DP audio).
    pub audio: Vec<Bdf>,
    /// True when the sound servers are told to ignore those functions' sound cards too;
    /// false with `--keep-sound` (the card's HDMI audio stays with the host).
    pub sound_off: bool,
    /// True with `--strict`: the render node is root's alone, whatever its default mode or
    /// the user's groups.
    pub strict: bool,
}

/// Every kept-off GPU, by the display function's address.
pub type Entries = BTreeMap<Bdf, Entry>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("it was not written by `pitcrew keep-off` (its first line is not pitcrew's)")]
    Foreign,
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
}

/// The rules text for `entries` (empty entries: no file at all, so `None`).
pub fn render(entries: &Entries) -> Option<String> {
    if entries.is_empty() {
        return None;
    }
    let mut text = HEADER.to_string();
    for entry in entries.values() {
        let audio: Vec<String> = entry.audio.iter().map(Bdf::to_string).collect();
        text += &format!(
            "\n{MARKER}{} audio={} sound={} strict={}\n",
            entry.gpu,
            if audio.is_empty() {
                "-".to_string()
            } else {
                audio.join(",")
            },
            if entry.sound_off { "off" } else { "host" },
            if entry.strict { "on" } else { "off" }
        );
        // Xorg (config/udev.c), mutter, KWin and wlroots open only the cards whose ID_SEAT is
        // their seat; without master-of-seat logind makes no new seat (no greeter on the card);
        // mutter also skips a card tagged mutter-device-ignore when it is hot-added.
        text += &format!(
            "SUBSYSTEM==\"drm\", KERNEL==\"card[0-9]*\", KERNELS==\"{}\", \
             ENV{{ID_SEAT}}=\"{SEAT}\", TAG-=\"master-of-seat\", TAG+=\"mutter-device-ignore\"\n",
            entry.gpu
        );
        // A render node takes ID_SEAT from its parent, the PCI device, not from the card node
        // (73-seat-late.rules: IMPORT{parent}), so without its own line it stays on seat0 and
        // the uaccess step gives the logged-in user an ACL on it; mutter's hot-add path and
        // headless sessions skip only a node tagged mutter-device-ignore. With the seat set,
        // uaccess flushes the ACL. Remove events are left alone, as for sound below.
        text += &format!(
            "ACTION!=\"remove\", SUBSYSTEM==\"drm\", KERNEL==\"renderD[0-9]*\", KERNELS==\"{}\", \
             ENV{{ID_SEAT}}=\"{SEAT}\", TAG+=\"mutter-device-ignore\"{}\n",
            entry.gpu,
            if entry.strict { ", MODE=\"0600\"" } else { "" }
        );
        // The card's DDC/CI buses (its own and its DP AUX channels): ddcutil's uaccess rule
        // gives them to the seat's user, so powerdevil would open them.
        text += &format!(
            "ACTION!=\"remove\", SUBSYSTEM==\"i2c-dev\", KERNELS==\"{}\", ENV{{ID_SEAT}}=\"{SEAT}\"\n",
            entry.gpu
        );
        if entry.sound_off {
            for function in &entry.audio {
                // PipeWire reads only ACP_IGNORE, PulseAudio only PULSE_IGNORE. Both skip a
                // flagged card before looking at the event's action, remove included: a card
                // they opened before the flag existed would never be closed on its removal and
                // its unbind would block. Leaving remove events alone avoids that.
                text += &format!(
                    "ACTION!=\"remove\", SUBSYSTEM==\"sound\", KERNEL==\"card[0-9]*\", \
                     KERNELS==\"{function}\", ENV{{ACP_IGNORE}}=\"1\", ENV{{PULSE_IGNORE}}=\"1\"\n"
                );
            }
        }
    }
    Some(text)
}

/// Reads back what [`render`] wrote, from its marker lines.
pub fn parse(text: &str) -> Result<Entries, ParseError> {
    if !text.starts_with(HEADER.lines().next().unwrap_or_default()) {
        return Err(ParseError::Foreign);
    }
    let mut entries = Entries::new();
    for (n, line) in text.lines().enumerate() {
        let Some(rest) = line.strip_prefix(MARKER) else {
            continue;
        };
        let bad = |reason: String| ParseError::Line {
            line: n + 1,
            reason,
        };
        let mut words = rest.split_whitespace();
        let gpu: Bdf = words
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|e| bad(format!("{e}")))?;
        let mut audio = Vec::new();
        let mut sound_off = None;
        // Files written before strict mode existed have no strict= word.
        let mut strict = false;
        for word in words {
            match word.split_once('=') {
                Some(("audio", "-")) => {}
                Some(("audio", list)) => {
                    for function in list.split(',') {
                        audio.push(function.parse().map_err(|e| bad(format!("{e}")))?);
                    }
                }
                Some(("sound", "off")) => sound_off = Some(true),
                Some(("sound", "host")) => sound_off = Some(false),
                Some(("strict", "on")) => strict = true,
                Some(("strict", "off")) => strict = false,
                _ => return Err(bad(format!("unexpected '{word}'"))),
            }
        }
        let sound_off = sound_off.ok_or_else(|| bad("no sound=off|host".into()))?;
        entries.insert(
            gpu,
            Entry {
                gpu,
                audio,
                sound_off,
                strict,
            },
        );
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bdf(s: &str) -> Bdf {
        s.parse().unwrap()
    }

    fn entry(gpu: &str, audio: &[&str], sound_off: bool) -> Entry {
        Entry {
            gpu: bdf(gpu),
            audio: audio.iter().map(|a| bdf(a)).collect(),
            sound_off,
            strict: false,
        }
    }

    #[test]
    fn the_rules_are_keyed_on_pci_addresses_and_read_back() {
        let mut entries = Entries::new();
        for e in [
            entry("0000:01:00.0", &["0000:01:00.1"], true),
            entry("0000:02:00.0", &["0000:02:00.1"], false),
            Entry {
                strict: true,
                ..entry("0000:03:00.0", &[], true)
            },
        ] {
            entries.insert(e.gpu, e);
        }
        let text = render(&entries).unwrap();
        assert_eq!(
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .collect::<Vec<_>>(),
            [
                r#"SUBSYSTEM=="drm", KERNEL=="card[0-9]*", KERNELS=="0000:01:00.0", ENV{ID_SEAT}="seat-pitcrew", TAG-="master-of-seat", TAG+="mutter-device-ignore""#,
                r#"ACTION!="remove", SUBSYSTEM=="drm", KERNEL=="renderD[0-9]*", KERNELS=="0000:01:00.0", ENV{ID_SEAT}="seat-pitcrew", TAG+="mutter-device-ignore""#,
                r#"ACTION!="remove", SUBSYSTEM=="i2c-dev", KERNELS=="0000:01:00.0", ENV{ID_SEAT}="seat-pitcrew""#,
                r#"ACTION!="remove", SUBSYSTEM=="sound", KERNEL=="card[0-9]*", KERNELS=="0000:01:00.1", ENV{ACP_IGNORE}="1", ENV{PULSE_IGNORE}="1""#,
                r#"SUBSYSTEM=="drm", KERNEL=="card[0-9]*", KERNELS=="0000:02:00.0", ENV{ID_SEAT}="seat-pitcrew", TAG-="master-of-seat", TAG+="mutter-device-ignore""#,
                r#"ACTION!="remove", SUBSYSTEM=="drm", KERNEL=="renderD[0-9]*", KERNELS=="0000:02:00.0", ENV{ID_SEAT}="seat-pitcrew", TAG+="mutter-device-ignore""#,
                r#"ACTION!="remove", SUBSYSTEM=="i2c-dev", KERNELS=="0000:02:00.0", ENV{ID_SEAT}="seat-pitcrew""#,
                r#"SUBSYSTEM=="drm", KERNEL=="card[0-9]*", KERNELS=="0000:03:00.0", ENV{ID_SEAT}="seat-pitcrew", TAG-="master-of-seat", TAG+="mutter-device-ignore""#,
                r#"ACTION!="remove", SUBSYSTEM=="drm", KERNEL=="renderD[0-9]*", KERNELS=="0000:03:00.0", ENV{ID_SEAT}="seat-pitcrew", TAG+="mutter-device-ignore", MODE="0600""#,
                r#"ACTION!="remove", SUBSYSTEM=="i2c-dev", KERNELS=="0000:03:00.0", ENV{ID_SEAT}="seat-pitcrew""#,
            ]
        );
        assert_eq!(parse(&text).unwrap(), entries);
    }

    #[test]
    fn a_file_from_before_strict_mode_reads_as_not_strict() {
        let text = format!("{HEADER}\n{MARKER}0000:01:00.0 audio=- sound=host\n");
        let entries = parse(&text).unwrap();
        assert!(!entries[&bdf("0000:01:00.0")].strict);
    }

    #[test]
    fn no_entries_no_file() {
        assert_eq!(render(&Entries::new()), None);
    }

    #[test]
    fn a_file_not_written_by_pitcrew_is_not_taken_over() {
        let text = "SUBSYSTEM==\"drm\", KERNELS==\"0000:01:00.0\", ENV{ID_SEAT}=\"seat1\"\n";
        assert_eq!(parse(text), Err(ParseError::Foreign));
    }

    #[test]
    fn a_damaged_marker_names_its_line() {
        let text = format!("{HEADER}\n{MARKER}0000:01:00.0 audio=zz sound=off\n");
        assert!(matches!(
            parse(&text),
            Err(ParseError::Line { line: 5, .. })
        ));
    }
}
