//! Every holder of every node of the functions moved: found, listed, ended, checked again
//! right before each unbind.

use crate::engine::{detach, reattach, request, signals_to, status};
use pitcrew::{handover, Direction};
use pitcrew_sim::{fixtures, unit_cgroup, Event, ProcessTemplate, Signal, SESSION_SCOPE};
use std::time::Duration;

const NAVI: &str = "0000:0b:00.0";
const NAVI_AUDIO: &str = "0000:0b:00.1";

#[test]
fn status_lists_every_holder_of_the_card_and_its_slot_companion() {
    let sim = fixtures::navi_audio_in_own_group();
    let text = status(&sim, &[]);
    let navi = text
        .split("GPU ")
        .find(|part| part.starts_with(NAVI))
        .unwrap_or_else(|| panic!("no {NAVI} in\n{text}"));
    for expected in [
        "0000:0b:00.1  1002:ab28  audio      snd_hda_intel  [IOMMU group 21]  /dev/snd/controlC1",
        "/dev/i2c-5",
        "held by pid 2200 (pipewire) in session-2.scope: /dev/snd/controlC1, /dev/snd/pcmC1D3p",
        "held by pid 2500 (steam) in session-2.scope: /dev/kfd",
        "held by pid 2600 (powerdevil) in session-2.scope: /dev/i2c-5",
    ] {
        assert!(navi.contains(expected), "{expected:?} missing from\n{navi}");
    }
    // The onboard sound card is the host's: its node is not the Navi card's business.
    assert!(!navi.contains("controlC0"), "{navi}");

    let json: serde_json::Value = serde_json::from_str(&status(&sim, &["--json"])).unwrap();
    let gpu = json["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["address"] == NAVI)
        .unwrap();
    let holders: Vec<&str> = gpu["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["comm"].as_str().unwrap())
        .collect();
    assert_eq!(holders, ["pipewire", "steam", "powerdevil"]);
    assert_eq!(gpu["functions"][1]["bdf"], NAVI_AUDIO, "{gpu}");
}

#[test]
fn detach_ends_the_holders_of_the_sound_card_kfd_and_ddc_bus_and_moves_both_functions() {
    let sim = fixtures::navi_audio_in_own_group();
    let plan = detach(&sim, &["0b:00.0"]).unwrap().plan.to_string();
    for expected in [
        "ask pipewire (2200) to release ALSA card 1 of 0000:0b:00.1 through org.freedesktop.ReserveDevice1.Audio1",
        "end process 2200 (pipewire) holding /dev/snd/controlC1, /dev/snd/pcmC1D3p",
        "end process 2500 (steam) holding /dev/kfd",
        "end process 2600 (powerdevil) holding /dev/i2c-5",
        "unbind it from snd_hda_intel",
        "unload module amdgpu",
    ] {
        assert!(plan.contains(expected), "{expected:?} missing from\n{plan}");
    }
    // Nothing of the desktop holds the card: the display manager stays.
    assert!(!plan.contains("gdm"), "{plan}");
    for pid in [2500, 2600] {
        assert!(!sim.process_alive(pid), "{pid} still alive");
    }
    // The sound server let go of the card through the reservation: its end step found nothing
    // to end.
    assert!(sim.process_alive(2200));
    assert!(!sim
        .events()
        .iter()
        .any(|e| matches!(e, pitcrew_sim::Event::Signal { pid: 2200, .. })));
    assert_eq!(sim.driver(NAVI).as_deref(), Some("vfio-pci"));
    assert_eq!(sim.driver(NAVI_AUDIO).as_deref(), Some("vfio-pci"));
    assert_eq!(sim.driver("0000:00:1f.3").as_deref(), Some("snd_hda_intel"));

    reattach(&sim, &["0b:00.0"]).unwrap();
    assert_eq!(sim.driver(NAVI).as_deref(), Some("amdgpu"));
    assert_eq!(sim.driver(NAVI_AUDIO).as_deref(), Some("snd_hda_intel"));
    assert!(sim.dev_exists("/dev/snd/controlC1"));
}

/// A player without a reservation (aplay) that opens the card after the plan is asked through
/// the reservation like any sound holder, keeps the card, and is ended before the unbind.
#[test]
fn a_player_that_opens_the_sound_card_after_the_plan_is_ended_before_the_unbind() {
    let sim = fixtures::amd_with_audio();
    let player = ProcessTemplate::new("aplay").holds("/dev/snd/controlC1");
    sim.spawn_on_write(
        "/sys/bus/pci/devices/0000:03:00.1/driver_override",
        SESSION_SCOPE,
        player,
    );
    let outcome = detach(&sim, &["03:00.0"]).unwrap();
    // Not in the plan: it appeared later.
    assert!(!outcome.plan.to_string().contains("aplay"));
    let late = sim.pids_of("aplay");
    assert!(late.is_empty(), "the late holder {late:?} survived");
    let spawned = late_signalled(&sim);
    assert_eq!(signals_to(&sim, spawned[0]), [Signal::Term]);
    assert_eq!(sim.driver("0000:03:00.1").as_deref(), Some("vfio-pci"));
}

/// A sound server that opens the card after the plan (restarted, or its device re-created) is
/// asked through the reservation first, lets go, and is never signalled.
#[test]
fn a_sound_server_that_opens_the_sound_card_after_the_plan_is_asked_not_ended() {
    let sim = fixtures::amd_with_audio();
    let pipewire = ProcessTemplate::new("pipewire").holds("/dev/snd/controlC1");
    sim.spawn_on_write(
        "/sys/bus/pci/devices/0000:03:00.1/driver_override",
        SESSION_SCOPE,
        pipewire,
    );
    detach(&sim, &["03:00.0"]).unwrap();
    assert_eq!(
        sim.pids_of("pipewire").len(),
        1,
        "the sound server was ended"
    );
    assert!(late_signalled(&sim).is_empty(), "{:#?}", sim.events());
    assert!(sim
        .commands()
        .iter()
        .any(|argv| argv.get(1).map(String::as_str) == Some("reserve-audio")));
    assert_eq!(sim.driver("0000:03:00.1").as_deref(), Some("vfio-pci"));
}

/// The pids signalled among those started during the test (the fixtures' own are below 4000).
fn late_signalled(sim: &pitcrew_sim::SimHost) -> Vec<u32> {
    sim.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Signal { pid, .. } => Some(pid),
            _ => None,
        })
        .filter(|pid| *pid >= 4000)
        .collect()
}

