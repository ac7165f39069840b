//! Hosts whose services OpenRC runs: the display manager stopped and started through
//! openrc-run, services from every OpenRC cgroup layout, the hook's instances and their
//! deadline, the init script's stop refused under a running VM, the installer's layout, and the
//! refusal on a host with neither systemd nor OpenRC.

use crate::engine::{detach, request};
use pitcrew::{handover, Direction, HookArgs, InstallOptions, Level, Status};
use pitcrew_sim::{fixtures, service_cgroup, FakeRunner, ProcessTemplate, SimInit, TestHost};
use std::time::Duration;

const LAYOUTS: [SimInit; 3] = [SimInit::OpenRc, SimInit::OpenRcBare, SimInit::OpenRcV1];

#[test]
fn the_plan_stops_and_starts_lightdm_through_openrc_and_never_names_systemctl() {
    for init in LAYOUTS {
        let sim = fixtures::radeon_on_openrc(init);
        // Started from the desktop, so in LightDM's cgroup, and left there by its stop.
        let job = sim.spawn(
            &service_cgroup(init, "lightdm"),
            ProcessTemplate::new("blender").holds("/dev/dri/card1"),
        );
        let plan = detach(&sim, &["03:00.0"]).unwrap().plan.to_string();
        assert!(
            plan.contains("stop lightdm (the desktop holds the card)"),
            "{plan}"
        );
        assert!(plan.contains("start lightdm"), "{plan}");
        assert!(
            plan.contains(&format!("end process {job} (blender)")),
            "{plan}"
        );
        assert!(!sim.process_alive(job));
        let commands = sim.commands();
        assert!(
            commands.contains(
                &["openrc-run", "/etc/init.d/lightdm", "stop"]
                    .map(String::from)
                    .to_vec()
            ),
            "{commands:?}"
        );
        assert!(
            commands.contains(
                &["openrc-run", "/etc/init.d/lightdm", "start"]
                    .map(String::from)
                    .to_vec()
            ),
            "{commands:?}"
        );
        assert!(
            !commands.iter().flatten().any(|a| a.contains("systemctl")),
            "{commands:?}"
        );
        assert!(!plan.contains("systemctl"), "{plan}");
        assert_eq!(sim.driver("0000:03:00.0").as_deref(), Some("vfio-pci"));
        assert!(sim.unit_active("lightdm"), "{init:?}");
    }
}

#[test]
fn holders_are_named_by_their_openrc_service_in_every_cgroup_layout() {
    for init in LAYOUTS {
        let sim = fixtures::radeon_on_openrc(init);
        let snapshot = pitcrew::Snapshot::read(&sim.host()).unwrap();
        let xorg = snapshot.holders.iter().find(|h| h.pid == 1200).unwrap();
        assert_eq!(xorg.unit.as_deref(), Some("lightdm"), "{init:?}");
        assert!(xorg.in_system_unit("lightdm"), "{init:?}");
        assert_eq!(snapshot.display_manager.as_deref(), Some("lightdm"));
        assert!(snapshot.running_units.contains("lightdm"), "{init:?}");
        let status = Status::of(&snapshot).to_string();
        assert!(status.contains("Service manager: OpenRC"), "{status}");
        assert!(
            status.contains("held by pid 1200 (Xorg) in lightdm"),
            "{status}"
        );
    }
}

#[test]
fn the_init_scripts_stop_is_refused_while_the_vm_holds_its_vfio_group() {
    let sim = fixtures::radeon_on_openrc(SimInit::OpenRc);
    detach(&sim, &["03:00.0"]).unwrap();
    // What `pitcrew reattach --service=pitcrew.win11` asks: the VM's lend, nothing else.
    let qemu = sim.spawn(
        &service_cgroup(SimInit::OpenRc, "libvirtd"),
        ProcessTemplate::new("qemu-system-x86").holds("/dev/vfio/14"),
    );
    let mut stop = request(Direction::Reattach, &[]);
    stop.lent_only = true;
    let err = pitcrew::Error::from(handover(&sim.host(), &stop).unwrap_err());
    assert_eq!(err.exit_code(), 1, "{err}");
    assert!(err.to_string().contains(&format!("{qemu}")), "{err}");
    assert_eq!(sim.driver("0000:03:00.0").as_deref(), Some("vfio-pci"));
    // Once the VM is gone the same stop gives the card back.
    sim.exit_process(qemu);
    handover(&sim.host(), &stop).unwrap();
    assert_eq!(sim.driver("0000:03:00.0").as_deref(), Some("amdgpu"));
    // The script's stop is that reattach, and its status is the service's.
    let script = include_str!("../dist/openrc/pitcrew");
    assert!(script.contains("\"${pitcrew}\" reattach --service=\"${RC_SVCNAME}\"\n\teend $?"));
    assert!(script.starts_with("#!/sbin/openrc-run\n"));
    assert!(!script.lines().any(|l| l.trim_start().starts_with("need")));
}

