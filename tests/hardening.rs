//! Hostile input at the edges: what another process could put where pitcrew reads, staged roots,
//! names at their limits, and what reaches the user when stdout or stderr are gone.

use pitcrew::{Config, Record, VmName};
use pitcrew_sim::TestHost;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `f` on a thread and fails the test if it has not returned within 10 s: the defect these
/// tests guard against is a read that never returns.
fn within_seconds<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} still blocked after 10 s"))
}

fn mkfifo(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    rustix::fs::mkfifoat(rustix::fs::CWD, path, rustix::fs::Mode::from(0o644)).unwrap();
}

/// The binary with a deadline; a hang is a failure, not a stuck test run.
fn pitcrew(args: &[&str], stdout: Stdio, stderr: Stdio) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pitcrew"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("pitcrew {args:?} still running after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn piped(args: &[&str]) -> (Option<i32>, String, String) {
    let out = pitcrew(args, Stdio::piped(), Stdio::piped());
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// The write end of a pipe whose reader is gone: every write fails with EPIPE.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Stdio::from(OwnedFd::from(writer))
}

fn dev_full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    )
}

#[test]
fn a_config_linked_into_a_directory_others_can_write_is_refused() {
    let t = TestHost::new();
    let elsewhere = t.path("/var/tmp/pitcrew.toml");
    t.file("/var/tmp/pitcrew.toml", "auto = true\n", 0o644);
    std::fs::set_permissions(t.path("/var/tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    t.file("/etc/pitcrew/.keep", "", 0o644);
    std::os::unix::fs::symlink(&elsewhere, t.path("/etc/pitcrew/pitcrew.toml")).unwrap();
    let message = Config::load(&t.host).unwrap_err().to_string();
    assert!(
        message.contains(&format!("whose directory {}", t.path("/var/tmp").display()))
            && message.contains("so others can change it")
            && !message.contains("chmod")
            && message.contains(&format!(
                "run `install -m 0644 {} {}`",
                elsewhere.display(),
                t.path("/etc/pitcrew/pitcrew.toml").display()
            )),
        "{message}"
    );
    // The same file behind a link into a directory only its owner can write is fine.
    std::fs::set_permissions(t.path("/var/tmp"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(Config::load(&t.host).unwrap().unwrap().auto);
}

#[test]
fn a_fifo_or_a_device_as_the_config_is_refused_without_blocking() {
    let t = TestHost::new();
    t.file("/etc/pitcrew/.keep", "", 0o644);
    let config = t.path("/etc/pitcrew/pitcrew.toml");
    mkfifo(&config);
    let host = t.host.clone();
    let message = within_seconds("reading a FIFO config", move || {
        Config::load(&host).unwrap_err().to_string()
    });
    assert!(message.contains("a FIFO, not a regular file"), "{message}");
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    let host = t.host.clone();
    let message = within_seconds("reading /dev/zero as the config", move || {
        Config::load(&host).unwrap_err().to_string()
    });
    assert!(message.contains("a character device"), "{message}");
    // The binary refuses it as bad input.
    let root = t.dir.path().to_str().unwrap();
    let (code, _, stderr) = piped(&["--root", root, "detach", "--vm", "win11", "--dry-run"]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn a_config_larger_than_a_mebibyte_is_refused() {
    let t = TestHost::new();
    t.config(&format!("# {}\n", "x".repeat(1024 * 1024)));
    let message = Config::load(&t.host).unwrap_err().to_string();
    assert!(message.contains("at most 1048576 bytes"), "{message}");
}

#[test]
fn a_fifo_as_a_request_file_or_state_record_is_refused_without_blocking() {
    let t = TestHost::new();
    t.config("auto = true\n");
    t.pci("0000:01:00.0", "0x030000");
    // The hook writes the request, so its directories are as pitcrew wants them.
    assert_eq!(t.prepare_win11().code, 0);
    let request = t.path("/run/pitcrew/vm/win11.json");
    std::fs::remove_file(&request).unwrap();
    mkfifo(&request);
    let host = t.host.clone();
    let message = within_seconds("reading a FIFO request", move || {
        pitcrew::devices_for_vm(&host, &Config::default(), "win11")
            .unwrap_err()
            .to_string()
    });
    assert!(message.contains("a FIFO"), "{message}");
    mkfifo(&t.path("/run/pitcrew/state.json"));
    let host = t.host.clone();
    let message = within_seconds("reading a FIFO state record", move || {
        Record::load(&host).unwrap_err().to_string()
    });
    assert!(message.contains("a FIFO"), "{message}");
}

#[test]
fn a_fifo_in_a_staged_sysfs_is_refused_without_blocking() {
    let sim = pitcrew_sim::fixtures::amd_with_audio();
    let class = sim.root().join("sys/bus/pci/devices/0000:03:00.0/class");
    std::fs::remove_file(&class).unwrap();
    mkfifo(&class);
    let root = sim.root().to_str().unwrap();
    let (code, _, stderr) = piped(&["--root", root, "status"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("0000:03:00.0/class: a FIFO, not a regular file"),
        "{stderr}"
    );
}

#[test]
fn a_bad_root_is_bad_input() {
    let empty = tempfile::tempdir().unwrap();
    let file = empty.path().join("file");
    std::fs::write(&file, "").unwrap();
    for root in [
        "/nonexistent/pitcrew-root",
        file.to_str().unwrap(),
        "/dev/null",
        empty.path().to_str().unwrap(),
    ] {
        let (code, stdout, stderr) = piped(&["--root", root, "status"]);
        assert_eq!(code, Some(2), "{root}: {stderr}");
        assert!(stdout.is_empty());
        assert!(
            stderr.starts_with(&format!("pitcrew: --root {root}")) && stderr.lines().count() == 1,
            "{stderr}"
        );
    }
    // Staging an install needs no system under the root.
    let (code, _, stderr) = piped(&["--root", empty.path().to_str().unwrap(), "install"]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn a_cause_is_said_once_and_a_missing_attribute_names_its_device() {
    let sim = pitcrew_sim::fixtures::amd_with_audio();
    let root = sim.root().to_str().unwrap();
    std::fs::remove_file(sim.root().join("sys/bus/pci/devices/0000:03:00.1/vendor")).unwrap();
    let (code, _, stderr) = piped(&["--root", root, "status"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("0000:03:00.1/vendor: No such file or directory"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("No such file or directory").count(), 1);

    let devices = sim.root().join("sys/bus/pci/devices");
    std::fs::remove_dir_all(&devices).unwrap();
    std::fs::write(&devices, "").unwrap();
    let (code, _, stderr) = piped(&["--root", root, "status"]);
    assert_eq!(code, Some(1));
    assert_eq!(stderr.matches("Not a directory").count(), 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn the_name_limit_message_names_the_escaped_unit_limit() {
    let message = VmName::parse(&"é".repeat(60)).unwrap_err().to_string();
    assert!(
        message.contains("255") && !message.contains("200 bytes"),
        "{message}"
    );
}

#[test]
fn the_config_hint_for_any_name_is_valid_toml() {
    for name in ["a\"b", "back\\slash", "it's", "[x]", "ü ñ", "a.b"] {
        let t = TestHost::new();
        t.config("");
        let config = Config::load(&t.host).unwrap().unwrap();
        let message = pitcrew::devices_for_vm(&t.host, &config, name)
            .unwrap_err()
            .to_string();
        let start = message.find("[vm.").unwrap_or_else(|| panic!("{message}"));
        let end = message
            .find("] in /etc/")
            .unwrap_or_else(|| panic!("{message}"));
        let header = &message[start..=end];
        let table: toml::Table = toml::from_str(&format!("{header}\nreattach = true\n"))
            .unwrap_or_else(|e| panic!("{header} is not TOML: {e}"));
        assert!(
            table["vm"].as_table().unwrap().contains_key(name),
            "{header}"
        );
    }
}

#[test]
fn a_closed_or_full_stdout_or_stderr_never_panics() {
    let sim = pitcrew_sim::fixtures::amd_with_audio();
    let root = sim.root().to_str().unwrap();
    // A failing command whose message cannot be written: the exit code stays 2.
    let out = pitcrew(
        &["--root", "/nonexistent", "status"],
        Stdio::null(),
        closed_pipe(),
    );
    assert_eq!(out.status.code(), Some(2));
    let out = pitcrew(
        &["--root", "/nonexistent", "status"],
        Stdio::null(),
        dev_full(),
    );
    assert_eq!(out.status.code(), Some(2));
    // A reader that went away is no error; a full disk is, said (or not) without a panic.
    let out = pitcrew(&["--root", root, "status"], closed_pipe(), closed_pipe());
    assert_eq!(out.status.code(), Some(0));
    let out = pitcrew(&["--root", root, "status"], dev_full(), closed_pipe());
    assert_eq!(out.status.code(), Some(1));
    let out = pitcrew(&["--help"], dev_full(), dev_full());
    assert_ne!(out.status.code(), Some(101));
    let out = pitcrew(&["no-such-command"], Stdio::null(), closed_pipe());
    assert_eq!(out.status.code(), Some(2));
    let out = pitcrew(
        &["-v", "--root", root, "detach", "03:00.0", "--dry-run"],
        dev_full(),
        closed_pipe(),
    );
    assert_eq!(out.status.code(), Some(1));
}
