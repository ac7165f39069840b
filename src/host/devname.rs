//! The /dev name the kernel gives a character device, whatever path a process opened it by.
//! /proc/<pid>/fd shows the opener's path: a container given the host's renderD129 as its own
//! /dev/dri/renderD128 (`docker run --device A:B`), or a node made with mknod anywhere, would
//! otherwise hide the holder of one card or blame it on another. The device number does not lie.

use super::Host;
use rustix::fs::FileType;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

/// Device numbers already looked up: every process holds /dev/null and a terminal, so one scan
/// would otherwise read the same few sysfs files hundreds of times.
#[derive(Default)]
pub struct DevNames {
    known: RefCell<HashMap<u64, Option<String>>>,
}

impl DevNames {
    /// What the /proc/<pid>/fd entry `fd` is open on: `/dev/<DEVNAME>` for a character device
    /// sysfs names, otherwise the path the link shows (a regular file, a node without a sysfs
    /// entry such as /dev/nvidia0). None when the entry is gone or not ours to read.
    pub fn of_fd(&self, host: &Host, fd: &Path) -> Option<String> {
        let shown = std::fs::read_link(fd).ok()?.to_string_lossy().into_owned();
        // A staged tree's fd links point at this machine's files, not the tree's devices.
        // Sockets, pipes and anonymous inodes (most of a browser's fds) have no path.
        if host.is_staged() || !shown.starts_with('/') {
            return Some(shown);
        }
        // stat follows the link to the open file's inode without opening anything.
        let Ok(stat) = rustix::fs::stat(fd) else {
            return Some(shown);
        };
        if FileType::from_raw_mode(stat.st_mode) != FileType::CharacterDevice {
            return Some(shown);
        }
        let rdev = stat.st_rdev;
        let name = self
            .known
            .borrow_mut()
            .entry(rdev)
            .or_insert_with(|| devname(host, rustix::fs::major(rdev), rustix::fs::minor(rdev)))
            .clone();
        Some(name.unwrap_or(shown))
    }
}

/// `/dev/<DEVNAME>` of character device `major:minor`, from its sysfs uevent.
fn devname(host: &Host, major: u32, minor: u32) -> Option<String> {
    let uevent = host
        .read(format!("/sys/dev/char/{major}:{minor}/uevent"))
        .ok()?;
    uevent
        .lines()
        .find_map(|line| line.strip_prefix("DEVNAME="))
        .filter(|name| !name.is_empty() && !name.split('/').any(|part| part == ".."))
        .map(|name| format!("/dev/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_with(uevents: &[(&str, &str)]) -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        for (number, text) in uevents {
            let at = dir.path().join(format!("sys/dev/char/{number}"));
            std::fs::create_dir_all(&at).unwrap();
            std::fs::write(at.join("uevent"), text).unwrap();
        }
        let host = Host::real(dir.path());
        (dir, host)
    }

    #[test]
    fn the_kernel_name_of_a_device_number() {
        let (_dir, host) = host_with(&[
            (
                "226:129",
                "MAJOR=226\nMINOR=129\nDEVNAME=dri/renderD129\nDEVTYPE=drm_minor\n",
            ),
            ("116:2", "MAJOR=116\nMINOR=2\nDEVNAME=snd/controlC0\n"),
            ("89:3", "MAJOR=89\nMINOR=3\nDEVNAME=i2c-3\n"),
            ("10:1", "MAJOR=10\nMINOR=1\n"),
            ("10:2", "MAJOR=10\nMINOR=2\nDEVNAME=../etc/shadow\n"),
        ]);
        assert_eq!(
            devname(&host, 226, 129).as_deref(),
            Some("/dev/dri/renderD129")
        );
        assert_eq!(
            devname(&host, 116, 2).as_deref(),
            Some("/dev/snd/controlC0")
        );
        assert_eq!(devname(&host, 89, 3).as_deref(), Some("/dev/i2c-3"));
        assert_eq!(devname(&host, 10, 1), None, "no DEVNAME");
        assert_eq!(devname(&host, 10, 2), None, "a name that leaves /dev");
        assert_eq!(devname(&host, 195, 0), None, "no sysfs entry (nvidia)");
    }
}
