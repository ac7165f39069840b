//! Every finding `pitcrew doctor` makes on the machines its own tests build: the healthy one,
//! one per thing that can be wrong, and one with nothing set up.

use super::Catalog;
use crate::doctor::{build, set_up, write, Machine, HEALTHY};
use pitcrew::Level;
use std::collections::BTreeSet;

fn variants() -> Vec<(&'static str, Machine, bool)> {
    let m = HEALTHY;
    vec![
        ("healthy", m.clone(), true),
        ("nothing installed", m.clone(), false),
        (
            "IOMMU off",
            Machine {
                iommu: false,
                ..m.clone()
            },
            true,
        ),
        (
            "AMD CPU, IOMMU off",
            Machine {
                iommu: false,
                cpu: "AuthenticAMD",
                cmdline: "ro quiet",
                ..m.clone()
            },
            true,
        ),
        (
            "no vfio-pci",
            Machine {
                vfio: false,
                ..m.clone()
            },
            true,
        ),
        (
            "audio in another group",
            Machine {
                audio_group: 13,
                ..m.clone()
            },
            true,
        ),
        (
            "a drive in the group",
            Machine {
                intruder: true,
                ..m.clone()
            },
            true,
        ),
        (
            "no reset method",
            Machine {
                reset: None,
                ..m.clone()
            },
            true,
        ),
        (
            "a large BAR",
            Machine {
                bar1: 32 * crate::doctor::GIB,
                ..m.clone()
            },
            true,
        ),
        (
            "nvidia-persistenced",
            Machine {
                persistenced: true,
                ..m.clone()
            },
            true,
        ),
        (
            "nvidia_drm fbdev",
            Machine {
                fbdev: "Y",
                ..m.clone()
            },
            true,
        ),
        (
            "the desktop on the card",
            Machine {
                desktop_on_gpu: true,
                ..m.clone()
            },
            true,
        ),
        (
            "a sound server on its audio",
            Machine {
                sound_server: true,
                ..m.clone()
            },
            true,
        ),
        (
            "no libvirt daemon",
            Machine {
                daemon: None,
                ..m.clone()
            },
            true,
        ),
        (
            "the daemon older than the hook",
            Machine {
                daemon: Some(("libvirtd.service", 10)),
                ..m
            },
            true,
        ),
    ]
}

#[test]
fn doctor_findings() {
    let mut c = Catalog::default();
    let mut seen = BTreeSet::new();
    let mut report = |c: &mut Catalog, machine: &str, sim: &pitcrew_sim::SimHost| {
        for check in pitcrew::doctor(&sim.host(), None).checks {
            let level = match check.level {
                Level::Ok => "ok",
                Level::Warn => "warn",
                Level::Fail => "fail",
            };
            let fix = check.fix.map(|f| format!(" -> {f}")).unwrap_or_default();
            let line = format!("{level} {}: {}{fix}", check.name, check.finding);
            let shown = line.replace(&sim.root().display().to_string(), "<root>");
            if seen.insert(shown) {
                c.line(
                    &format!("doctor, {machine}: {}", check.name),
                    sim.root(),
                    &line,
                );
            }
        }
    };
    for (name, machine, installed) in variants() {
        let sim = build(&machine);
        if installed {
            set_up(&sim);
        }
        report(&mut c, name, &sim);
    }
    let sim = build(&HEALTHY);
    set_up(&sim);
    write(
        &sim,
        "/etc/pitcrew/pitcrew.toml",
        "[vm.win11]\nreattach = maybe\n",
    );
    report(&mut c, "a bad config", &sim);
    write(&sim, "/etc/libvirt/qemu/win11.xml", "<domain><devices>");
    write(
        &sim,
        "/etc/pitcrew/pitcrew.toml",
        "[vm.win11]\n[vm.\"gone vm\"]\n",
    );
    report(&mut c, "a broken and a missing definition", &sim);
    insta::assert_snapshot!("doctor", c.render());
}
