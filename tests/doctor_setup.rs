//! `pitcrew doctor` on what is set up around the GPUs (on the simulated hosts of doctor.rs): the
//! hook and the unit pitcrew installed, the libvirt daemon that must have seen the hook, the
//! config, the VMs, and the binary's exit codes and JSON.

use crate::doctor::{build, check, doctor, domain_xml, only, set_up, write, Machine, HEALTHY};
use pitcrew::{Level, VmName};
use std::path::Path;
use std::time::Duration;

#[test]
fn a_missing_or_dangling_hook_and_a_missing_unit_fail() {
    let sim = build(&HEALTHY);
    set_up(&sim);
    std::fs::remove_file(sim.root().join("usr/local/bin/pitcrew")).unwrap();
    let report = doctor(&sim);
    assert!(
        check(&report, "hook")
            .finding
            .contains("points at /usr/local/bin/pitcrew, which is not an executable file"),
        "{report}"
    );
    assert!(
        check(&report, "unit")
            .finding
            .contains("runs /usr/local/bin/pitcrew, which does not exist"),
        "{report}"
    );
    std::fs::remove_file(sim.root().join("etc/libvirt/hooks/qemu.d/pitcrew")).unwrap();
    std::fs::remove_file(sim.root().join("etc/systemd/system/pitcrew@.service")).unwrap();
    let report = doctor(&sim);
    assert_eq!(check(&report, "hook").level, Level::Fail);
    assert_eq!(check(&report, "unit").level, Level::Fail);
    assert!(
        check(&report, "unit").finding.contains("not installed"),
        "{report}"
    );
}

#[test]
fn a_daemon_started_before_the_hook_fails_until_it_is_reloaded() {
    let early = Machine {
        daemon: Some(("libvirtd.service", 5)),
        ..HEALTHY
    };
    let text = only(early.clone(), "libvirt libvirtd.service", Level::Fail, &[]);
    assert!(
        text.contains("started before the hook was installed")
            && text.contains("systemctl reload libvirtd.service"),
        "{text}"
    );

    let sim = build(&early);
    let reload = || {
        let out = sim
            .host()
            .effects()
            .run(
                "systemctl",
                &["reload", "libvirtd.service"],
                Duration::from_secs(5),
            )
            .unwrap();
        assert!(out.success, "{out:?}");
    };
    // A reload before the hook existed does not count.
    reload();
    set_up(&sim);
    let report = doctor(&sim);
    assert_eq!(
        check(&report, "libvirt libvirtd.service").level,
        Level::Fail,
        "{report}"
    );
    // Installing again keeps the link, so it stays as new as it was.
    let hook = "/etc/libvirt/hooks/qemu.d/pitcrew";
    let ctime = || {
        use std::os::unix::fs::MetadataExt;
        let meta =
            std::fs::symlink_metadata(sim.root().join(hook.trim_start_matches('/'))).unwrap();
        (meta.ctime(), meta.ctime_nsec())
    };
    let created = ctime();
    set_up(&sim);
    assert_eq!(ctime(), created);
    // doctor counts only a reload later than the link's coarse-clock time plus one tick.
    let after = std::time::UNIX_EPOCH
        + Duration::new(created.0 as u64, created.1 as u32)
        + Duration::from_millis(20);
    let waited = std::time::Instant::now();
    while std::time::SystemTime::now() < after {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "the clock stands still"
        );
        std::thread::yield_now();
    }
    reload();
    let report = doctor(&sim);
    let c = check(&report, "libvirt libvirtd.service");
    assert_eq!(c.level, Level::Ok, "{report}");
    assert!(c.finding.contains("reloaded since the hook was installed"));
}

#[test]
fn the_modular_daemon_is_checked_by_its_own_unit() {
    let modular = Machine {
        daemon: Some(("virtqemud.service", 5)),
        ..HEALTHY
    };
    let text = only(modular, "libvirt virtqemud.service", Level::Fail, &[]);
    assert!(
        text.contains("systemctl reload virtqemud.service"),
        "{text}"
    );
    let idle = only(
        Machine {
            daemon: None,
            ..HEALTHY
        },
        "libvirt",
        Level::Ok,
        &[],
    );
    assert!(idle.contains("finds the hook when it starts"), "{idle}");
}

