//! `pitcrew install --root DIR` stages the layout; `uninstall --purge` puts the tree back.

use pitcrew::{install, uninstall, InstallOptions, UninstallOptions};
use pitcrew_sim::TestHost;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Every entry under the root as `mode kind path[ -> target]`, sorted: the staging snapshot.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let shown = format!("/{}", path.strip_prefix(root).unwrap().display());
            let mode = meta.permissions().mode() & 0o7777;
            let line = if meta.file_type().is_symlink() {
                format!(
                    "link {shown} -> {}",
                    std::fs::read_link(&path).unwrap().display()
                )
            } else if meta.is_dir() {
                stack.push(path.clone());
                format!("{mode:04o} dir  {shown}")
            } else {
                format!("{mode:04o} file {shown}")
            };
            out.push(line);
        }
    }
    out.sort();
    out
}

fn contents(root: &Path) -> Vec<(String, String)> {
    tree(root)
        .into_iter()
        .map(|line| {
            let path = line.rsplit(' ').next().unwrap().to_string();
            let text = std::fs::read_to_string(root.join(path.trim_start_matches('/')))
                .unwrap_or_default();
            (line, text)
        })
        .collect()
}

fn opts(purge: bool) -> UninstallOptions {
    UninstallOptions {
        purge,
        dry_run: false,
        reload: true,
    }
}

fn fake_binary(t: &TestHost) -> std::path::PathBuf {
    let path = t.dir.path().join("build-pitcrew");
    std::fs::write(&path, "#!/bin/sh\n").unwrap();
    path
}

fn staged(t: &TestHost) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = t;
    root
}

fn run_install(
    host: &pitcrew::Host,
    binary: &Path,
    vms: &[&str],
    dry_run: bool,
) -> Result<String, String> {
    let vms: Vec<String> = vms.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    let opts = InstallOptions {
        vms: &vms,
        binary,
        dry_run,
        reload: true,
    };
    install(host, &opts, &mut out).map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).unwrap())
}

#[test]
fn install_stages_the_layout_with_modes() {
    let t = TestHost::new();
    let root = staged(&t);
    let host = pitcrew::Host::new(root.path(), t.runner.clone());
    let said = run_install(&host, &fake_binary(&t), &["win11"], false).unwrap();
    assert_eq!(
        tree(root.path()),
        [
            "0644 file /etc/pitcrew/pitcrew.toml",
            "0644 file /etc/systemd/system/pitcrew@.service",
            "0644 file /var/lib/pitcrew/install.json",
            "0755 dir  /etc",
            "0755 dir  /etc/libvirt",
            "0755 dir  /etc/libvirt/hooks",
            "0755 dir  /etc/libvirt/hooks/qemu.d",
            "0755 dir  /etc/pitcrew",
            "0755 dir  /etc/systemd",
            "0755 dir  /etc/systemd/system",
            "0755 dir  /usr",
            "0755 dir  /usr/local",
            "0755 dir  /usr/local/bin",
            "0755 dir  /var",
            "0755 dir  /var/lib",
            "0755 dir  /var/lib/pitcrew",
            "0755 file /usr/local/bin/pitcrew",
            "link /etc/libvirt/hooks/qemu.d/pitcrew -> /usr/local/bin/pitcrew",
        ]
    );
    let unit =
        std::fs::read_to_string(root.path().join("etc/systemd/system/pitcrew@.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/pitcrew detach --vm=%I"));
    // The staged config is valid and lists the VM.
    let config = pitcrew::Config::load(&host).unwrap().unwrap();
    assert!(config
        .listed(&pitcrew::VmName::parse("win11").unwrap())
        .is_some());
    assert!(
        said.contains("skip `systemctl daemon-reload` (staged root)"),
        "{said}"
    );
    assert!(t.runner.calls().is_empty(), "a staged install runs nothing");
}

