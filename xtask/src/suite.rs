//! The Debian releases the full stack is built from, what each needs beyond the common package
//! list, and the mirror to fetch it from.

use anyhow::{bail, Result};
use std::fs;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// Debian 12: kernel 6.1, libvirt 9.0, QEMU 7.2
    Bookworm,
    /// Debian 13: kernel 6.12, libvirt 11.3, QEMU 10.0
    Trixie,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::Bookworm => "bookworm",
            Suite::Trixie => "trixie",
        }
    }

    /// Packages on top of the common list. Debian 13 split libvirt's drivers into packages that
    /// the daemon only recommends, and debootstrap installs no recommends.
    pub fn extra_packages(self) -> &'static [&'static str] {
        match self {
            Suite::Bookworm => &[],
            Suite::Trixie => &["libvirt-daemon-driver-qemu", "libvirt-daemon-log"],
        }
    }

    /// The directory under the test-bed cache where debootstrap keeps this suite's .debs
    /// (bookworm's keeps the name it had before there were two suites).
    pub fn debs_dir(self) -> &'static str {
        match self {
            Suite::Bookworm => "full-debs",
            Suite::Trixie => "full-debs-trixie",
        }
    }

    /// The Debian mirror this machine's apt uses ($PITCREW_DEBIAN_MIRROR overrides it): the first
    /// source that serves this suite, else the first that serves any release of the Debian
    /// archive itself (every mirror carries every release).
    pub fn mirror(self) -> Result<String> {
        if let Ok(m) = std::env::var("PITCREW_DEBIAN_MIRROR") {
            return Ok(m);
        }
        let mut files: Vec<PathBuf> = fs::read_dir("/etc/apt/sources.list.d")
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files.insert(0, PathBuf::from("/etc/apt/sources.list"));
        let texts: Vec<(bool, String)> = files
            .iter()
            .filter_map(|f| {
                let deb822 = f.extension().is_some_and(|e| e == "sources");
                fs::read_to_string(f).ok().map(|t| (deb822, t))
            })
            .collect();
        let wanted = [self.name(), "*"];
        for suite in wanted {
            for (deb822, text) in &texts {
                let found = if *deb822 {
                    mirror_deb822(text, suite)
                } else {
                    mirror_one_line(text, suite)
                };
                if let Some(m) = found {
                    return Ok(m);
                }
            }
        }
        bail!(
            "no Debian apt source in /etc/apt/sources.list*; set PITCREW_DEBIAN_MIRROR to a mirror serving {}",
            self.name()
        )
    }
}

/// Whether a source's suite is `wanted`, or, for `*`, a release itself (not -security or
/// -updates, which live in other archives or lack most packages).
fn serves(suite: &str, wanted: &str) -> bool {
    if wanted == "*" {
        !suite.contains('-') && !suite.contains('/')
    } else {
        suite == wanted
    }
}

fn mirror_deb822(text: &str, wanted: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or("")
        };
        let ok = field("Types:").split_whitespace().any(|t| t == "deb")
            && field("Suites:")
                .split_whitespace()
                .any(|s| serves(s, wanted));
        ok.then(|| field("URIs:").split_whitespace().next().map(str::to_string))
            .flatten()
    })
}

fn mirror_one_line(text: &str, wanted: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut words = l.split_whitespace().peekable();
        if words.next()? != "deb" {
            return None;
        }
        if words.peek()?.starts_with('[') {
            while !words.next()?.ends_with(']') {}
        }
        let uri = words.next()?;
        serves(words.next()?, wanted).then(|| uri.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_suite_mirror_or_any_release_mirror() {
        let deb822 = "Types: deb\nURIs: http://m.example/debian-security\nSuites: bookworm-security\n\n\
                      Types: deb\n# comment\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\n";
        assert_eq!(
            mirror_deb822(deb822, "bookworm").as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(mirror_deb822(deb822, "trixie"), None);
        assert_eq!(
            mirror_deb822(deb822, "*").as_deref(),
            Some("http://m.example/debian")
        );
        let list = "# x\ndeb-src http://a/ bookworm main\ndeb [arch=amd64 signed-by=/k] http://b/debian bookworm main\n";
        assert_eq!(
            mirror_one_line(list, "bookworm").as_deref(),
            Some("http://b/debian")
        );
        assert_eq!(
            mirror_one_line("deb http://c/ jammy main\n", "bookworm"),
            None
        );
        assert_eq!(
            mirror_one_line("deb http://s/ bookworm-security main\n", "*"),
            None
        );
    }
}
