//! What install and uninstall say they do, and why they refuse.

use super::Catalog;
use pitcrew::{install, uninstall, InstallOptions, UninstallOptions};
use pitcrew_sim::TestHost;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

fn staged() -> (TestHost, PathBuf) {
    let t = TestHost::new();
    std::fs::set_permissions(t.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = t.path("/build/pitcrew");
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    std::fs::write(&binary, "#!/bin/sh\n").unwrap();
    (t, binary)
}

/// What install printed, and its error if it failed.
type Said = (String, Option<String>);

fn run_install(t: &TestHost, binary: &PathBuf, vms: &[&str], dry_run: bool) -> Said {
    let vms: Vec<String> = vms.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    let opts = InstallOptions {
        vms: &vms,
        binary,
        dry_run,
        reload: true,
    };
    let result = install(&t.host, &opts, &mut out);
    (
        String::from_utf8(out).unwrap(),
        result.err().map(|e| pitcrew::Error::from(e).to_string()),
    )
}

fn run_uninstall(t: &TestHost, purge: bool) -> Said {
    let mut out = Vec::new();
    let opts = UninstallOptions {
        purge,
        dry_run: false,
        reload: true,
    };
    let result = uninstall(&t.host, &opts, &mut out);
    (
        String::from_utf8(out).unwrap(),
        result.err().map(|e| pitcrew::Error::from(e).to_string()),
    )
}

/// The account on stdout as lines, the error as the one line it must be.
fn said(c: &mut Catalog, name: &str, t: &TestHost, (out, error): Said) {
    if !out.is_empty() {
        c.lines(name, t.dir.path(), &out);
    }
    if let Some(error) = error {
        c.line(&format!("{name}: error"), t.dir.path(), &error);
    }
}

#[test]
fn install_messages() {
    let mut c = Catalog::default();

    let (t, binary) = staged();
    said(
        &mut c,
        "install --dry-run",
        &t,
        run_install(&t, &binary, &["win11"], true),
    );
    said(
        &mut c,
        "install",
        &t,
        run_install(&t, &binary, &["win11"], false),
    );
    said(
        &mut c,
        "install again",
        &t,
        run_install(&t, &binary, &["win11", "gpu-vm"], false),
    );
    said(&mut c, "uninstall", &t, run_uninstall(&t, false));
    said(
        &mut c,
        "uninstall with nothing installed",
        &t,
        run_uninstall(&t, true),
    );

    let (t, binary) = staged();
    t.file("/etc/systemd/system/pitcrew@.service", "[Service]\n", 0o644);
    said(
        &mut c,
        "install over a unit not its own",
        &t,
        run_install(&t, &binary, &["win11"], false),
    );

    let (t, binary) = staged();
    said(
        &mut c,
        "install of a bad VM name",
        &t,
        run_install(&t, &binary, &["a/b"], false),
    );

    let (t, binary) = staged();
    t.config("auto = true\n");
    std::fs::set_permissions(
        t.path("/etc/pitcrew/pitcrew.toml"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    said(
        &mut c,
        "install over a config others can write",
        &t,
        run_install(&t, &binary, &["win11"], false),
    );

    let (t, binary) = staged();
    t.file("/tmp/pitcrew.toml", "auto = true\n", 0o644);
    std::fs::set_permissions(t.path("/tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::create_dir_all(t.path("/etc/pitcrew")).unwrap();
    std::os::unix::fs::symlink(
        t.path("/tmp/pitcrew.toml"),
        t.path("/etc/pitcrew/pitcrew.toml"),
    )
    .unwrap();
    said(
        &mut c,
        "install over a config linked into /tmp",
        &t,
        run_install(&t, &binary, &["win11"], false),
    );

    let (t, binary) = staged();
    t.file("/usr/bin/gpuset.sh", "#!/bin/bash\n", 0o755);
    t.file(
        "/etc/libvirt/hooks/qemu.d/win11/prepare/begin/start.sh",
        "systemctl start pitcrew\n",
        0o755,
    );
    said(
        &mut c,
        "install over the bash kit",
        &t,
        run_install(&t, &binary, &["win11"], false),
    );

    insta::assert_snapshot!("install", c.render());
}
