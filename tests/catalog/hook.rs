//! The hook's one line, the only thing libvirt shows of pitcrew when a VM does not start.

use super::Catalog;
use pitcrew::{hook, HookArgs, Reply};
use pitcrew_sim::{domain_xml, FakeRunner, TestHost};
use std::os::unix::fs::PermissionsExt;

fn args(vm: &str, op: &str, subop: &str) -> HookArgs {
    HookArgs {
        vm: vm.into(),
        op: op.into(),
        subop: subop.into(),
        extra: Some("-".into()),
    }
}

fn host(runner: FakeRunner, config: &str) -> TestHost {
    let t = TestHost::with_runner(runner);
    t.config(config);
    t.pci("0000:01:00.0", "0x030000");
    t.pci("0000:01:00.1", "0x040300");
    t
}

fn say(c: &mut Catalog, name: &str, t: &TestHost, reply: Reply) {
    let line = reply.message.unwrap_or_else(|| "(no line)".into());
    c.hook_line(
        &format!("hook: {name} (exit {})", reply.code),
        t.dir.path(),
        &line,
    );
}

fn failing() -> FakeRunner {
    FakeRunner {
        fail: true,
        ..Default::default()
    }
}

#[test]
fn hook_lines() {
    let mut c = Catalog::default();
    let listed = "[vm.win11]\ndevices = [\"01:00.0\"]\n";

    let t = host(failing(), listed);
    let reply = hook(
        &t.host,
        &args("win11", "prepare", "begin"),
        &mut "".as_bytes(),
    );
    say(&mut c, "the unit failed, no reason left", &t, reply);

    let t = host(failing(), listed);
    let dir = t.path("/run/pitcrew/vm");
    *t.runner.on_start.lock().unwrap() = Some(Box::new(move || {
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("win11.failed");
        let reason = "step 3 of 6 (unbind 0000:01:00.1 from snd_hda_intel) failed: the kernel \
                      did not return within 5s";
        std::fs::write(&file, reason).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }));
    let reply = hook(
        &t.host,
        &args("win11", "prepare", "begin"),
        &mut "".as_bytes(),
    );
    say(&mut c, "the unit failed with its reason", &t, reply);

    let t = host(failing(), "[vm.\"gpu-vm\"]\ndevices = [\"01:00.0\"]\n");
    let reply = hook(
        &t.host,
        &args("gpu-vm", "prepare", "begin"),
        &mut "".as_bytes(),
    );
    say(&mut c, "the unit of an escaped name failed", &t, reply);

    let t = host(
        FakeRunner {
            time_out: true,
            ..Default::default()
        },
        listed,
    );
    let reply = hook(
        &t.host,
        &args("win11", "prepare", "begin"),
        &mut "".as_bytes(),
    );
    say(&mut c, "the unit hangs", &t, reply);

    let t = host(failing(), "[vm.win11]\ndevices = [\"01:00.0\"]\n");
    let reply = hook(
        &t.host,
        &args("win11", "release", "end"),
        &mut "".as_bytes(),
    );
    say(&mut c, "the stop cannot be queued", &t, reply);

    let t = host(failing(), "[vm.\"gpu-vm\"]\ndevices = [\"01:00.0\"]\n");
    let reply = hook(
        &t.host,
        &args("gpu-vm", "release", "end"),
        &mut "".as_bytes(),
    );
    say(
        &mut c,
        "the stop of an escaped name cannot be queued",
        &t,
        reply,
    );

    let t = host(FakeRunner::default(), "auto = true\n");
    let xml = domain_xml("games", &[(1, 0, 0)]);
    let reply = hook(
        &t.host,
        &args("games", "migrate", "begin"),
        &mut xml.as_bytes(),
    );
    say(&mut c, "migration of a managed VM", &t, reply);

    let huge = format!("<domain>{}</domain>", "<x/>".repeat(1_100_000));
    let bad_address = "<domain><devices><hostdev type='pci'><source><address bus='0xzz' \
                       slot='0' function='0'/></source></hostdev></devices></domain>";
    for (name, xml) in [
        ("XML cut short", "<domain><devices>"),
        ("XML not a domain", "<network/>"),
        ("XML over 4 MiB", huge.as_str()),
        ("XML with a bad address", bad_address),
    ] {
        let t = host(FakeRunner::default(), "auto = true\n");
        let reply = hook(
            &t.host,
            &args("vm", "prepare", "begin"),
            &mut xml.as_bytes(),
        );
        say(&mut c, name, &t, reply);
    }
    let xml = domain_xml("x", &[(1, 0, 0)]);
    for (name, vm) in [
        ("a VM name with a slash", "a/b"),
        ("a VM name with a newline", "x\ny"),
        ("a VM name too long", &"n".repeat(300)),
    ] {
        let t = host(FakeRunner::default(), "auto = true\n");
        let reply = hook(&t.host, &args(vm, "prepare", "begin"), &mut xml.as_bytes());
        say(&mut c, name, &t, reply);
    }

    let t = host(FakeRunner::default(), "[vm.win11]\nreattach = maybe\n");
    let reply = hook(
        &t.host,
        &args("win11", "prepare", "begin"),
        &mut "".as_bytes(),
    );
    say(&mut c, "a bad config", &t, reply);

    let t = host(FakeRunner::default(), "auto = true\n");
    std::fs::set_permissions(
        t.path("/etc/pitcrew/pitcrew.toml"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let reply = hook(
        &t.host,
        &args("win11", "prepare", "begin"),
        &mut "".as_bytes(),
    );
    say(&mut c, "a config others can write", &t, reply);

    let t = host(FakeRunner::default(), "[vm.win11]\n");
    let xml = domain_xml("win11", &[]);
    let reply = hook(
        &t.host,
        &args("win11", "prepare", "begin"),
        &mut xml.as_bytes(),
    );
    say(&mut c, "a listed VM passing no GPU", &t, reply);

    openrc_lines(&mut c);
    insta::assert_snapshot!("hook", c.render());
}

/// The same failures on a host whose services OpenRC runs, and on one with neither.
fn openrc_lines(c: &mut Catalog) {
    let listed = "[vm.\"gpu vm\"]\ndevices = [\"01:00.0\"]\n";
    let openrc = |runner: FakeRunner| {
        let t = TestHost::openrc(runner);
        t.config(listed);
        t
    };
    let t = openrc(failing());
    let dir = t.path("/run/pitcrew/vm");
    *t.runner.on_start.lock().unwrap() = Some(Box::new(move || {
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gpu\\x20vm.failed");
        std::fs::write(&file, "step 2 of 6 (stop lightdm) failed").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }));
    let reply = hook(
        &t.host,
        &args("gpu vm", "prepare", "begin"),
        &mut "".as_bytes(),
    );
    say(c, "OpenRC: the instance failed with its reason", &t, reply);

    let t = openrc(FakeRunner {
        time_out: true,
        ..Default::default()
    });
    let reply = hook(
        &t.host,
        &args("gpu vm", "prepare", "begin"),
        &mut "".as_bytes(),
    );
    say(c, "OpenRC: the instance hangs", &t, reply);

    let t = openrc(failing());
    let reply = hook(
        &t.host,
        &args("gpu vm", "release", "end"),
        &mut "".as_bytes(),
    );
    say(c, "OpenRC: the stop fails", &t, reply);

    let t = TestHost::bare(FakeRunner::default());
    t.config(listed);
    let reply = hook(
        &t.host,
        &args("gpu vm", "prepare", "begin"),
        &mut "".as_bytes(),
    );
    say(c, "neither systemd nor OpenRC", &t, reply);
}
