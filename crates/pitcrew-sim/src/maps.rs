//! `/proc/<pid>/maps` as the kernel writes it: `start-end perms offset MAJ:MIN inode`, padded,
//! then the file's name. A mapped node shows the device and inode of its file under the root,
//! as a node on devtmpfs shows devtmpfs's device and its own inode.

use std::fmt::Write;
use std::io;
use std::os::unix::fs::MetadataExt;

use crate::builder::MapSpec;
use crate::model::Proc;
use crate::tree::Tree;

/// Where the name starts on a 64-bit kernel (show_map_vma pads the fields to this width).
const NAME_COLUMN: usize = 73;

/// Where the process's mappings start; each takes the next 132 KiB.
const FIRST_ADDRESS: u64 = 0x7f00_0000_0000;
const SIZE: u64 = 0x21000;

/// The whole maps file of `p`: its ordinary mappings with its node mappings in their middle.
pub(crate) fn text(t: &Tree, p: &Proc) -> io::Result<String> {
    // The libraries' device is never the one the root's files (the nodes) are on.
    let root = std::fs::metadata(t.at("/"))?.dev();
    let libraries = if (rustix::fs::major(root), rustix::fs::minor(root)) == (0xfd, 1) {
        (0xfd, 2)
    } else {
        (0xfd, 1)
    };
    let mut lines = Vec::new();
    for spec in &p.other_maps {
        match spec {
            MapSpec::Ordinary(count) => lines.extend((0..*count).map(|n| ordinary(n, libraries))),
            MapSpec::File {
                major,
                minor,
                inode,
                name,
            } => lines.push(("rw-s", *major, *minor, *inode, name.clone())),
            MapSpec::Node(_) => {}
        }
    }
    let middle = lines.len() / 2;
    let nodes = p
        .mapped
        .iter()
        .map(|fd| {
            let meta = std::fs::metadata(t.at(&fd.target))?;
            let dev = meta.dev();
            Ok((
                "rw-s",
                rustix::fs::major(dev),
                rustix::fs::minor(dev),
                meta.ino(),
                fd.target.clone(),
            ))
        })
        .collect::<io::Result<Vec<_>>>()?;
    lines.splice(middle..middle, nodes);
    let mut text = String::new();
    for (n, (perms, major, minor, inode, name)) in lines.into_iter().enumerate() {
        let start = FIRST_ADDRESS + n as u64 * SIZE;
        let fields = format!(
            "{start:012x}-{:012x} {perms} {:08x} {major:02x}:{minor:02x} {inode} ",
            start + SIZE,
            0
        );
        if name.is_empty() {
            text.push_str(&fields);
        } else {
            let _ = write!(text, "{fields:<NAME_COLUMN$}{name}");
        }
        text.push('\n');
    }
    Ok(text)
}

/// The `n`th mapping of a process's libraries and memory: two in five anonymous, the rest
/// pieces of shared libraries on the filesystem `(major, minor)`.
fn ordinary(n: usize, (major, minor): (u32, u32)) -> (&'static str, u32, u32, u64, String) {
    match n % 5 {
        0 | 1 => ("rw-p", 0, 0, 0, String::new()),
        k => (
            ["r--p", "r-xp", "rw-p"][k - 2],
            major,
            minor,
            1_835_000 + (n / 5) as u64,
            format!("/usr/lib/x86_64-linux-gnu/libsim-part{}.so.1", n / 5),
        ),
    }
}
