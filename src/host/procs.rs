//! One walk of /proc for a snapshot: the processes that can hold a device node, each with the
//! name the kernel keeps for it. What the snapshot needs of them (the nodes each holds, which
//! are pitcrew's sleep inhibitors) is read from this one listing, not from a walk each. Kernel
//! threads are left out: they have no files, and there are hundreds of them on a desktop.

use super::Host;
use std::io;

/// PF_KTHREAD among the flags in /proc/<pid>/stat.
const PF_KTHREAD: u64 = 0x0020_0000;

/// A process the walk met.
pub struct Proc {
    /// Its pid.
    pub pid: u32,
    /// Its comm, from stat; `None` when stat could not be read (it exited meanwhile, or a
    /// staged tree has none).
    pub comm: Option<String>,
}

/// Every process but kernel threads, most of them left out by [`may_hold`] before their stat is
/// read. One whose stat cannot be read is kept: only the kernel leaves a process out (its flag,
/// its missing exe link), never anything the process chose.
pub fn user_space(host: &Host) -> io::Result<Vec<Proc>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(host.path("/proc"))? {
        let Ok(entry) = entry else { continue };
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if !may_hold(host, pid) {
            continue;
        }
        let stat = host.read(format!("/proc/{pid}/stat")).ok();
        let parsed = stat.as_deref().and_then(comm_and_flags);
        if parsed.is_some_and(|(_, flags)| flags & PF_KTHREAD != 0) {
            continue;
        }
        found.push(Proc {
            pid,
            comm: parsed.map(|(comm, _)| comm.to_string()),
        });
    }
    Ok(found)
}

/// False for a process with no memory of its own, whose /proc/<pid>/exe the kernel reports
/// missing: a kernel thread (most of /proc), or one that exited meanwhile. Neither has an fd
/// table or a mapping to look at, and one readlink tells them apart where reading the fd
/// directory and the maps would take six system calls, each slow under QEMU without KVM. A
/// process cannot shed its exe link. A staged tree's processes (the test trees) have none.
pub fn may_hold(host: &Host, pid: u32) -> bool {
    if host.is_staged() {
        return true;
    }
    let exe = rustix::fs::readlink(host.path(format!("/proc/{pid}/exe")), Vec::new());
    !matches!(exe, Err(rustix::io::Errno::NOENT))
}

/// The comm and the flags of a stat line, `pid (comm) state ppid pgrp session tty tpgid flags
/// ...`. A comm may hold spaces and parentheses: it ends at the last ')'.
fn comm_and_flags(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    let flags = stat
        .get(close + 1..)?
        .split_whitespace()
        .nth(6)?
        .parse()
        .ok()?;
    Some((comm, flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_threads_are_known_by_their_flag_not_their_name() {
        let dir = tempfile::tempdir().unwrap();
        for (pid, stat) in [
            (2, "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0"),
            (40, "40 (kworker/0:1-events) I 2 0 0 0 -1 69238880 0 0"),
            // A user's process may call itself anything, parentheses and all.
            (900, "900 (kworker) x) (S) S 1 900 900 0 -1 4194560 0 0"),
            (901, "901 (sleep) S 1 901 901 0 -1 4194304 0 0"),
        ] {
            let at = dir.path().join(format!("proc/{pid}"));
            std::fs::create_dir_all(&at).unwrap();
            std::fs::write(at.join("stat"), format!("{stat}\n")).unwrap();
        }
        // No stat to read: kept, whatever it is.
        std::fs::create_dir_all(dir.path().join("proc/902")).unwrap();
        std::fs::create_dir_all(dir.path().join("proc/self")).unwrap();
        let host = Host::real(dir.path());
        let mut found: Vec<(u32, Option<String>)> = user_space(&host)
            .unwrap()
            .into_iter()
            .map(|p| (p.pid, p.comm))
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                (900, Some("kworker) x) (S".to_string())),
                (901, Some("sleep".to_string())),
                (902, None)
            ]
        );
    }
}
