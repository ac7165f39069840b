//! The hook's decisions, in process, with a recording command runner instead of systemctl.

use pitcrew::{hook, HookArgs, Reply};
use pitcrew_sim::{domain_xml, FakeRunner, TestHost, HOOK_OPS};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn args(domain: &str, op: &str, subop: &str) -> HookArgs {
    HookArgs {
        vm: domain.into(),
        op: op.into(),
        subop: subop.into(),
        extra: Some("-".into()),
    }
}

/// Stdin that fails the test when read: proves a decision needed no XML.
struct Untouchable;
impl Read for Untouchable {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        panic!("the hook read stdin although it did not need the XML")
    }
}

fn run(t: &TestHost, a: &HookArgs, xml: Option<&str>) -> Reply {
    match xml {
        Some(xml) => hook(&t.host, a, &mut xml.as_bytes()),
        None => hook(&t.host, a, &mut Untouchable),
    }
}

/// A host whose `systemctl start` of the unit fails, with this config.
fn failing_unit_host(config: &str) -> TestHost {
    let t = TestHost::with_runner(FakeRunner {
        fail: true,
        ..Default::default()
    });
    t.config(config);
    t
}

fn gpu_host(config: &str) -> TestHost {
    let t = TestHost::new();
    t.config(config);
    t.pci("0000:01:00.0", "0x030000");
    t.pci("0000:01:00.1", "0x040300");
    t.pci("0000:05:00.0", "0x020000");
    t
}

#[test]
fn op_matrix_for_a_listed_vm_with_devices() {
    let expected = [
        (
            "prepare",
            Some("systemctl start -- pitcrew@win11.service"),
            0,
        ),
        ("start", None, 0),
        ("started", None, 0),
        ("stopped", None, 0),
        (
            "release",
            Some("systemctl stop --no-block -- pitcrew@win11.service"),
            0,
        ),
        ("migrate", None, 1),
        ("restore", None, 0),
        ("reconnect", None, 0),
        ("attach", None, 0),
    ];
    for ((op, subop), (op2, call, code)) in HOOK_OPS.iter().zip(expected) {
        assert_eq!(*op, op2);
        let t = gpu_host("[vm.win11]\ndevices = [\"01:00.0\"]\n");
        // The devices come from the config, so no op needs the XML.
        let outcome = run(&t, &args("win11", op, subop), None);
        assert_eq!(outcome.code, code, "{op}: {outcome:?}");
        assert_eq!(
            t.runner.calls(),
            call.into_iter().map(String::from).collect::<Vec<_>>(),
            "{op}"
        );
        assert!(!t.path("/run/pitcrew").exists(), "{op}: no request needed");
    }
}

#[test]
fn unmanaged_vms_and_other_ops_exit_without_reading_anything() {
    let t = gpu_host("[vm.win11]\n");
    for (op, subop) in HOOK_OPS {
        let outcome = run(&t, &args("other", op, subop), None);
        assert_eq!(
            outcome,
            Reply {
                code: 0,
                message: None
            },
            "{op}"
        );
    }
    // No config at all: nothing is managed.
    let bare = TestHost::new();
    assert_eq!(run(&bare, &args("win11", "prepare", "begin"), None).code, 0);
    assert!(t.runner.calls().is_empty() && bare.runner.calls().is_empty());
}

