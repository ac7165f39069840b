//! The three packages held to one list: Cargo.toml's cargo-deb assets, the RPM spec's %files
//! and the PKGBUILD against [`super::contents`].

use super::*;

fn read(path: &str) -> String {
    let path = crate::workspace().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `*` stands for any run of characters but '/', as in cargo-deb's and rpm's globs.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => text.strip_prefix(head).is_some_and(|rest| {
            (0..=rest.len())
                .take_while(|&i| !rest[..i].contains('/'))
                .any(|i| rest.is_char_boundary(i) && glob(tail, &rest[i..]))
        }),
    }
}

fn cargo_version() -> String {
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    manifest["package"]["version"].as_str().unwrap().to_string()
}

/// The body of a spec file's section: its lines up to the next section.
fn section<'a>(spec: &'a str, name: &str) -> Vec<&'a str> {
    spec.lines()
        .skip_while(|line| line.trim() != name)
        .skip(1)
        .take_while(|line| !line.starts_with("%changelog"))
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
}

/// A PKGBUILD or .SRCINFO value: `key=('a' 'b')` or `key = a` lines.
fn pkgbuild_array(text: &str, key: &str) -> Vec<String> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=(")))
        .unwrap_or_else(|| panic!("no {key}=(...)"));
    line.trim_end_matches(')')
        .split_whitespace()
        .map(|word| word.trim_matches(['\'', '"']).to_string())
        .collect()
}

fn srcinfo_values(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{key} = ")))
        .map(str::to_string)
        .collect()
}

#[test]
fn globs_stop_at_a_slash() {
    assert!(glob("target/dist/*.1", "target/dist/pitcrew-install.1"));
    assert!(!glob("target/dist/*.1", "target/dist/completions/x.1"));
    assert!(glob(
        "/usr/share/man/man1/pitcrew*.1*",
        "/usr/share/man/man1/pitcrew.1.gz"
    ));
    assert!(!glob("/usr/bin/pitcrew", "/usr/bin/pitcrew2"));
}

/// Every file of the .deb, as Cargo.toml's cargo-deb assets put it there, is in the list
/// (from the same source, at the same path, with the same mode), and every file of the
/// list is in the .deb.
#[test]
fn cargo_deb_assets_are_the_list() {
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    let assets = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap();
    // (source, destination, mode), a link's source being `link:TARGET`.
    let assets: Vec<(String, String, u32)> = assets
        .iter()
        .map(|asset| match asset {
            toml::Value::Array(a) => (
                a[0].as_str().unwrap().to_string(),
                a[1].as_str().unwrap().to_string(),
                u32::from_str_radix(a[2].as_str().unwrap(), 8).unwrap(),
            ),
            toml::Value::Table(t) => (
                format!("link:{}", t["link_name"].as_str().unwrap()),
                t["dest"].as_str().unwrap().to_string(),
                0o644,
            ),
            other => panic!("unexpected asset {other}"),
        })
        .collect();
    let installs = |(source, dest, _): &(String, String, u32), from: &str, to: &str| {
        let to = to.trim_start_matches('/');
        glob(source, from)
            && match dest.strip_suffix('/') {
                Some(dir) => {
                    Path::new(to) == Path::new(dir).join(Path::new(from).file_name().unwrap())
                }
                None => dest == to,
            }
    };
    // (source, destination, mode) of each file of the list, as cargo-deb's assets name them.
    let entries = contents();
    let listed: Vec<(String, &str, u32)> = entries
        .iter()
        .map(|entry| {
            let from = match &entry.source {
                Source::Binary => "target/release/pitcrew".to_string(),
                Source::Repo(path) => path.to_string(),
                Source::Generated(name) | Source::Man(name) => format!("target/dist/{name}"),
                Source::Link(target) => format!("link:{target}"),
            };
            (from, entry.path(Layout::Deb), entry.mode())
        })
        .collect();
    for (from, to, mode) in &listed {
        let by: Vec<_> = assets.iter().filter(|a| installs(a, from, to)).collect();
        assert_eq!(by.len(), 1, "{from} -> {to}: in the .deb by {by:?}");
        assert_eq!(by[0].2, *mode, "mode of {to}");
    }
    for asset in &assets {
        let debian_only = DEBIAN_ONLY.contains(&format!("/{}", asset.1).as_str());
        let in_list = listed.iter().any(|(from, to, _)| installs(asset, from, to));
        assert!(
            debian_only || in_list,
            "{asset:?} ships a file the list lacks"
        );
    }
}