#[test]
fn without_the_check_the_unbind_would_wait_for_the_sound_card_to_close() {
    // What the check guards against, on the simulated kernel: the unbind waits for the holder.
    let sim = fixtures::amd_with_audio();
    let pid = sim.spawn(
        SESSION_SCOPE,
        ProcessTemplate::new("pipewire").holds("/dev/snd/pcmC1D3p"),
    );
    let unbind = "/sys/bus/pci/drivers/snd_hda_intel/unbind";
    let err = sim
        .host()
        .write(unbind, "0000:03:00.1", Duration::from_millis(200))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(
        err.to_string().contains("snd_card_disconnect_sync"),
        "{err}"
    );
    assert_eq!(sim.driver("0000:03:00.1").as_deref(), Some("snd_hda_intel"));
    sim.exit_process(pid);
    assert!(crate::engine::wait_until(|| sim
        .driver("0000:03:00.1")
        .is_none()));
}

#[test]
fn reattach_refuses_while_a_vm_holds_the_group_and_changes_nothing() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    detach(&sim, &["01:00.0"]).unwrap();
    let qemu = sim.spawn(
        &unit_cgroup("machine-qemu\\x2d1\\x2dwin11.scope"),
        ProcessTemplate::new("qemu-system-x86_64").holds("/dev/vfio/12"),
    );
    let events = sim.events().len();
    let err = pitcrew::Error::from(reattach(&sim, &["01:00.0"]).unwrap_err());
    assert_eq!(err.exit_code(), 1);
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "a VM still uses IOMMU group 12: pid {qemu} (qemu-system-x86_64) holding /dev/vfio/12"
        )),
        "{message}"
    );
    assert_eq!(sim.events().len(), events, "{:?}", &sim.events()[events..]);
    assert!(sim.process_alive(qemu));
    assert_eq!(sim.driver("0000:01:00.0").as_deref(), Some("vfio-pci"));
}

