//! The config refused: bad TOML and values, and every way the file or a directory on the way
//! to it can be open to others, directly or behind a link.

use super::Catalog;
use pitcrew::Config;
use pitcrew_sim::TestHost;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

const CONFIG: &str = "/etc/pitcrew/pitcrew.toml";

fn mode(t: &TestHost, absolute: &str, mode: u32) {
    std::fs::set_permissions(t.path(absolute), std::fs::Permissions::from_mode(mode)).unwrap();
}

fn refusal(t: &TestHost) -> String {
    Config::load_required(&t.host).unwrap_err().to_string()
}

/// The config linked to `target` (a host path under the root), itself holding a valid config.
fn linked_to(t: &TestHost, target: &str) {
    t.file(target, "auto = true\n", 0o644);
    std::fs::create_dir_all(t.path("/etc/pitcrew")).unwrap();
    symlink(t.path(target), t.path(CONFIG)).unwrap();
}

fn values(c: &mut Catalog) {
    let root = Path::new("/");
    for (name, text) in [
        ("unknown key", "auto = true\n[defaults]\nreatach = true\n"),
        ("bad address", "[vm.win11]\ndevices = [\"zz:00.0\"]\n"),
        (
            "unknown variant",
            "[defaults]\ndisplay_manager = \"sometimes\"\n",
        ),
        ("out of range", "[defaults]\nterm_timeout = 0\n"),
        (
            "unit timeout above the ceiling",
            "[vm.w]\nunit_timeout = 1000\n",
        ),
        ("wrong type", "[vm.w]\nreattach = \"yes\"\n"),
        ("no value", "auto = \n"),
        ("VM name with a slash", "[vm.\"a/b\"]\n"),
        ("VM name with a control character", "[vm.\"bad\\u0007\"]\n"),
        ("unknown table", "[frobnicate]\n"),
    ] {
        let message = Config::parse(text, Path::new(CONFIG))
            .unwrap_err()
            .to_string();
        c.line(&format!("config: {name}"), root, &message);
    }
}

#[test]
fn config_refusals() {
    let mut c = Catalog::default();
    values(&mut c);

    let t = TestHost::new();
    c.line("config: missing", t.dir.path(), &refusal(&t));

    let t = TestHost::new();
    t.file(CONFIG, "auto = true\n\u{ff}\n", 0o644);
    std::fs::write(t.path(CONFIG), b"auto = true\n\xff\n").unwrap();
    c.line("config: not UTF-8", t.dir.path(), &refusal(&t));

    for (name, at, m) in [
        ("the file writable by others", CONFIG, 0o666),
        ("the file writable by its group", CONFIG, 0o664),
        ("/etc/pitcrew writable by others", "/etc/pitcrew", 0o777),
        ("/etc/pitcrew sticky like /tmp", "/etc/pitcrew", 0o1777),
        ("/etc writable by others", "/etc", 0o777),
        ("the root directory sticky like /tmp", "/", 0o1777),
    ] {
        let t = TestHost::new();
        t.config("auto = true\n");
        mode(&t, at, m);
        c.line(&format!("config: {name}"), t.dir.path(), &refusal(&t));
    }

    for (name, target, dir_mode) in [
        (
            "a link into a sticky directory (/tmp)",
            "/tmp/pitcrew.toml",
            0o1777,
        ),
        (
            "a link into a directory others can write",
            "/srv/shared/pitcrew.toml",
            0o777,
        ),
        (
            "a link into a directory its group can write",
            "/home/ann/pitcrew.toml",
            0o775,
        ),
    ] {
        let t = TestHost::new();
        linked_to(&t, target);
        let dir = Path::new(target).parent().unwrap().to_str().unwrap();
        mode(&t, dir, dir_mode);
        c.line(&format!("config: {name}"), t.dir.path(), &refusal(&t));
    }

    let t = TestHost::new();
    linked_to(&t, "/srv/pitcrew.toml");
    mode(&t, "/srv/pitcrew.toml", 0o666);
    c.line(
        "config: a link to a file others can write",
        t.dir.path(),
        &refusal(&t),
    );

    let t = TestHost::new();
    t.file("/tmp/pc/pitcrew.toml", "auto = true\n", 0o644);
    mode(&t, "/tmp", 0o1777);
    std::fs::create_dir_all(t.path("/etc")).unwrap();
    symlink(t.path("/tmp/pc"), t.path("/etc/pitcrew")).unwrap();
    c.line(
        "config: /etc/pitcrew a link into a sticky directory (/tmp)",
        t.dir.path(),
        &refusal(&t),
    );

    let t = TestHost::new();
    std::fs::create_dir_all(t.path("/etc/pitcrew")).unwrap();
    symlink(t.path("/nowhere/pitcrew.toml"), t.path(CONFIG)).unwrap();
    c.line("config: a link to nothing", t.dir.path(), &refusal(&t));

    let t = TestHost::new();
    std::fs::create_dir_all(t.path("/etc/pitcrew")).unwrap();
    symlink("/dev/zero", t.path(CONFIG)).unwrap();
    c.line("config: a link to /dev/zero", t.dir.path(), &refusal(&t));

    let t = TestHost::new();
    std::fs::create_dir_all(t.path(CONFIG)).unwrap();
    c.line(
        "config: a directory in its place",
        t.dir.path(),
        &refusal(&t),
    );

    let t = TestHost::new();
    t.config(&format!("# {}\n", "x".repeat(1024 * 1024)));
    c.line("config: larger than a MiB", t.dir.path(), &refusal(&t));

    insta::assert_snapshot!("config", c.render());
}

/// Only root can give a file to another user: apart, so the snapshot of the rest is the same
/// for everyone.
#[test]
fn config_refusals_of_owners() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let mut c = Catalog::default();
    {
        let t = TestHost::new();
        t.config("auto = true\n");
        std::os::unix::fs::chown(t.path(CONFIG), Some(65534), None).unwrap();
        c.line("config: owned by another user", t.dir.path(), &refusal(&t));
        let t = TestHost::new();
        t.config("auto = true\n");
        std::os::unix::fs::chown(t.path("/etc/pitcrew"), Some(65534), None).unwrap();
        c.line(
            "config: /etc/pitcrew owned by another user",
            t.dir.path(),
            &refusal(&t),
        );
        let t = TestHost::new();
        linked_to(&t, "/home/ann/pitcrew.toml");
        std::os::unix::fs::chown(t.path("/home/ann"), Some(1000), None).unwrap();
        c.line(
            "config: a link into a user's home",
            t.dir.path(),
            &refusal(&t),
        );
    }
    insta::assert_snapshot!("config_owners", c.render());
}