/// The spec's %files names each file of the list once, the config as %config(noreplace).
#[test]
fn the_spec_packages_the_list() {
    let spec = read("dist/rpm/pitcrew.spec");
    let macros = [
        ("%{_bindir}", "/usr/bin"),
        ("%{_unitdir}", "/usr/lib/systemd/system"),
        ("%{_sysconfdir}", "/etc"),
        ("%{_docdir}", "/usr/share/doc"),
        ("%{_mandir}", "/usr/share/man"),
        ("%{_datadir}", "/usr/share"),
        ("%{name}", "pitcrew"),
    ];
    let listed: Vec<(String, bool)> = section(&spec, "%files")
        .into_iter()
        .filter(|line| !line.starts_with("%dir "))
        .map(|line| {
            let config = line.starts_with("%config(noreplace) ");
            let path = line
                .trim_start_matches("%config(noreplace) ")
                .trim_start_matches("%doc ");
            let path = macros
                .iter()
                .fold(path.to_string(), |p, (m, v)| p.replace(m, v));
            assert!(
                !path.contains('%'),
                "{line}: a directive or macro the test does not know"
            );
            (path, config)
        })
        .collect();
    let entries = contents();
    for entry in &entries {
        let path = entry.packaged(Layout::Rpm);
        let by: Vec<_> = listed.iter().filter(|(p, _)| glob(p, &path)).collect();
        assert_eq!(by.len(), 1, "{path} in %files by {by:?}");
        assert_eq!(
            by[0].1, entry.config,
            "{path}: %config(noreplace) when it is the config"
        );
    }
    for (pattern, _) in &listed {
        assert!(
            entries
                .iter()
                .any(|e| glob(pattern, &e.packaged(Layout::Rpm))),
            "%files lists {pattern}, which the list lacks"
        );
    }
}

/// The PKGBUILD and the spec lay their packages out from the list, keep its config, and every
/// package carries the crate's version.
#[test]
fn pkgbuild_spec_and_changelog_follow_the_list_and_the_version() {
    let version = cargo_version();
    let pkgbuild = read("dist/arch/PKGBUILD");
    let srcinfo = read("dist/arch/.SRCINFO");
    let spec = read("dist/rpm/pitcrew.spec");
    let changelog = read("dist/debian/changelog");

    assert!(pkgbuild.contains("xtask dist --layout arch --install \"$pkgdir\""));
    assert!(spec.contains("xtask dist --layout rpm --install %{buildroot}"));

    let configs: Vec<String> = contents()
        .iter()
        .filter(|e| e.config)
        .map(|e| e.path(Layout::Arch).trim_start_matches('/').to_string())
        .collect();
    assert_eq!(pkgbuild_array(&pkgbuild, "backup"), configs);
    assert_eq!(srcinfo_values(&srcinfo, "backup"), configs);

    assert!(pkgbuild.lines().any(|l| l == format!("pkgver={version}")));
    assert_eq!(srcinfo_values(&srcinfo, "pkgver"), [version.as_str()]);
    let spec_version = spec.lines().find_map(|l| l.strip_prefix("Version:"));
    assert_eq!(spec_version.map(str::trim), Some(version.as_str()));
    assert!(
        changelog.starts_with(&format!("pitcrew ({version}-")),
        "dist/debian/changelog's first entry is for {version}"
    );
}