#[test]
fn a_vm_that_starts_between_the_plan_and_the_unbind_fails_the_reattach_and_is_left_running() {
    let sim = fixtures::nvidia_with_audio_and_usbc();
    detach(&sim, &["01:00.0"]).unwrap();
    sim.spawn_on_write(
        "/sys/bus/pci/devices/0000:01:00.0/driver_override",
        SESSION_SCOPE,
        ProcessTemplate::new("qemu-system-x86_64").holds("/dev/vfio/12"),
    );
    let err = handover(&sim.host(), &request(Direction::Reattach, &["01:00.0"])).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("(qemu-system-x86_64) holding /dev/vfio/12 opened 0000:01:00.0 since the plan: a VM uses it"), "{message}");
    assert!(message.contains("Rolled back"), "{message}");
    assert!(!sim.pids_of("qemu-system-x86_64").is_empty());
    assert_eq!(sim.driver("0000:01:00.0").as_deref(), Some("vfio-pci"));
    assert_eq!(
        sim.driver_override("0000:01:00.0").as_deref(),
        Some("vfio-pci")
    );
}

/// logind holding the session's cards for gnome-shell (TakeDevice), as on every Wayland desktop,
/// and systemd (PID 1) keeping logind's copies in its file descriptor store.
fn logind_for_gnome_shell(sim: &pitcrew_sim::SimHost) -> (u32, u32) {
    let manager = sim.spawn_at(
        1,
        "/init.scope",
        ProcessTemplate::new("systemd")
            .holds("/dev/dri/card0")
            .holds("/dev/dri/card1"),
    );
    let logind = sim.spawn(
        &unit_cgroup("systemd-logind.service"),
        ProcessTemplate::new("systemd-logind")
            .holds("/dev/dri/card0")
            .holds("/dev/dri/card1"),
    );
    sim.brokers_for(logind, 2100);
    sim.brokers_for(manager, logind);
    (logind, manager)
}

#[test]
fn logind_is_waited_for_after_the_compositor_and_never_signalled() {
    let sim = fixtures::amd_with_audio();
    let (logind, manager) = logind_for_gnome_shell(&sim);
    let plan = detach(&sim, &["03:00.0"]).unwrap().plan.to_string();
    let end_shell = plan
        .find("end process 2100 (gnome-shell) holding /dev/dri/card1")
        .unwrap_or_else(|| panic!("gnome-shell is not ended in\n{plan}"));
    let wait = format!(
        "wait for systemd-logind ({logind}) to close /dev/dri/card1, which it holds for a login session"
    );
    let wait_at = plan
        .find(&wait)
        .unwrap_or_else(|| panic!("{wait:?} missing from\n{plan}"));
    assert!(end_shell < wait_at, "logind is waited for first in\n{plan}");
    let store = format!("wait for systemd ({manager}) to close /dev/dri/card1");
    let store_at = plan
        .find(&store)
        .unwrap_or_else(|| panic!("{store:?} missing from\n{plan}"));
    assert!(
        wait_at < store_at,
        "the fd store is waited for before logind in\n{plan}"
    );
    for broker in [logind, manager] {
        assert!(!plan.contains(&format!("end process {broker} ")), "{plan}");
        assert!(signals_to(&sim, broker).is_empty());
        assert!(sim.process_alive(broker));
    }
    // gnome-shell's end took its session's devices with it, the iGPU's too.
    assert!(sim.process_fds(logind).is_empty());
    assert!(sim.process_fds(manager).is_empty());
    assert_eq!(sim.driver("0000:03:00.0").as_deref(), Some("vfio-pci"));
}

#[test]
fn a_session_that_keeps_the_card_fails_the_detach_and_logind_is_left_alone() {
    let sim = fixtures::amd_with_audio();
    // A session the display manager does not own (a compositor started from a text console)
    // whose compositor pitcrew cannot see: logind keeps its card open.
    let logind = sim.spawn(
        &unit_cgroup("systemd-logind.service"),
        ProcessTemplate::new("systemd-logind").holds("/dev/dri/card1"),
    );
    let err = detach(&sim, &["03:00.0"]).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "systemd-logind (pid {logind}) still holds /dev/dri/card1 for a login session after 2s"
        )) && err.contains("loginctl list-sessions")
            && err.contains("pitcrew keep-off"),
        "{err}"
    );
    assert!(signals_to(&sim, logind).is_empty());
    assert!(sim.process_alive(logind));
    assert_eq!(sim.driver("0000:03:00.0").as_deref(), Some("amdgpu"));
    assert!(
        sim.unit_active("gdm"),
        "the display manager was not brought back"
    );
}

