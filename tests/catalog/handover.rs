//! What a handover says: the plan of a dry run, each step once as it runs, the closing line,
//! the refusals before anything moves, and a failure with its rollback.

use super::{logged, Catalog};
use crate::engine::{detach, reattach, request};
use pitcrew::{handover, Direction, HandoverError, Outcome};
use pitcrew_sim::{fixtures, unit_cgroup, ProcessTemplate, SimHost};

/// A run's log lines and its closing text, each checked, under `name`.
pub(super) fn run(
    c: &mut Catalog,
    name: &str,
    sim: &SimHost,
    f: impl FnOnce() -> Result<Outcome, HandoverError>,
) {
    let (result, log) = logged(f);
    for (n, line) in log.iter().enumerate() {
        c.line(
            &format!("{name}: log line {}", n + 1),
            sim.root(),
            line.trim_start(),
        );
    }
    match result {
        Ok(outcome) => c.lines(&format!("{name}: stdout"), sim.root(), &outcome.to_string()),
        Err(e) => c.line(
            &format!("{name}: error"),
            sim.root(),
            &pitcrew::Error::from(e).to_string(),
        ),
    }
}

fn dry(sim: &SimHost, direction: Direction, devices: &[&str]) -> Result<Outcome, HandoverError> {
    let mut request = request(direction, devices);
    request.dry_run = true;
    handover(&sim.host(), &request)
}

#[test]
fn handover_messages() {
    let mut c = Catalog::default();

    let sim = fixtures::nvidia_with_audio_and_usbc();
    run(&mut c, "detach --dry-run", &sim, || {
        dry(&sim, Direction::Detach, &["01:00.0"])
    });
    run(&mut c, "detach", &sim, || detach(&sim, &["01:00.0"]));
    run(&mut c, "detach again", &sim, || detach(&sim, &["01:00.0"]));
    run(&mut c, "reattach --dry-run", &sim, || {
        dry(&sim, Direction::Reattach, &["01:00.0"])
    });
    let qemu = sim.spawn(
        &unit_cgroup("machine-qemu\\x2d1\\x2dwin11.scope"),
        ProcessTemplate::new("qemu-system-x86_64").holds("/dev/vfio/12"),
    );
    run(&mut c, "reattach while a VM holds the group", &sim, || {
        reattach(&sim, &["01:00.0"])
    });
    sim.exit_process(qemu);
    run(&mut c, "reattach", &sim, || reattach(&sim, &["01:00.0"]));
    run(&mut c, "reattach of a card not lent", &sim, || {
        reattach(&sim, &["01:00.0"])
    });

    let sim = fixtures::nvidia_with_audio_and_usbc();
    sim.fail_command(
        &["modprobe", "-r", "nvidia_uvm"],
        "modprobe: FATAL: Module nvidia_uvm is in use.",
    );
    run(&mut c, "detach failing, rolled back", &sim, || {
        detach(&sim, &["01:00.0"])
    });

    let sim = fixtures::nvidia_with_audio_and_usbc();
    sim.fail_command(
        &["modprobe", "-r", "nvidia_uvm"],
        "modprobe: FATAL: Module nvidia_uvm is in use.",
    );
    sim.fail_command(&["systemctl", "start", "lightdm.service"], "Job failed.");
    run(&mut c, "detach failing, rollback failing too", &sim, || {
        detach(&sim, &["01:00.0"])
    });

    let sim = fixtures::nvidia_with_audio_and_usbc();
    for (name, devices) in [
        ("no such device", &["09:00.0"][..]),
        ("a bridge", &["00:01.0"][..]),
    ] {
        run(&mut c, &format!("detach of {name}"), &sim, || {
            dry(&sim, Direction::Detach, devices)
        });
    }
    let sim = fixtures::group_with_unrelated_device();
    run(
        &mut c,
        "detach of a group shared with the host",
        &sim,
        || dry(&sim, Direction::Detach, &["05:00.0"]),
    );

    let sim = fixtures::nvidia_with_audio_and_usbc();
    let host = sim.host();
    let limit = std::time::Duration::from_secs(2);
    host.write(
        "/sys/bus/pci/drivers/snd_hda_intel/unbind",
        "0000:01:00.1",
        limit,
    )
    .unwrap();
    host.write(
        "/sys/bus/pci/devices/0000:01:00.1/driver_override",
        "vfio-pci",
        limit,
    )
    .unwrap();
    host.effects()
        .run("modprobe", &["vfio_pci"], limit)
        .unwrap();
    run(
        &mut c,
        "reattach of a function parked by someone else",
        &sim,
        || reattach(&sim, &["01:00.1"]),
    );

    let sim = fixtures::apu_and_dgpu_sharing_amdgpu();
    crate::faults::stuck_helper_left_behind(&sim);
    run(&mut c, "detach while a write is stuck", &sim, || {
        detach(&sim, &["03:00.0"])
    });

    insta::assert_snapshot!("handover", c.render());
}