#[test]
fn config_problems_show_on_the_config_line() {
    let sim = build(&HEALTHY);
    set_up(&sim);
    write(
        &sim,
        "/etc/pitcrew/pitcrew.toml",
        "[vm.\"win11\"]\nreattach = maybe\n",
    );
    let report = doctor(&sim);
    let c = check(&report, "config");
    assert_eq!(c.level, Level::Fail, "{report}");
    assert!(c.finding.contains("pitcrew.toml:2"), "{report}");

    write(&sim, "/etc/pitcrew/pitcrew.toml", "auto = false\n");
    let report = doctor(&sim);
    assert_eq!(check(&report, "config").level, Level::Warn, "{report}");
    std::fs::remove_file(sim.root().join("etc/pitcrew/pitcrew.toml")).unwrap();
    let report = doctor(&sim);
    assert!(
        check(&report, "config")
            .finding
            .contains("no VM is managed"),
        "{report}"
    );
}

#[test]
fn a_vm_must_be_defined_and_pass_its_gpu_through() {
    let sim = build(&HEALTHY);
    set_up(&sim);
    write(&sim, "/etc/libvirt/qemu/win11.xml", &domain_xml(&[], &[]));
    let report = doctor(&sim);
    let c = check(&report, "vm win11");
    assert_eq!(c.level, Level::Fail, "{report}");
    assert!(
        c.finding.contains("passes no GPU of this host through"),
        "{report}"
    );
    // With devices named in the config, the XML must pass exactly those.
    let config = sim.root().join("etc/pitcrew/pitcrew.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    let at = text.rfind("# devices = ").expect("install's VM table");
    text.replace_range(at..at + 2, "");
    std::fs::write(&config, text).unwrap();
    let report = doctor(&sim);
    assert!(
        check(&report, "vm win11")
            .finding
            .contains("does not pass 0000:01:00.0 through"),
        "{report}"
    );

    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "devices = [\"0000:01:00.0\"]",
            "devices = [\"0000:09:00.0\"]",
        ),
    )
    .unwrap();
    let report = doctor(&sim);
    assert!(
        check(&report, "vm win11")
            .finding
            .contains("lends it 0000:09:00.0, which this host does not have"),
        "{report}"
    );

    std::fs::remove_file(sim.root().join("etc/libvirt/qemu/win11.xml")).unwrap();
    let report = doctor(&sim);
    assert!(
        check(&report, "vm win11")
            .finding
            .contains("not defined: no /etc/libvirt/qemu/win11.xml"),
        "{report}"
    );
}

#[test]
fn vm_narrows_the_report_to_one_vm_and_refuses_an_unmanaged_one() {
    let sim = build(&HEALTHY);
    set_up(&sim);
    let win11 = VmName::parse("win11").unwrap();
    let report = pitcrew::doctor(&sim.host(), Some(&win11));
    assert_eq!(report.count(Level::Fail), 0, "{report}");
    let other = VmName::parse("my linux").unwrap();
    let report = pitcrew::doctor(&sim.host(), Some(&other));
    let c = check(&report, "vm my linux");
    assert_eq!(c.level, Level::Fail, "{report}");
    // The hint pastes into a shell as one command.
    assert!(
        c.fix
            .as_deref()
            .is_some_and(|fix| fix.contains("`sudo pitcrew install --vm 'my linux'`")),
        "{report}"
    );
    assert!(
        !report.checks.iter().any(|c| c.name.starts_with("gpu ")),
        "{report}"
    );
}

#[test]
fn the_binary_exits_0_when_nothing_fails_1_otherwise_and_prints_json() {
    let sim = build(&HEALTHY);
    let run = |root: &Path, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pitcrew"))
            .arg("--root")
            .arg(root)
            .arg("doctor")
            .args(args)
            .output()
            .unwrap()
    };
    let before = run(sim.root(), &[]);
    assert_eq!(before.status.code(), Some(1), "nothing installed yet");
    set_up(&sim);
    let after = run(sim.root(), &[]);
    assert_eq!(
        after.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&after.stdout)
    );
    let json = run(sim.root(), &["--json", "--vm", "win11"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(value["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "hook" && c["level"] == "ok"));
    let bad = run(sim.root(), &["--vm", "../etc"]);
    assert_eq!(bad.status.code(), Some(2), "a bad VM name is bad input");
}