#[test]
fn logind_opening_the_card_after_the_plan_is_waited_for_not_ended() {
    let sim = fixtures::radeon_beside_the_desktop();
    sim.spawn_on_write(
        "/sys/bus/pci/devices/0000:03:00.1/driver_override",
        &unit_cgroup("systemd-logind.service"),
        ProcessTemplate::new("systemd-logind").holds("/dev/dri/card1"),
    );
    let err = detach(&sim, &["03:00.0"]).unwrap_err().to_string();
    assert!(err.contains("for a login session"), "{err}");
    let logind = sim.pids_of("systemd-logind");
    assert_eq!(logind.len(), 1, "{logind:?}");
    assert!(signals_to(&sim, logind[0]).is_empty());
    assert_eq!(sim.driver("0000:03:00.0").as_deref(), Some("amdgpu"));
}

#[test]
fn a_users_process_named_after_a_broker_is_ended_like_any_holder() {
    let sim = fixtures::radeon_beside_the_desktop();
    let mut fakes = Vec::new();
    for name in ["systemd-logind", "seatd", "systemd"] {
        fakes.push(sim.spawn(
            SESSION_SCOPE,
            ProcessTemplate::new(name).holds("/dev/dri/card1"),
        ));
    }
    // A user unit of logind's name (~/.config/systemd/user/systemd-logind.service).
    fakes.push(sim.spawn(
        "/user.slice/user-1000.slice/user@1000.service/app.slice/systemd-logind.service",
        ProcessTemplate::new("sleep").holds("/dev/dri/card1"),
    ));
    let plan = detach(&sim, &["03:00.0"]).unwrap().plan.to_string();
    for pid in fakes {
        assert!(
            plan.contains(&format!("end process {pid} (")),
            "{pid} not ended in\n{plan}"
        );
        assert_eq!(signals_to(&sim, pid), [Signal::Term]);
    }
    assert!(!plan.contains("wait for"), "{plan}");
    assert_eq!(sim.driver("0000:03:00.0").as_deref(), Some("vfio-pci"));
}

#[test]
fn a_holders_name_and_arguments_reach_no_terminal_raw() {
    let sim = fixtures::radeon_beside_the_desktop();
    let pid = sim.spawn(
        SESSION_SCOPE,
        ProcessTemplate::new("x\u{1b}]0;pwn\u{7}\nGPU 0")
            .cmdline(&["game", "--title=\u{1b}[2J\r\nLent by pitcrew: nothing"])
            .holds("/dev/dri/card1"),
    );
    let text = status(&sim, &[]);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(
        text.contains(&format!(
            "held by pid {pid} (x\\u{{1b}}]0;pwn\\u{{7}}\\nGPU 0)"
        )),
        "{text}"
    );
    let json = status(&sim, &["--json"]);
    assert!(!json.contains("\\u001b"), "{json}");
    assert!(json.contains("\\\\r\\\\nLent by pitcrew"), "{json}");
    let plan = detach(&sim, &["03:00.0"]).unwrap().plan.to_string();
    assert!(
        !plan.contains('\u{1b}') && !plan.contains("\nGPU 0"),
        "{plan}"
    );
}

#[test]
fn a_user_unit_named_like_the_display_manager_is_not_the_desktop() {
    let sim = fixtures::radeon_beside_the_desktop();
    let fake = sim.spawn(
        "/user.slice/user-1000.slice/user@1000.service/app.slice/lightdm.service",
        ProcessTemplate::new("sleep").holds("/dev/dri/card1"),
    );
    let plan = detach(&sim, &["03:00.0"]).unwrap().plan.to_string();
    assert!(!plan.contains("stop lightdm"), "{plan}");
    assert!(
        plan.contains(&format!(
            "end process {fake} (sleep) holding /dev/dri/card1"
        )),
        "{plan}"
    );
    assert!(sim.unit_active("lightdm"));
    assert!(!sim.process_alive(fake));
}
