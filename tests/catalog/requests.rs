//! The files under /run/pitcrew the hook leaves for the unit, refused when anyone but pitcrew
//! could have put them there, or when they are not what pitcrew writes.

use super::Catalog;
use pitcrew::Config;
use pitcrew_sim::TestHost;
use std::os::unix::fs::{symlink, PermissionsExt};

const REQUEST: &str = "/run/pitcrew/vm/win11.json";

/// A host whose hook recorded the request for win11, as a VM start leaves it.
fn recorded() -> TestHost {
    let t = TestHost::new();
    t.config("auto = true\n");
    t.pci("0000:01:00.0", "0x030000");
    assert_eq!(t.prepare_win11().code, 0);
    t
}

fn refusal(t: &TestHost) -> String {
    pitcrew::devices_for_vm(&t.host, &Config::default(), "win11")
        .unwrap_err()
        .to_string()
}

fn replace(t: &TestHost, bytes: &[u8]) {
    std::fs::remove_file(t.path(REQUEST)).unwrap();
    std::fs::write(t.path(REQUEST), bytes).unwrap();
    std::fs::set_permissions(t.path(REQUEST), std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn request_refusals() {
    let mut c = Catalog::default();

    let t = TestHost::new();
    t.config("");
    c.line(
        "request: none, and no devices in the config",
        t.dir.path(),
        &refusal(&t),
    );

    let t = recorded();
    replace(&t, &vec![b' '; 64 * 1024 + 1]);
    c.line("request: larger than 64 KiB", t.dir.path(), &refusal(&t));

    let t = recorded();
    replace(&t, b"{\"vm\": \"win11\", \"devices\": [\"zz\"]}");
    c.line("request: not a request", t.dir.path(), &refusal(&t));

    let t = recorded();
    replace(&t, b"{\"vm\": \"other\", \"devices\": []}");
    c.line("request: another VM's", t.dir.path(), &refusal(&t));

    let t = recorded();
    std::fs::set_permissions(t.path(REQUEST), std::fs::Permissions::from_mode(0o666)).unwrap();
    c.line("request: writable by others", t.dir.path(), &refusal(&t));

    let t = recorded();
    std::fs::remove_file(t.path(REQUEST)).unwrap();
    t.file(
        "/tmp/forged.json",
        "{\"vm\": \"win11\", \"devices\": []}",
        0o644,
    );
    symlink(t.path("/tmp/forged.json"), t.path(REQUEST)).unwrap();
    c.line("request: a link into /tmp", t.dir.path(), &refusal(&t));

    let t = recorded();
    std::fs::remove_file(t.path(REQUEST)).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        t.path(REQUEST),
        rustix::fs::Mode::from(0o600),
    )
    .unwrap();
    c.line("request: a FIFO", t.dir.path(), &refusal(&t));

    let t = recorded();
    std::fs::remove_file(t.path(REQUEST)).unwrap();
    std::fs::create_dir(t.path(REQUEST)).unwrap();
    c.line("request: a directory", t.dir.path(), &refusal(&t));

    // The hook writes the request: its directories refused as the unit's reads would be.
    for (name, dir, mode) in [
        ("/run/pitcrew open to others", "/run/pitcrew", 0o777),
        (
            "/run/pitcrew/vm readable by others",
            "/run/pitcrew/vm",
            0o755,
        ),
    ] {
        let t = recorded();
        std::fs::set_permissions(t.path(dir), std::fs::Permissions::from_mode(mode)).unwrap();
        let reply = t.prepare_win11();
        c.hook_line(
            &format!("hook: {name}"),
            t.dir.path(),
            reply.message.as_deref().unwrap_or("(no line)"),
        );
    }
    let t = TestHost::new();
    t.config("auto = true\n");
    t.pci("0000:01:00.0", "0x030000");
    std::fs::create_dir_all(t.path("/tmp/elsewhere")).unwrap();
    std::fs::create_dir_all(t.path("/run")).unwrap();
    symlink(t.path("/tmp/elsewhere"), t.path("/run/pitcrew")).unwrap();
    let reply = t.prepare_win11();
    c.hook_line(
        "hook: /run/pitcrew a link",
        t.dir.path(),
        reply.message.as_deref().unwrap_or("(no line)"),
    );
    insta::assert_snapshot!("requests", c.render());
}
