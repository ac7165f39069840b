//! A GPU whose driver registers its DRM minors under a child device, as virtio-gpu does under the
//! virtio device of its PCI function (`0000:00:03.0/virtio0/drm/card0`): its nodes are found, so
//! their holders are, and keep-off triggers them.

use crate::engine::{detach, drivers};
use pitcrew::{keep_off, KeepOffOptions, Snapshot, Status};
use pitcrew_sim::{
    fixtures, Builder, DeviceSpec, ModuleSpec, ProcessTemplate, SimHost, SESSION_SCOPE,
};

const VGA: u32 = 0x030000;

/// Two virtio GPUs (the desktop's at 00:04.0, the one to lend at 00:03.0) behind virtio-pci,
/// which also drives the root disk; a game holds the lent card's render node.
fn two_virtio_gpus() -> SimHost {
    let virtio_gpu = |bdf: &str, group: u32, card: u32| {
        DeviceSpec::new(bdf, 0x1af4, 0x1050, VGA)
            .driver("virtio-pci")
            .group(group)
            .drm_card(card)
            .drm_child(&format!("virtio{card}"))
    };
    Builder::new()
        .modules([
            ModuleSpec::new("drm").size(614400),
            ModuleSpec::new("virtio_pci")
                .drivers(&["virtio-pci"])
                .builtin(),
            ModuleSpec::new("virtio_gpu")
                .deps(&["drm"])
                .drm_for(&["virtio-pci"])
                .size(98304),
        ])
        .modules(fixtures::vfio_stack())
        .device(virtio_gpu("0000:00:03.0", 3, 0))
        .device(virtio_gpu("0000:00:04.0", 4, 1))
        .device(
            DeviceSpec::new("0000:00:05.0", 0x1af4, 0x1042, 0x010000)
                .driver("virtio-pci")
                .group(5),
        )
        .process(
            2500,
            SESSION_SCOPE,
            ProcessTemplate::new("vkcube")
                .cmdline(&["/usr/bin/vkcube"])
                .holds("/dev/dri/renderD128"),
        )
        .build()
}

#[test]
fn nodes_under_a_child_device_are_the_functions_own() {
    let sim = two_virtio_gpus();
    let status = Status::of(&Snapshot::read(&sim.host()).unwrap()).to_string();
    assert!(status.contains("/dev/dri/renderD128"), "{status}");
    assert!(status.contains("vkcube"), "{status}");
    detach(&sim, &["00:03.0"]).unwrap();
    let drivers = drivers(&sim);
    assert!(
        drivers.contains(&("0000:00:03.0".into(), Some("vfio-pci".into()))),
        "{drivers:?}"
    );
    assert!(
        drivers.contains(&("0000:00:04.0".into(), Some("virtio-pci".into()))),
        "{drivers:?}"
    );
    assert!(
        !sim.process_alive(2500),
        "the render node's holder still runs"
    );
}

#[test]
fn keep_off_triggers_the_nodes_under_the_child_device() {
    let sim = two_virtio_gpus();
    sim.exit_process(2500);
    let options = KeepOffOptions {
        undo: false,
        keep_sound: false,
        strict: false,
        dry_run: false,
        live: true,
    };
    keep_off(
        &sim.host(),
        &["00:03.0".parse().unwrap()],
        &options,
        &mut Vec::new(),
    )
    .unwrap();
    let triggers: Vec<String> = sim
        .commands()
        .into_iter()
        .filter(|argv| argv.get(1).map(String::as_str) == Some("trigger"))
        .map(|argv| argv[1..].join(" "))
        .collect();
    assert_eq!(
        triggers,
        [
            "trigger --action=change --settle /sys/bus/pci/devices/0000:00:03.0/virtio0/drm/card0 \
          /sys/bus/pci/devices/0000:00:03.0/virtio0/drm/renderD128"
        ]
    );
}
