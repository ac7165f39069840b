//! The built binary as libvirt runs it, with fake `virsh` and `systemctl` first on PATH: libvirt
//! is never called back, stdout stays empty, and the unit is started and stopped as expected.

use pitcrew_sim::{domain_xml, TestHost, HOOK_OPS};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

struct Bin {
    fakes: tempfile::TempDir,
}

impl Bin {
    /// `systemctl_exit` is what the fake systemctl exits with.
    fn new(systemctl_exit: i32) -> Bin {
        let fakes = tempfile::tempdir().unwrap();
        let log = fakes.path().join("calls.log");
        for (name, exit) in [("virsh", 0), ("systemctl", systemctl_exit)] {
            let script = format!(
                "#!/bin/sh\necho \"{name} $*\" >> '{}'\nexit {exit}\n",
                log.display()
            );
            let path = fakes.path().join(name);
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Bin { fakes }
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.fakes.path().join("calls.log")).unwrap_or_default()
    }

    fn run(&self, program: &Path, args: &[&str], stdin: &str) -> Output {
        let path = format!("{}:/usr/bin:/bin", self.fakes.path().display());
        let mut child = Command::new(program)
            .args(args)
            .env("PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // libvirt closes stdin after the XML; the hook may exit without reading it (EPIPE is fine).
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    }
}

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pitcrew"))
}

#[test]
fn every_op_of_a_managed_vm_without_virsh_or_stdout() {
    let t = TestHost::new();
    t.config("auto = true\n");
    t.pci("0000:01:00.0", "0x030000");
    let xml = domain_xml("win11", &[(1, 0, 0)]);
    let fake = Bin::new(0);
    let root = t.dir.path().to_str().unwrap();
    for (op, subop) in HOOK_OPS {
        let out = fake.run(
            bin(),
            &["--root", root, "hook", "win11", op, subop, "-"],
            &xml,
        );
        let expected = if op == "migrate" { 1 } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{op}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{op} wrote to stdout");
    }
    assert_eq!(
        fake.calls(),
        "systemctl start -- pitcrew@win11.service\nsystemctl stop --no-block -- pitcrew@win11.service\n",
        "virsh must never appear here"
    );
}

#[test]
fn a_failing_unit_fails_the_start_with_one_stderr_line() {
    let t = TestHost::new();
    t.config("[vm.win11]\ndevices = [\"01:00.0\"]\n");
    let fake = Bin::new(1);
    let root = t.dir.path().to_str().unwrap();
    let out = fake.run(
        bin(),
        &["--root", root, "hook", "win11", "prepare", "begin", "-"],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("journalctl -u pitcrew@win11.service"),
        "{stderr}"
    );
    assert!(!fake.calls().contains("virsh"));
}

#[test]
fn run_as_a_drop_in_link_it_takes_libvirts_arguments() {
    // Named like the installed link: .../qemu.d/pitcrew <domain> <op> <subop> <extra>.
    let dir = tempfile::tempdir().unwrap();
    let dropins = dir.path().join("qemu.d");
    std::fs::create_dir(&dropins).unwrap();
    let link = dropins.join("pitcrew");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    let fake = Bin::new(0);
    for (op, subop) in HOOK_OPS
        .iter()
        .filter(|(op, _)| !matches!(*op, "prepare" | "release" | "migrate"))
    {
        let out = fake.run(&link, &["win11", op, subop, "-"], "<domain/>");
        assert_eq!(out.status.code(), Some(0), "{op}");
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{op}");
    }
    let out = fake.run(&link, &["win11"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(fake.calls().is_empty());
}
