//! Nodes a process has mapped, from /proc/<pid>/maps. A process that mapped a node and closed
//! its fd pins the driver as firmly as one holding the fd, and shows up in no fd directory.
//!
//! A mapping is known by the device and inode its line shows, those of the file mapped (for a
//! node in /dev, devtmpfs's device and the node's inode, not the device number the node stands
//! for), never by the name on the line: anyone can map a file of their own called renderD128.
//! A desktop has hundreds of processes with thousands of mappings each, so a map is not parsed
//! line by line: one pass of a substring search per filesystem the nodes live on (devtmpfs
//! alone on a real host) finds the few lines whose device field is theirs.

use super::{nodes, Host};
use crate::untrusted::{self, Last};
use memchr::memmem::Finder;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;

/// A map is read in pieces of this size into one buffer reused for every process: far more
/// than a line (a path is at most 4 KiB), and no new allocation per process.
const CHUNK: usize = 256 * 1024;

/// The most read of one map: a game under Wine can have a million mappings (~100 MiB of text),
/// and the kernel makes the text as it is read, so a larger map is searched only this far.
const MAPS_LIMIT: u64 = 256 << 20;

/// The nodes looked for, and the buffer their search reads maps into.
pub struct MappedNodes {
    /// Per filesystem the nodes are on: ` MAJ:MIN ` as a maps line shows its device (hex, at
    /// least two digits each), and its nodes by inode.
    devices: Vec<(Finder<'static>, HashMap<u64, String>)>,
    buf: RefCell<Vec<u8>>,
}

impl MappedNodes {
    /// The tracked nodes present now that `wanted` accepts, each by its device and inode.
    pub fn of(host: &Host, wanted: impl Fn(&str) -> bool) -> MappedNodes {
        let mut by_device: HashMap<u64, HashMap<u64, String>> = HashMap::new();
        for node in nodes::present(host).into_iter().filter(|n| wanted(n)) {
            let Ok(meta) = std::fs::symlink_metadata(host.path(&node)) else {
                continue;
            };
            by_device
                .entry(meta.dev())
                .or_default()
                .insert(meta.ino(), node);
        }
        let devices = by_device
            .into_iter()
            .map(|(dev, inodes)| {
                let field = format!(
                    " {:02x}:{:02x} ",
                    rustix::fs::major(dev),
                    rustix::fs::minor(dev)
                );
                (Finder::new(field.as_bytes()).into_owned(), inodes)
            })
            .collect();
        MappedNodes {
            devices,
            buf: RefCell::new(Vec::new()),
        }
    }

    /// The nodes `pid` has mapped now; none when it is gone or its map is not ours to read.
    pub fn held_by(&self, host: &Host, pid: u32) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        if self.devices.is_empty() {
            return found;
        }
        let path = host.path(format!("/proc/{pid}/maps"));
        let Ok(file) = untrusted::open(&path, Last::NoFollow) else {
            return found;
        };
        let mut reader = file.bounded(MAPS_LIMIT);
        let mut buf = self.buf.borrow_mut();
        buf.resize(CHUNK, 0);
        let (mut filled, mut total) = (0, 0u64);
        // Set while dropping a line longer than the buffer (no kernel writes one) up to its end:
        // its tail must not pass for a line of its own.
        let mut overlong = false;
        loop {
            let n = match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // It exited meanwhile: what was read is all there is.
                Err(_) => break,
            };
            total += n as u64;
            filled += n;
            let Some(end) = memchr::memrchr(b'\n', &buf[..filled]) else {
                if filled == buf.len() {
                    (filled, overlong) = (0, true);
                }
                continue;
            };
            let mut lines = &buf[..=end];
            if overlong {
                let cut = memchr::memchr(b'\n', lines).map_or(0, |at| at + 1);
                (lines, overlong) = (&lines[cut..], false);
            }
            self.search(lines, &mut found);
            buf.copy_within(end + 1..filled, 0);
            filled -= end + 1;
        }
        if !overlong {
            self.search(&buf[..filled], &mut found);
        }
        if total >= MAPS_LIMIT {
            tracing::warn!(
                "{}: larger than {} MiB; only that much was searched for the card's nodes",
                path.display(),
                MAPS_LIMIT >> 20
            );
        }
        found
    }

    /// Adds the nodes whose device and inode fill a line's fields among whole `lines`.
    fn search(&self, lines: &[u8], found: &mut BTreeSet<String>) {
        for (finder, inodes) in &self.devices {
            for at in finder.find_iter(lines) {
                // `start-end perms offset MAJ:MIN inode  path`: the device field follows the
                // line's second space. The same text in a path comes later and does not count.
                let start = memchr::memrchr(b'\n', &lines[..at]).map_or(0, |nl| nl + 1);
                if memchr::memchr_iter(b' ', &lines[start..at]).count() != 2 {
                    continue;
                }
                let rest = &lines[at + finder.needle().len()..];
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                if !matches!(rest.get(digits), Some(b' ' | b'\n')) {
                    continue;
                }
                let inode = std::str::from_utf8(&rest[..digits])
                    .ok()
                    .and_then(|text| text.parse::<u64>().ok());
                if let Some(node) = inode.and_then(|inode| inodes.get(&inode)) {
                    found.insert(node.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root with one render node and process 1's maps made of `lines`; returns the node's
    /// maps line.
    fn host_with(lines: impl Fn(&str) -> String) -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dev/dri")).unwrap();
        let node = dir.path().join("dev/dri/renderD128");
        std::fs::write(&node, "").unwrap();
        let meta = std::fs::metadata(&node).unwrap();
        let mapping = format!(
            "7f0000000000-7f0000001000 rw-s 100000000 {:02x}:{:02x} {}    /dev/dri/renderD128\n",
            rustix::fs::major(meta.dev()),
            rustix::fs::minor(meta.dev()),
            meta.ino()
        );
        std::fs::create_dir_all(dir.path().join("proc/1")).unwrap();
        std::fs::write(dir.path().join("proc/1/maps"), lines(&mapping)).unwrap();
        let host = Host::real(dir.path());
        (dir, host)
    }

    fn mapped(host: &Host) -> BTreeSet<String> {
        MappedNodes::of(host, nodes::is_tracked).held_by(host, 1)
    }

    const LIBRARY: &str = "7f1000000000-7f1000021000 r-xp 00021000 fd:01 1835042                    /usr/lib/libc.so.6\n";

    #[test]
    fn a_line_cut_by_the_end_of_a_piece_is_searched_whole() {
        // The mapping straddles the first piece's end, at every offset around it.
        for shift in 0..LIBRARY.len() {
            let (_dir, host) = host_with(|mapping| {
                let before = (CHUNK - 20 - shift) / LIBRARY.len() + 1;
                let mut text = "x".repeat((CHUNK - 20 - shift) % LIBRARY.len());
                text.push('\n');
                text += &LIBRARY.repeat(before - 1);
                text + mapping + LIBRARY
            });
            assert_eq!(
                mapped(&host),
                BTreeSet::from(["/dev/dri/renderD128".into()])
            );
        }
    }

    #[test]
    fn the_last_line_needs_no_newline_and_an_overlong_line_hides_nothing() {
        let (_dir, host) = host_with(|mapping| mapping.trim_end().to_string());
        assert_eq!(mapped(&host).len(), 1);
        // Longer than a piece (no kernel writes one): its tail does not pass for a line.
        let (_dir, host) = host_with(|mapping| {
            let tail = mapping.replace("/dev/dri/renderD128", "");
            format!("{}{tail}", "y".repeat(CHUNK + 10))
        });
        assert!(mapped(&host).is_empty());
    }
}