fn hook(t: &TestHost, vm: &str, op: &str, subop: &str) -> pitcrew::Reply {
    let args = HookArgs {
        vm: vm.into(),
        op: op.into(),
        subop: subop.into(),
        extra: None,
    };
    pitcrew::hook(&t.host, &args, &mut std::io::empty())
}

#[test]
fn the_hook_links_an_escaped_instance_and_runs_it_through_openrc() {
    let t = TestHost::openrc(FakeRunner::default());
    t.config("[vm.\"my vm.1\"]\ndevices = [\"0000:01:00.0\"]\n");
    let reply = hook(&t, "my vm.1", "prepare", "begin");
    assert_eq!(reply.code, 0, "{reply:?}");
    let service = "pitcrew.my_20vm_2e1";
    let link = t.path(&format!("/etc/init.d/{service}"));
    assert_eq!(std::fs::read_link(link).unwrap(), Path::new("pitcrew"));
    let reply = hook(&t, "my vm.1", "release", "end");
    assert_eq!(reply.code, 0, "{reply:?}");
    assert_eq!(
        t.runner.calls(),
        [
            format!("openrc-run /etc/init.d/{service} start"),
            format!("openrc-run /etc/init.d/{service} stop"),
        ]
    );
    assert!(t
        .runner
        .calls
        .lock()
        .unwrap()
        .iter()
        .all(|c| c.1 == Duration::from_secs(120)));
}

#[test]
fn past_its_deadline_the_hook_ends_the_instance_cgroup_and_resets_its_state() {
    let t = TestHost::openrc(FakeRunner {
        time_out: true,
        ..FakeRunner::default()
    });
    t.config("[vm.win11]\ndevices = [\"0000:01:00.0\"]\n");
    t.file(
        "/sys/fs/cgroup/openrc.pitcrew.win11/cgroup.procs",
        "4100\n4101\n",
        0o644,
    );
    let reply = hook(&t, "win11", "prepare", "begin");
    assert_eq!(reply.code, 1);
    let message = reply.message.unwrap();
    assert!(
        message.starts_with("pitcrew: pitcrew.win11 did not finish within 135s and was cancelled; VM 'win11' is not started"),
        "{message}"
    );
    let signals = t.runner.signals.lock().unwrap().clone();
    assert!(
        signals.contains(&(4100, pitcrew::Signal::Term)),
        "{signals:?}"
    );
    assert!(
        signals.contains(&(4101, pitcrew::Signal::Kill)),
        "{signals:?}"
    );
    assert_eq!(
        t.runner.calls().last().map(String::as_str),
        Some("openrc-run /etc/init.d/pitcrew.win11 zap")
    );
}

#[test]
fn install_on_a_staged_openrc_root_writes_the_init_script_and_no_unit() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("run/openrc")).unwrap();
    std::fs::write(root.path().join("run/openrc/softlevel"), "default\n").unwrap();
    let binary = root.path().join("pitcrew-build");
    std::fs::write(&binary, "#!/bin/true\n").unwrap();
    let host = pitcrew::Host::real(root.path());
    let opts = InstallOptions {
        vms: &["win11".to_string()],
        binary: &binary,
        dry_run: false,
        reload: true,
    };
    let mut out = Vec::new();
    pitcrew::install(&host, &opts, &mut out).unwrap();
    let script = std::fs::read_to_string(root.path().join("etc/init.d/pitcrew")).unwrap();
    assert!(
        script.contains("\npitcrew=/usr/local/bin/pitcrew\n"),
        "{script}"
    );
    assert!(!root.path().join("etc/systemd").exists());
    let said = String::from_utf8(out).unwrap();
    assert!(!said.contains("systemctl"), "{said}");
    // An instance the hook made and OpenRC has stopped goes with uninstall.
    std::os::unix::fs::symlink("pitcrew", root.path().join("etc/init.d/pitcrew.win11")).unwrap();
    let mut out = Vec::new();
    let opts = pitcrew::UninstallOptions {
        purge: true,
        dry_run: false,
        reload: true,
    };
    pitcrew::uninstall(&host, &opts, &mut out).unwrap();
    assert!(!root.path().join("etc/init.d/pitcrew.win11").exists());
    assert!(!root.path().join("etc/init.d/pitcrew").exists());
}

