//! The built binary as libvirt runs it, with fake `virsh` and `systemctl` first on PATH: libvirt
//! is never called back, stdout stays empty, stderr holds at most one line, and under a staged
//! `--root` not even systemctl runs (the library tests drive the unit with a fake runner).

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
fn a_staged_root_never_starts_or_stops_a_unit() {
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
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expected = if op == "migrate" { 1 } else { 0 };
        assert_eq!(out.status.code(), Some(expected), "{op}: {stderr}");
        assert!(out.stdout.is_empty(), "{op} wrote to stdout");
        assert!(stderr.lines().count() <= 1, "{op}: {stderr}");
        if op == "prepare" {
            assert!(
                stderr.contains("staged tree")
                    && stderr.contains("`systemctl start -- pitcrew@win11.service` not done"),
                "{stderr}"
            );
        }
    }
    // The hook still did its part inside the tree: the request for the unit is there.
    assert!(t.path("/run/pitcrew/vm/win11.json").is_file());
    assert_eq!(fake.calls(), "", "neither systemctl nor virsh may run");
}

#[test]
fn hostile_xml_fails_the_start_with_one_bounded_stderr_line() {
    let t = TestHost::new();
    t.config("auto = true\n");
    let fake = Bin::new(0);
    let root = t.dir.path().to_str().unwrap();
    // Character references keep the line breaks and tabs in the attribute's value.
    let junk = "x&#10;&#9;y".repeat(20_000);
    let xml = format!(
        "<domain><devices><hostdev type='pci'><source><address bus='{junk}' slot='0' \
         function='0'/></source></hostdev></devices></domain>"
    );
    let out = fake.run(
        bin(),
        &["--root", root, "hook", "win11", "prepare", "begin", "-"],
        &xml,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.matches('\n').count(), 1, "{stderr}");
    assert!(stderr.len() <= 513, "{} bytes", stderr.len());
    assert!(!stderr.trim_end().chars().any(char::is_control), "{stderr}");
    assert!(stderr.contains("not a PCI address"), "{stderr}");
    assert_eq!(fake.calls(), "");
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
