//! The unit's answer to the hook: when `pitcrew detach --vm NAME` fails, it leaves its message
//! in `/run/pitcrew/vm/<escaped name>.failed`, and the hook puts it into the error libvirt
//! reports for the start (`virsh start`, virt-manager's dialog), so the user reads why the VM did
//! not start where they started it, not only a pointer to the journal.

use super::request::REQUEST_DIR;
use crate::host::Host;
use crate::runfile::{self, RunFileError};
use crate::vm::VmName;
use std::path::PathBuf;

/// More than the hook can show; a longer message is cut when written.
const MAX_BYTES: usize = 4096;

fn path(host: &Host, vm: &VmName) -> PathBuf {
    host.path(format!("{REQUEST_DIR}/{}.failed", vm.escaped()))
}

/// Forgets an earlier start's reason. The hook does this before it starts the unit, so a unit
/// that fails before pitcrew runs (a missing binary) never shows a stale reason.
pub fn clear(host: &Host, vm: &VmName) {
    // Nothing worse than a stale reason can come of a file that stays; the start goes on.
    let _ = std::fs::remove_file(path(host, vm));
}

/// Leaves `message`, as one line, for the hook of the start that is failing.
pub fn record(host: &Host, vm: &VmName, message: &str) -> Result<PathBuf, RunFileError> {
    let dir = runfile::private_dir(host, REQUEST_DIR)?;
    let line = crate::text::one_line(message, MAX_BYTES);
    runfile::write_atomic(&dir, &format!("{}.failed", vm.escaped()), line.as_bytes())
}

/// The reason the unit left for this start, if it left one that pitcrew could have written.
pub fn read(host: &Host, vm: &VmName) -> Option<String> {
    let bytes = runfile::read_private(host, &path(host, vm), MAX_BYTES as u64)
        .ok()
        .flatten()?;
    let text = String::from_utf8_lossy(&bytes);
    (!text.trim().is_empty()).then(|| crate::text::one_line(text.trim(), MAX_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_reason_is_read_back_as_one_line_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::real(dir.path());
        let vm = VmName::parse("gpu-vm").unwrap();
        assert_eq!(read(&host, &vm), None);
        record(&host, &vm, "step 3 of 6 failed:\nthe kernel did not return").unwrap();
        let reason = read(&host, &vm).unwrap();
        assert!(!reason.contains('\n'), "{reason}");
        assert!(reason.starts_with("step 3 of 6 failed:"), "{reason}");
        clear(&host, &vm);
        assert_eq!(read(&host, &vm), None);
    }

    #[test]
    fn a_reason_nobody_but_pitcrew_could_have_written_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::real(dir.path());
        let vm = VmName::parse("gpu-vm").unwrap();
        record(&host, &vm, "real reason").unwrap();
        let file = path(&host, &vm);
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &file).unwrap();
        assert_eq!(read(&host, &vm), None);
    }
}
