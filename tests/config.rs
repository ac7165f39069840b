//! The config file: defaults, per-VM tables, and refusals that name the file and the line.

use pitcrew::DisplayManagerPolicy;
use pitcrew::VmName;
use pitcrew::{Config, ConfigError};
use pitcrew_sim::TestHost;
use std::path::Path;
use std::time::Duration;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/pitcrew/pitcrew.toml"))
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn the_shipped_example_parses_to_the_defaults() {
    let config = parse(include_str!("../dist/pitcrew.toml")).unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn the_sleep_inhibitor_is_on_unless_turned_off() {
    let config =
        parse("[defaults]\ninhibit_sleep = false\n[vm.game]\ninhibit_sleep = true\n[vm.work]\n")
            .unwrap();
    assert!(Config::default().defaults.policy.inhibit_sleep);
    assert!(!config.defaults.policy.inhibit_sleep);
    let vm = |name| config.for_vm(&VmName::parse(name).unwrap());
    assert!(vm("game").policy.inhibit_sleep);
    assert!(!vm("work").policy.inhibit_sleep);
    assert!(error("[defaults]\ninhibit_sleep = \"no\"\n").contains(":2:"));
}

#[test]
fn vm_tables_override_defaults() {
    let config = parse(
        r#"
auto = true
[defaults]
reattach = false
term_timeout = 9
[vm."win 11"]
devices = ["01:00.0", "0000:01:00.1"]
display_manager = "always"
unit_timeout = 60
[vm.linux]
reattach = true
"#,
    )
    .unwrap();
    assert!(config.auto);
    let win = config.listed(&VmName::parse("win 11").unwrap()).unwrap();
    assert_eq!(
        win.devices
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>(),
        ["0000:01:00.0", "0000:01:00.1"]
    );
    assert!(!win.reattach, "inherits [defaults]");
    assert_eq!(win.policy.display_manager, DisplayManagerPolicy::Always);
    assert_eq!(win.policy.term_timeout, Duration::from_secs(9));
    assert_eq!(win.unit_timeout, Duration::from_secs(60));
    let linux = config.listed(&VmName::parse("linux").unwrap()).unwrap();
    assert!(linux.reattach && linux.devices.is_empty());
    let other = VmName::parse("other").unwrap();
    assert!(config.listed(&other).is_none());
    assert_eq!(
        pitcrew::policy_for_vm(&config, &other).term_timeout,
        Duration::from_secs(9)
    );
}

#[test]
fn errors_name_the_file_and_line() {
    let cases = [
        (
            "auto = true\n[defaults]\nreatach = true\n",
            ":3:",
            "unknown field `reatach`",
        ),
        (
            "[vm.win11]\n\ndevices = [\"01:00.0\", \"zz:00.0\"]\n",
            ":3:",
            "not a PCI address",
        ),
        (
            "[defaults]\ndisplay_manager = \"sometimes\"\n",
            ":2:",
            "unknown variant `sometimes`",
        ),
        ("[defaults]\nterm_timeout = 0\n", ":2:", "out of range"),
        ("[vm.w]\nunit_timeout = 1000\n", ":2:", "out of range"),
        ("[vm.w]\nreattach = \"yes\"\n", ":2:", "invalid type"),
        ("auto = \n", ":1:", ""),
        ("[vm.\"a/b\"]\n", ":1:", "contains '/'"),
        ("\n\n[vm.\"bad\\u0007\"]\n", ":3:", "control character"),
        ("[frobnicate]\n", ":1:", "unknown field `frobnicate`"),
    ];
    for (text, line, reason) in cases {
        let message = error(text);
        assert!(
            message.starts_with(&format!("/etc/pitcrew/pitcrew.toml{line}")),
            "{text:?}: {message}"
        );
        assert!(message.contains(reason), "{text:?}: {message}");
    }
}

#[test]
fn a_missing_file_is_none_or_refused_when_required() {
    let t = TestHost::new();
    assert!(Config::load(&t.host).unwrap().is_none());
    let message = Config::load_required(&t.host).unwrap_err().to_string();
    assert!(message.contains("pitcrew.toml: no such file"), "{message}");
}

#[test]
fn files_others_can_write_are_refused() {
    for (mode, dir_mode) in [
        (0o666, 0o755),
        (0o664, 0o755),
        (0o644, 0o777),
        (0o644, 0o775),
    ] {
        let t = TestHost::new();
        t.config("auto = true\n");
        let set = |p: &str, m: u32| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(t.path(p), std::fs::Permissions::from_mode(m)).unwrap()
        };
        set("/etc/pitcrew/pitcrew.toml", mode);
        set("/etc/pitcrew", dir_mode);
        let message = Config::load(&t.host).unwrap_err().to_string();
        assert!(
            message.contains("so others can change it"),
            "{mode:o}/{dir_mode:o}: {message}"
        );
        assert!(message.contains("chmod go-w"), "{message}");
    }
    let t = TestHost::new();
    t.config("auto = true\n");
    assert!(Config::load(&t.host).unwrap().unwrap().auto);
}

#[test]
fn a_file_owned_by_someone_else_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let t = TestHost::new();
    t.config("auto = true\n");
    std::os::unix::fs::chown(t.path("/etc/pitcrew/pitcrew.toml"), Some(65534), None).unwrap();
    let message = Config::load(&t.host).unwrap_err().to_string();
    assert!(message.contains("owned by uid 65534"), "{message}");
}

#[test]
fn a_directory_that_is_not_pitcrews_is_never_advised_a_change() {
    use std::os::unix::fs::PermissionsExt;
    let set =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    // The config in place under a system directory others can write: nothing to move it to.
    for (dir, mode) in [("/etc", 0o777), ("/", 0o1777)] {
        let t = TestHost::new();
        t.config("auto = true\n");
        set(&t.path(dir), mode);
        let message = Config::load(&t.host).unwrap_err().to_string();
        assert!(message.contains("so others can change it"), "{message}");
        assert!(
            !message.contains("chmod") && !message.contains("chown"),
            "{message}"
        );
    }
    // /etc/pitcrew itself a link into a shared directory: the link is replaced, /tmp kept.
    let t = TestHost::new();
    t.file("/var/tmp/pc/pitcrew.toml", "auto = true\n", 0o644);
    set(&t.path("/var/tmp"), 0o1777);
    std::fs::create_dir_all(t.path("/etc")).unwrap();
    std::os::unix::fs::symlink(t.path("/var/tmp/pc"), t.path("/etc/pitcrew")).unwrap();
    let message = Config::load(&t.host).unwrap_err().to_string();
    assert!(
        !message.contains("chmod") && !message.contains("chown"),
        "{message}"
    );
    assert!(
        message.contains(&format!("`rm {}", t.path("/etc/pitcrew").display())),
        "{message}"
    );
}
