//! VM names and systemd escaping: an accepted name escapes to a safe unit instance and file
//! name within systemd's limit, unescapes to itself (and to a plain OpenRC instance name that
//! unescapes to it too), is quoted in TOML hints so it reads back,
//! and every string is escaped exactly as `systemd-escape` does it (checked against the real
//! tool in batches).

use crate::rng::Rng;
use crate::{one_bounded_line, outcome_of, Target};
use pitcrew::{systemd_escape, vm_table_header, VmName};
use std::process::Command;

pub struct Names {
    /// Strings waiting for the comparison with `systemd-escape`.
    batch: Vec<String>,
    /// Strings compared with the real tool so far; `None` when it is not installed.
    compared: Option<u64>,
}

impl Names {
    pub fn new() -> Names {
        let present = Command::new("systemd-escape").arg("x").output().is_ok();
        Names {
            batch: Vec::new(),
            compared: present.then_some(0),
        }
    }
}

/// The inverse of systemd's escaping, written from its definition: `\xNN` is a byte, '-' was '/'.
fn unescape(escaped: &str) -> Option<String> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                let hex = std::str::from_utf8(bytes.get(i + 2..i + 4)?).ok()?;
                if bytes.get(i + 1) != Some(&b'x') {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 4;
            }
            b'-' => {
                out.push(b'/');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

const PIECES: &[&str] = &[
    "a", "Z", "0", ":", "_", ".", "-", " ", "/", "\\", "é", "ü", "€", "😀", "$", "(", "'", "\"",
    "\t", "\u{7f}", "\u{2028}", "..",
];

impl Target for Names {
    fn name(&self) -> &'static str {
        "vm-names"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let mut seeds: Vec<Vec<u8>> =
            ["win11", "my-vm", ".hidden", "..", "a/b", "ünï", "$(reboot)"]
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect();
        seeds.push(("a".repeat(3) + &"-".repeat(59)).into_bytes());
        seeds.push("é".repeat(29).into_bytes());
        seeds.push("x".repeat(200).into_bytes());
        seeds
    }

    fn dictionary(&self) -> &'static [&'static str] {
        PIECES
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let mut name = String::new();
        // Around the limits too: up to 240 pieces, each 1 to 4 bytes.
        for _ in 0..rng.size(240) {
            name.push_str(rng.pick::<&str>(PIECES));
        }
        name.into_bytes()
    }

    fn check(&mut self, input: &[u8]) -> Result<String, String> {
        let text = super::text(input);
        let escaped = systemd_escape(&text);
        if unescape(&escaped).as_deref() != Some(text.as_str()) {
            return Err(format!(
                "{text:?} escapes to {escaped:?}, which does not unescape to it"
            ));
        }
        // The kernel takes arguments of up to 128 KiB (MAX_ARG_STRLEN), and escaping makes a
        // string up to 4 times longer for the way back; a unit name is 255 bytes anyway.
        let passable = !text.is_empty() && !text.contains('\0') && text.len() <= 16 * 1024;
        if passable && self.compared.is_some() {
            self.batch.push(text.clone());
            // Well below the kernel's limit on a command line (ARG_MAX, 2 MiB by default).
            if self.batch.iter().map(|s| s.len() * 5).sum::<usize>() > 512 * 1024 {
                self.flush()?;
            }
        }
        match VmName::parse(&text) {
            Ok(vm) => {
                let escaped = vm.escaped();
                let safe = escaped
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":_.\\".contains(&b));
                if !safe || escaped.starts_with('.') || vm.unit_name().len() > 255 {
                    return Err(format!(
                        "{text:?}: unsafe or too long unit {}",
                        vm.unit_name()
                    ));
                }
                let header = vm_table_header(vm.as_str());
                let table: toml::Table = toml::from_str(&format!("{header}\n"))
                    .map_err(|e| format!("hint {header} is not TOML: {e}"))?;
                let keys = table.get("vm").and_then(|v| v.as_table());
                if !keys.is_some_and(|k| k.contains_key(vm.as_str())) {
                    return Err(format!("hint {header} does not name {text:?}"));
                }
                let service = pitcrew::openrc_escape(vm.as_str());
                let plain = service
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
                if !plain || pitcrew::openrc_unescape(&service).as_deref() != Some(vm.as_str()) {
                    return Err(format!(
                        "{text:?}: OpenRC instance pitcrew.{service} is unsafe or does not \
                         unescape to it"
                    ));
                }
                // How close to the unit-name limit it came.
                Ok(format!("ok {}", vm.unit_name().len() / 8))
            }
            Err(e) => {
                let message = e.to_string();
                one_bounded_line("NameError", &message, 1024)?;
                Ok(format!(
                    "{} {}",
                    outcome_of(&message),
                    text.len().min(300) / 8
                ))
            }
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return Ok(());
        }
        let ours: Vec<String> = batch.iter().map(|s| systemd_escape(s)).collect();
        let theirs = tool("--", &batch)?;
        // The tool separates its outputs by spaces: unescaping is compared for the strings
        // without white space, whose outputs split cleanly.
        let (plain, plain_escaped): (Vec<&String>, Vec<String>) = batch
            .iter()
            .zip(&ours)
            .filter(|(input, _)| !input.contains(char::is_whitespace))
            .map(|(input, escaped)| (input, escaped.clone()))
            .unzip();
        let back = tool("--unescape", &plain_escaped)?;
        for (i, input) in batch.iter().enumerate() {
            if theirs.get(i) != Some(&ours[i]) {
                return Err(format!(
                    "{input:?}: pitcrew escapes to {:?}, systemd-escape to {:?}",
                    ours[i],
                    theirs.get(i)
                ));
            }
        }
        for (i, input) in plain.iter().enumerate() {
            if back.get(i) != Some(*input) {
                return Err(format!(
                    "systemd-escape --unescape {:?} gives {:?}, not {input:?}",
                    plain_escaped[i],
                    back.get(i)
                ));
            }
        }
        *self.compared.get_or_insert(0) += batch.len() as u64;
        Ok(())
    }

    fn oracle_checked(&self) -> Option<u64> {
        self.compared
    }
}

/// `systemd-escape [--unescape] -- STRINGS`: its outputs, one per string.
fn tool(mode: &str, strings: &[String]) -> Result<Vec<String>, String> {
    if strings.is_empty() {
        return Ok(Vec::new());
    }
    let mut command = Command::new("systemd-escape");
    if mode != "--" {
        command.arg(mode);
    }
    let out = command
        .arg("--")
        .args(strings)
        .output()
        .map_err(|e| format!("systemd-escape: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "systemd-escape {mode} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|e| format!("systemd-escape printed non-UTF-8: {e}"))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.split(' ').map(str::to_string).collect())
}