#[test]
fn a_host_with_neither_systemd_nor_openrc_is_refused_naming_both() {
    let t = TestHost::bare(FakeRunner::default());
    t.config("[vm.win11]\ndevices = [\"0000:01:00.0\"]\n");
    let reply = hook(&t, "win11", "prepare", "begin");
    assert_eq!(reply.code, 1);
    let message = reply.message.unwrap();
    assert!(
        message.contains("no supported service manager"),
        "{message}"
    );
    assert!(
        message.contains("systemd (/run/systemd/system is a directory) or OpenRC"),
        "{message}"
    );
    assert!(t.runner.calls().is_empty());
    let sim = fixtures::radeon_on_openrc(SimInit::Neither);
    let snapshot = pitcrew::Snapshot::read(&sim.host()).unwrap();
    assert_eq!(snapshot.init, None);
    assert!(Status::of(&snapshot)
        .to_string()
        .contains("Service manager: none supported"));
}

#[test]
fn a_release_the_config_keeps_the_gpu_through_needs_no_service_manager() {
    let t = TestHost::bare(FakeRunner::default());
    t.config("[vm.keep]\ndevices = [\"0000:01:00.0\"]\nreattach = false\n");
    let reply = hook(&t, "keep", "release", "end");
    assert_eq!((reply.code, reply.message), (0, None));
    // A failed start is rolled back whatever the config says: that needs one.
    let args = HookArgs {
        vm: "keep".into(),
        op: "release".into(),
        subop: "end".into(),
        extra: Some("failed".into()),
    };
    let reply = pitcrew::hook(&t.host, &args, &mut std::io::empty());
    assert_eq!(reply.code, 1, "{reply:?}");
    assert!(t.runner.calls().is_empty());
}

use std::path::Path;

#[test]
fn doctor_checks_the_init_script_the_runlevels_and_elogind() {
    let sim = fixtures::radeon_on_openrc(SimInit::OpenRc);
    crate::doctor::set_up(&sim);
    let report = crate::doctor::doctor(&sim);
    let check = |name| crate::doctor::check(&report, name).clone();
    assert_eq!(check("init").finding, "OpenRC runs the services");
    assert_eq!(check("service").level, Level::Ok, "{report}");
    assert!(
        check("service")
            .finding
            .contains("/etc/init.d/pitcrew runs /usr/local/bin/pitcrew"),
        "{report}"
    );
    assert_eq!(check("runlevels").level, Level::Ok, "{report}");
    assert_eq!(check("elogind").level, Level::Ok, "{report}");
    assert!(!report.checks.iter().any(|c| c.name == "unit"), "{report}");
    // Started before the hook, and OpenRC keeps no record of the reload install sent.
    let daemon = check("libvirt libvirtd");
    assert_eq!(daemon.level, Level::Warn, "{report}");
    assert!(
        daemon
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("kill -HUP $(cat /run/libvirtd.pid)")),
        "{report}"
    );

    let runlevel = sim.root().join("etc/runlevels/default");
    std::fs::create_dir_all(&runlevel).unwrap();
    std::os::unix::fs::symlink("/etc/init.d/pitcrew.win11", runlevel.join("pitcrew.win11"))
        .unwrap();
    std::fs::remove_dir(sim.root().join("run/systemd/seats")).unwrap();
    std::fs::remove_file(sim.root().join("etc/init.d/pitcrew")).unwrap();
    let report = crate::doctor::doctor(&sim);
    let check = |name| crate::doctor::check(&report, name).clone();
    assert_eq!(check("service").level, Level::Fail, "{report}");
    assert_eq!(check("runlevels").level, Level::Fail, "{report}");
    assert!(
        check("runlevels")
            .finding
            .starts_with("pitcrew.win11 in runlevel default"),
        "{report}"
    );
    assert_eq!(check("elogind").level, Level::Warn, "{report}");
}

#[test]
fn a_vm_name_too_long_for_an_openrc_service_is_refused_before_anything_runs() {
    let t = TestHost::openrc(FakeRunner::default());
    let name = "_".repeat(100);
    t.config(&format!("[vm.\"{name}\"]\ndevices = [\"0000:01:00.0\"]\n"));
    let reply = hook(&t, &name, "prepare", "begin");
    assert_eq!(reply.code, 1);
    let message = reply.message.unwrap();
    assert!(
        message.contains("escapes to an OpenRC service name of 308 bytes"),
        "{message}"
    );
    assert!(t.runner.calls().is_empty());
}