#[test]
fn uninstall_purge_leaves_the_root_as_before() {
    let t = TestHost::new();
    let root = staged(&t);
    let host = pitcrew::Host::new(root.path(), t.runner.clone());
    // A host with its own libvirt hook script and a config naming another VM.
    let pre = |p: &str, text: &str, mode: u32| {
        let path = root.path().join(p.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    pre(
        "/etc/libvirt/hooks/qemu",
        "#!/bin/sh\n# the user's own hook\n",
        0o755,
    );
    pre(
        "/etc/pitcrew/pitcrew.toml",
        "auto = false\n[vm.linux]\nreattach = false\n",
        0o640,
    );
    let before = contents(root.path());

    let binary = fake_binary(&t);
    run_install(&host, &binary, &["win11", "linux"], false).unwrap();
    let hook = std::fs::read_to_string(root.path().join("etc/libvirt/hooks/qemu")).unwrap();
    assert!(hook.contains("the user's own hook"), "never overwritten");
    let merged = std::fs::read_to_string(root.path().join("etc/pitcrew/pitcrew.toml")).unwrap();
    assert!(
        merged.starts_with("auto = false\n[vm.linux]\nreattach = false\n"),
        "merged, not clobbered"
    );
    assert_eq!(merged.matches("[vm.").count(), 2, "{merged}");
    // Installing again is an upgrade of its own files, the config untouched.
    let again = run_install(&host, &binary, &["win11"], false).unwrap();
    assert!(again.contains("keep /etc/pitcrew/pitcrew.toml"), "{again}");

    let mut out = Vec::new();
    uninstall(&host, &opts(true), &mut out).unwrap();
    assert_eq!(
        contents(root.path()),
        before,
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn uninstall_without_purge_keeps_the_config() {
    let t = TestHost::new();
    let root = staged(&t);
    let host = pitcrew::Host::new(root.path(), t.runner.clone());
    run_install(&host, &fake_binary(&t), &["win11"], false).unwrap();
    uninstall(&host, &opts(false), &mut Vec::new()).unwrap();
    assert_eq!(
        tree(root.path()),
        [
            "0644 file /etc/pitcrew/pitcrew.toml",
            "0755 dir  /etc",
            "0755 dir  /etc/pitcrew"
        ]
    );
}

#[test]
fn dry_run_changes_nothing() {
    let t = TestHost::new();
    let root = staged(&t);
    let host = pitcrew::Host::new(root.path(), t.runner.clone());
    let said = run_install(&host, &fake_binary(&t), &["win11"], true).unwrap();
    assert!(tree(root.path()).is_empty());
    assert!(
        said.contains("would write /etc/systemd/system/pitcrew@.service"),
        "{said}"
    );
    assert!(said.contains("would link /etc/libvirt/hooks/qemu.d/pitcrew -> /usr/local/bin/pitcrew"));
}

#[test]
fn refusals_change_nothing() {
    let t = TestHost::new();
    let root = staged(&t);
    let host = pitcrew::Host::new(root.path(), t.runner.clone());
    let binary = fake_binary(&t);
    let put = |p: &str, text: &str| {
        let path = root.path().join(p.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    // A unit file that is not ours.
    put("/etc/systemd/system/pitcrew@.service", "[Service]\n");
    let before = contents(root.path());
    let e = run_install(&host, &binary, &["win11"], false).unwrap_err();
    assert!(
        e.contains("pitcrew@.service exists and was not written by `pitcrew install`"),
        "{e}"
    );
    assert_eq!(contents(root.path()), before);
    // A bad VM name.
    assert!(run_install(&host, &binary, &["a/b"], false)
        .unwrap_err()
        .contains("'/'"));
    // The bash kit.
    std::fs::remove_file(root.path().join("etc/systemd/system/pitcrew@.service")).unwrap();
    put("/usr/bin/gpuset.sh", "#!/bin/bash\n");
    put(
        "/etc/libvirt/hooks/qemu.d/win11/prepare/begin/start.sh",
        "systemctl start pitcrew\n",
    );
    let before = contents(root.path());
    let e = run_install(&host, &binary, &["win11"], false).unwrap_err();
    assert!(e.contains("bash GPU Pit Crew"), "{e}");
    assert!(
        e.contains("/etc/libvirt/hooks/qemu.d/win11/prepare/begin/start.sh"),
        "{e}"
    );
    assert!(e.contains("systemctl disable --now pitcrew.service"), "{e}");
    assert_eq!(contents(root.path()), before);
    // Uninstall with nothing installed.
    let e = uninstall(&host, &opts(false), &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing was installed"), "{e}");
}

/// A simulated host where `unit` (a libvirt daemon) runs.
fn with_daemon(unit: &str) -> pitcrew_sim::SimHost {
    use pitcrew_sim::{unit_cgroup, Builder, ProcessTemplate, UnitSpec};
    let name = unit.trim_end_matches(".service");
    Builder::new()
        .unit(UnitSpec::new(unit).running())
        .process(700, &unit_cgroup(unit), ProcessTemplate::new(name))
        .build()
}

#[test]
fn a_new_hook_reloads_the_running_libvirt_daemon_and_an_existing_one_does_not() {
    let t = TestHost::new();
    for unit in ["libvirtd.service", "virtqemud.service"] {
        let sim = with_daemon(unit);
        let host = sim.host();
        let reload = format!("skip `systemctl reload {unit}` (staged root)");
        let said = run_install(&host, &fake_binary(&t), &["win11"], false).unwrap();
        assert!(said.contains(&reload), "{said}");
        assert!(!said.contains("restart"), "{said}");
        let again = run_install(&host, &fake_binary(&t), &["win11"], false).unwrap();
        assert!(
            !again.contains("reload "),
            "the hook was there already: {again}"
        );
        let mut out = Vec::new();
        uninstall(&host, &opts(false), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(&reload), "uninstall removed the hook: {out}");
        assert!(sim.commands().is_empty(), "a staged root runs nothing");
    }
}

#[test]
fn no_reload_says_what_to_run_and_no_daemon_needs_none() {
    let t = TestHost::new();
    let sim = with_daemon("libvirtd.service");
    let vms = vec!["win11".to_string()];
    let binary = fake_binary(&t);
    let opts = InstallOptions {
        vms: &vms,
        binary: &binary,
        dry_run: false,
        reload: false,
    };
    let mut out = Vec::new();
    install(&sim.host(), &opts, &mut out).unwrap();
    let said = String::from_utf8(out).unwrap();
    assert!(
        said.contains("not reloading libvirtd.service (--no-reload): until `systemctl reload libvirtd.service`"),
        "{said}"
    );
    let idle = pitcrew_sim::Builder::new().build();
    let said = run_install(&idle.host(), &binary, &["win11"], false).unwrap();
    assert!(said.contains("no libvirt daemon runs now"), "{said}");
}

#[test]
fn uninstall_refuses_while_a_card_is_lent() {
    let t = TestHost::new();
    let root = staged(&t);
    let host = pitcrew::Host::new(root.path(), t.runner.clone());
    run_install(&host, &fake_binary(&t), &["win11"], false).unwrap();
    let mut record = pitcrew::Record::default();
    record.lent.insert(
        "0000:01:00.0".parse().unwrap(),
        pitcrew::Lent {
            driver: Some("nvidia".into()),
            owner: Some("win11".into()),
            ..Default::default()
        },
    );
    record.save(&host).unwrap();
    let before = tree(root.path());

    let err = uninstall(&host, &opts(true), &mut Vec::new()).unwrap_err();
    assert!(
        err.to_string()
            .contains("pitcrew has lent 0000:01:00.0 (VM 'win11') to vfio-pci"),
        "{err}"
    );
    assert_eq!(tree(root.path()), before);
}
