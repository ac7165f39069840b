//! VM names: untrusted text that ends up in a unit name and a file name, so it is checked once
//! here and only ever used in its escaped form.

use std::fmt;

/// Longest name accepted, in bytes. libvirt keeps `<name>.xml` files, so a name can never be
/// longer than a file name (255) less the suffix; a lower bound keeps the escaped unit name
/// (up to 4 bytes per byte) short enough for systemd's 255-character limit in the common case,
/// and [`VmName::parse`] checks that limit exactly.
pub const MAX_NAME_BYTES: usize = 200;

/// systemd refuses unit names longer than this (UNIT_NAME_MAX - 1).
const MAX_UNIT_NAME: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
/// A VM name that is safe to use in a unit name and a file name (escaped).
pub struct VmName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
/// Why a VM name is refused.
pub enum NameError {
    #[error("a VM name cannot be empty")]
    /// It is empty.
    Empty,
    #[error("VM name {0:?} is longer than {MAX_NAME_BYTES} bytes")]
    /// It is longer than any name libvirt keeps.
    TooLong(String),
    #[error(
        "VM name {name:?} escapes to a unit name of {length} bytes, and systemd allows at most \
         {MAX_UNIT_NAME}: use a shorter name, or fewer characters outside A-Z, a-z, 0-9, ':', '_' \
         and '.' (each of those bytes takes 4)"
    )]
    /// Its escaped unit name is longer than systemd allows.
    UnitTooLong {
        /// The name, cut.
        name: String,
        /// The length of `pitcrew@<escaped>.service`.
        length: usize,
    },
    #[error("VM name {0:?} contains '/', which libvirt does not allow")]
    /// It contains a slash.
    Slash(String),
    #[error("VM name {0:?} contains a control character or NUL")]
    /// It contains a control character.
    Control(String),
}

impl VmName {
    /// Checks a name as libvirt would accept it.
    pub fn parse(name: &str) -> Result<VmName, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        let shown = || name.chars().take(64).collect::<String>();
        if name.len() > MAX_NAME_BYTES {
            return Err(NameError::TooLong(shown()));
        }
        if name.contains('/') {
            return Err(NameError::Slash(shown()));
        }
        if name.chars().any(char::is_control) {
            return Err(NameError::Control(shown()));
        }
        let vm = VmName(name.to_string());
        let length = vm.unit_name().len();
        if length > MAX_UNIT_NAME {
            return Err(NameError::UnitTooLong {
                name: shown(),
                length,
            });
        }
        Ok(vm)
    }

    /// The name as libvirt knows it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name escaped as `systemd-escape` does: safe as a unit instance and as a file name
    /// (no '/', no leading '.', only `[A-Za-z0-9:_.\\]`).
    pub fn escaped(&self) -> String {
        systemd_escape(&self.0)
    }

    /// `pitcrew@<escaped>.service`, the unit that holds this VM's GPU while it runs.
    pub fn unit_name(&self) -> String {
        format!("pitcrew@{}.service", self.escaped())
    }
}

impl fmt::Display for VmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// systemd's `unit_name_escape()` (what `systemd-escape NAME` prints): '/' becomes '-', a leading
/// '.' and every byte outside `[A-Za-z0-9:_.]` become `\xNN` (lower-case hex).
pub fn systemd_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, byte) in text.bytes().enumerate() {
        let plain = byte.is_ascii_alphanumeric() || matches!(byte, b':' | b'_' | b'.');
        if byte == b'/' {
            out.push('-');
        } else if plain && !(i == 0 && byte == b'.') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_matches_systemd_escape() {
        // Expected values printed by systemd-escape 252 (Debian 12) for the same inputs.
        let cases = [
            ("win11", "win11"),
            ("win 11", "win\\x2011"),
            ("my-vm", "my\\x2dvm"),
            (".hidden", "\\x2ehidden"),
            ("..", "\\x2e."),
            ("a.b_c:d", "a.b_c:d"),
            ("back\\slash", "back\\x5cslash"),
            ("ünï", "\\xc3\\xbcn\\xc3\\xaf"),
            ("$(reboot)", "\\x24\\x28reboot\\x29"),
            ("a/b", "a-b"),
        ];
        for (input, expected) in cases {
            assert_eq!(systemd_escape(input), expected, "{input}");
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "",
            "../etc",
            "a/b",
            "nul\0",
            "line\nbreak",
            "tab\t",
            "esc\u{1b}[0m",
        ] {
            assert!(VmName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(VmName::parse(&"x".repeat(MAX_NAME_BYTES + 1)).is_err());
        // 60 multi-byte characters: within the byte limit but escaped past systemd's limit,
        // which is the one the message names.
        let message = VmName::parse(&"é".repeat(60)).unwrap_err().to_string();
        assert!(
            message.contains("unit name of 496 bytes") && message.contains("at most 255"),
            "{message}"
        );
        assert!(VmName::parse(&"x".repeat(MAX_NAME_BYTES)).is_ok());
    }

    #[test]
    fn escaped_names_are_safe_file_names() {
        for name in [".", "..", "-rf", "--root=x", "a b", "win11"] {
            let escaped = VmName::parse(name).unwrap().escaped();
            assert!(
                !escaped.contains('/') && !escaped.starts_with('.') && !escaped.starts_with('-')
            );
        }
    }
}