#[test]
fn auto_manages_vms_whose_xml_passes_a_gpu_through() {
    let t = gpu_host("auto = true\n");
    let with_gpu = domain_xml("games", &[(1, 0, 0), (1, 0, 1)]);
    let outcome = run(&t, &args("games", "prepare", "begin"), Some(&with_gpu));
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert_eq!(
        t.runner.calls(),
        ["systemctl start -- pitcrew@games.service"]
    );
    let request = std::fs::read_to_string(t.path("/run/pitcrew/vm/games.json")).unwrap();
    assert_eq!(
        request, r#"{"vm":"games","devices":["0000:01:00.0"]}"#,
        "only the display controller"
    );
    // The unit's `detach --vm games` finds the same devices.
    let config = pitcrew::Config::load(&t.host).unwrap().unwrap();
    let devices = pitcrew::devices_for_vm(&t.host, &config, "games").unwrap();
    assert_eq!(
        devices.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        ["0000:01:00.0"]
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(t.path(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        (
            mode("/run/pitcrew"),
            mode("/run/pitcrew/vm"),
            mode("/run/pitcrew/vm/games.json")
        ),
        (0o700, 0o700, 0o600)
    );

    // A NIC and a USB device only: not managed, nothing run.
    let t = gpu_host("auto = true\n");
    let no_gpu = domain_xml("web", &[(5, 0, 0)]);
    assert_eq!(
        run(&t, &args("web", "prepare", "begin"), Some(&no_gpu)).code,
        0
    );
    assert_eq!(
        run(&t, &args("web", "release", "end"), Some(&no_gpu)).code,
        0
    );
    assert!(t.runner.calls().is_empty());
}

#[test]
fn a_listed_vm_without_devices_uses_its_xml() {
    let t = gpu_host("[vm.\"my vm\"]\n");
    let outcome = run(
        &t,
        &args("my vm", "prepare", "begin"),
        Some(&domain_xml("my vm", &[(1, 0, 0)])),
    );
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert_eq!(
        t.runner.calls(),
        ["systemctl start -- pitcrew@my\\x20vm.service"]
    );
    assert!(t.path("/run/pitcrew/vm/my\\x20vm.json").exists());
    // ...and with no GPU in the XML there is nothing to lend: a note, no failure.
    let t = gpu_host("[vm.plain]\n");
    let outcome = run(
        &t,
        &args("plain", "prepare", "begin"),
        Some(&domain_xml("plain", &[])),
    );
    assert_eq!(outcome.code, 0);
    assert!(outcome.message.unwrap().contains("passes no GPU through"));
    assert!(t.runner.calls().is_empty());
}

#[test]
fn unit_failure_fails_the_start_with_one_line() {
    let t = failing_unit_host("[vm.win11]\ndevices = [\"01:00.0\"]\nunit_timeout = 40\n");
    let outcome = run(&t, &args("win11", "prepare", "begin"), None);
    assert_eq!(outcome.code, 1);
    let message = outcome.message.unwrap();
    assert!(!message.contains('\n'));
    assert!(
        message.contains("pitcrew@win11.service failed")
            && message.contains("journalctl -u pitcrew@win11.service"),
        "{message}"
    );
    // Bounded by the VM's unit_timeout plus the hook's margin.
    assert_eq!(
        t.runner.calls.lock().unwrap()[0].1,
        Duration::from_secs(40) + pitcrew::HOOK_MARGIN
    );
}

/// A failing unit as the detach leaves it: its one-line reason in /run/pitcrew/vm, root-only.
fn failing_unit_says(t: &TestHost, reason: String) {
    let dir = t.path("/run/pitcrew/vm");
    *t.runner.on_start.lock().unwrap() = Some(Box::new(move || {
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("win11.failed");
        std::fs::write(&file, &reason).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }));
}

#[test]
fn the_units_reason_reaches_the_error_of_the_start() {
    let t = failing_unit_host("[vm.win11]\ndevices = [\"01:00.0\"]\n");
    let reason = "step 3 of 6 (unbind 0000:01:00.1 from snd_hda_intel) failed: the kernel did not return within 5s";
    failing_unit_says(&t, reason.to_string());
    let message = run(&t, &args("win11", "prepare", "begin"), None)
        .message
        .unwrap();
    assert_eq!(
        message,
        format!(
            "pitcrew: pitcrew@win11.service failed: the GPU stays with the host and VM 'win11' is \
             not started (see `journalctl -u pitcrew@win11.service`): {reason}"
        )
    );
    // The next start that fails before pitcrew runs shows no reason of this one.
    *t.runner.on_start.lock().unwrap() = None;
    let message = run(&t, &args("win11", "prepare", "begin"), None)
        .message
        .unwrap();
    assert!(!message.contains(reason), "{message}");
    assert!(
        message.ends_with("; see `journalctl -u pitcrew@win11.service`"),
        "{message}"
    );
}

#[test]
fn a_long_reason_keeps_the_journal_hint_and_one_line() {
    let t = failing_unit_host("[vm.win11]\ndevices = [\"01:00.0\"]\n");
    // As long as the unit ever leaves (it cuts at 4096 bytes), far more than the hook may say.
    failing_unit_says(&t, format!("first line\nsecond line {}", "x".repeat(4000)));
    let message = run(&t, &args("win11", "prepare", "begin"), None)
        .message
        .unwrap();
    assert!(!message.contains('\n'), "{message}");
    assert!(message.len() <= pitcrew::MAX_MESSAGE, "{}", message.len());
    assert!(
        message.contains("(see `journalctl -u pitcrew@win11.service`): first line\\nsecond line"),
        "{message}"
    );
}

#[test]
fn an_escaped_unit_name_is_quoted_in_the_journalctl_hint() {
    let t = failing_unit_host("[vm.\"gpu-vm\"]\ndevices = [\"01:00.0\"]\n");
    let outcome = run(&t, &args("gpu-vm", "prepare", "begin"), None);
    assert_eq!(outcome.code, 1);
    let message = outcome.message.unwrap();
    // Unquoted, a shell would turn pitcrew@gpu\x2dvm.service into pitcrew@gpux2dvm.service.
    assert!(
        message.contains(r"see `journalctl -u 'pitcrew@gpu\x2dvm.service'`"),
        "{message}"
    );
}

#[test]
fn a_unit_that_hangs_is_cancelled() {
    let t = TestHost::with_runner(FakeRunner {
        time_out: true,
        ..Default::default()
    });
    t.config("[vm.win11]\ndevices = [\"01:00.0\"]\n");
    let outcome = run(&t, &args("win11", "prepare", "begin"), None);
    assert_eq!(outcome.code, 1);
    assert!(outcome
        .message
        .unwrap()
        .contains("did not finish within 135s"));
    assert_eq!(
        t.runner.calls(),
        [
            "systemctl start -- pitcrew@win11.service",
            "systemctl stop --no-block -- pitcrew@win11.service"
        ]
    );
}

#[test]
fn release_follows_reattach_but_a_failed_start_always_rolls_back() {
    let t = gpu_host("[vm.keep]\ndevices = [\"01:00.0\"]\nreattach = false\n");
    assert_eq!(run(&t, &args("keep", "release", "end"), None).code, 0);
    assert!(
        t.runner.calls().is_empty(),
        "reattach = false leaves the card on vfio-pci"
    );
    let mut failed = args("keep", "release", "end");
    failed.extra = Some("failed".into());
    assert_eq!(run(&t, &failed, None).code, 0);
    assert_eq!(
        t.runner.calls(),
        ["systemctl stop --no-block -- pitcrew@keep.service"]
    );
}

#[test]
fn migrating_a_managed_vm_is_refused() {
    let t = gpu_host("auto = true\n");
    let outcome = run(
        &t,
        &args("games", "migrate", "begin"),
        Some(&domain_xml("games", &[(1, 0, 0)])),
    );
    assert_eq!(outcome.code, 1);
    assert!(outcome.message.unwrap().contains("migration is refused"));
    assert!(t.runner.calls().is_empty());
}

#[test]
fn malformed_and_huge_xml_fail_the_start_when_needed() {
    let huge = format!("<domain>{}</domain>", "<x/>".repeat(1_100_000));
    let bomb = "<?xml version='1.0'?><!DOCTYPE d [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;'>]><domain>&b;</domain>";
    let bad_address = "<domain><devices><hostdev type='pci'><source><address bus='0xzz' slot='0' function='0'/></source></hostdev></devices></domain>";
    for (xml, reason) in [
        ("<domain><devices>", "not valid XML"),
        ("", "not valid XML"),
        ("<network/>", "no <domain> root"),
        (huge.as_str(), "larger than 4 MiB"),
        (bomb, "not valid XML"),
        (bad_address, "not a PCI address"),
    ] {
        let t = gpu_host("auto = true\n");
        let outcome = run(&t, &args("vm", "prepare", "begin"), Some(xml));
        assert_eq!(outcome.code, 1, "{reason}");
        let message = outcome.message.unwrap();
        assert!(message.contains(reason), "{message}");
        assert!(t.runner.calls().is_empty());
    }
}

#[test]
fn hostile_domain_names_never_reach_a_path_or_unit() {
    let xml = domain_xml("x", &[(1, 0, 0)]);
    for name in ["../../etc/passwd", "a/b", "x\ny", "nul\0", &"n".repeat(300)] {
        let t = gpu_host("auto = true\n");
        let outcome = run(&t, &args(name, "prepare", "begin"), Some(&xml));
        assert_eq!(outcome.code, 1, "{name:?}");
        assert!(t.runner.calls().is_empty(), "{name:?}");
        assert!(!t.path("/run/pitcrew").exists());
        assert!(!outcome.message.unwrap().contains('\n'));
    }
    // Unusual but legal names are escaped, never interpreted.
    for (name, unit) in [
        ("-rf", "pitcrew@\\x2drf.service"),
        ("..", "pitcrew@\\x2e..service"),
        ("$(reboot)", "pitcrew@\\x24\\x28reboot\\x29.service"),
    ] {
        let t = gpu_host("auto = true\n");
        assert_eq!(run(&t, &args(name, "prepare", "begin"), Some(&xml)).code, 0);
        assert_eq!(t.runner.calls(), [format!("systemctl start -- {unit}")]);
    }
    // Without auto an invalid name cannot be managed: exit 0 without reading the XML.
    let t = gpu_host("[vm.win11]\n");
    assert_eq!(run(&t, &args("a/b", "prepare", "begin"), None).code, 0);
}

#[test]
fn a_bad_config_fails_the_start_with_its_line() {
    let t = gpu_host("[vm.win11]\nreattach = maybe\n");
    let outcome = run(&t, &args("win11", "prepare", "begin"), None);
    assert_eq!(outcome.code, 2, "bad input: nothing was changed");
    assert!(outcome.message.unwrap().contains("pitcrew.toml:2:"));
}

#[test]
fn argv0_detection() {
    use std::ffi::OsStr;
    for hook in [
        "/etc/libvirt/hooks/qemu",
        "/etc/libvirt/hooks/qemu.d/pitcrew",
        "/etc/libvirt/hooks/qemu.d/50-gpu",
    ] {
        assert!(pitcrew::invoked_as_hook(OsStr::new(hook)), "{hook}");
    }
    for cli in ["pitcrew", "/usr/bin/pitcrew", "./target/debug/pitcrew"] {
        assert!(!pitcrew::invoked_as_hook(OsStr::new(cli)), "{cli}");
    }
}
