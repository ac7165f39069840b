//! The emulated machines and one QEMU boot: console to a log file, results from the guest's
//! ttyS1 read live over a pipe, a whole-run timeout.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A QEMU device set. Scenario scripts name theirs with a `# machine: <name>` line.
pub struct Machine {
    pub name: &'static str,
    pub iommu: bool,
    pub devices: &'static [&'static str],
    pub memory_mb: u32,
    pub firmware: Firmware,
    /// Kernel command line words for the guest's init (which host drivers it loads).
    pub params: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS, QEMU's default: no firmware frame buffer.
    Bios,
    /// OVMF (Debian's `ovmf`): the kernel boots through its EFI stub and gets the firmware's
    /// frame buffer (efifb) on the GPU, as a UEFI desktop does.
    Uefi,
}

/// OVMF's single-file image (code and volatile variables), as QEMU's -bios takes it.
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

/// The GPU (00:03.0, bochs-display, no VGA) with its audio function (00:03.1) in one slot, and
/// a PCIe root port (00:05.0, a bridge). No boot VGA: the GPU is the only bochs device.
const GPU_WITH_AUDIO: [&str; 3] = [
    "bochs-display,bus=pcie.0,addr=0x3.0,multifunction=on",
    "intel-hda,bus=pcie.0,addr=0x3.1",
    "pcie-root-port,id=rp1,bus=pcie.0,addr=0x5.0,chassis=1",
];

/// The same with a codec (hda-duplex) on the audio function, so it has a sound card with
/// control, PCM and hwdep nodes, as every real GPU's HDMI audio does.
const GPU_WITH_CODEC: [&str; 4] = [
    GPU_WITH_AUDIO[0],
    "intel-hda,id=hda0,bus=pcie.0,addr=0x3.1",
    "hda-duplex,bus=hda0.0,audiodev=noaudio",
    GPU_WITH_AUDIO[2],
];

/// The GPU's slot with a third function, an e1000e NIC (00:03.2). Linux gives it an IOMMU group
/// of its own: on the root bus it is an Intel root-complex integrated endpoint, which the
/// kernel's ACS quirk for Intel RCiEPs treats as isolated, while bochs-display and intel-hda
/// (conventional PCI, no ACS) share one. One slot, two groups, as on boards whose GPU audio or
/// USB-C function sits apart. A second e1000e sits behind the root port (01:00.0): alone on its
/// bus, a secondary bus reset can reset it, so the kernel lists two reset methods for it (`pm
/// bus`) where the functions of the root bus have `pm` or none.
const SPLIT_SLOT: [&str; 5] = [
    GPU_WITH_AUDIO[0],
    GPU_WITH_AUDIO[1],
    "e1000e,bus=pcie.0,addr=0x3.2",
    GPU_WITH_AUDIO[2],
    "e1000e,bus=rp1,addr=0x0",
];

/// The GPU with its audio plus a second bochs-display at 04.0 (own group, same driver).
const TWO_GPUS: [&str; 4] = [
    GPU_WITH_AUDIO[0],
    GPU_WITH_AUDIO[1],
    GPU_WITH_AUDIO[2],
    "bochs-display,bus=pcie.0,addr=0x4.0",
];

/// The GPU with its codec as above; the desktop's own card at 04.0 is a virtio-gpu, which (unlike
/// bochs) imports PRIME buffers, as wlroots requires of the card it draws on.
const FULL_STACK: [&str; 5] = [
    GPU_WITH_CODEC[0],
    GPU_WITH_CODEC[1],
    GPU_WITH_CODEC[2],
    GPU_WITH_CODEC[3],
    "virtio-gpu-pci,bus=pcie.0,addr=0x4.0",
];

/// The GNOME and Plasma stack's two cards, both virtio-gpu: the one to lend (00:03.0) has a
/// render node, as every real GPU does and bochs has not, and its audio function with a codec;
/// the desktop's own card is at 04.0. Both virtual, as GDM wants them (it falls back to Xorg when
/// virtual and non-virtual cards are mixed).
const DESKTOPS: [&str; 4] = [
    "virtio-gpu-pci,bus=pcie.0,addr=0x3.0,multifunction=on",
    GPU_WITH_CODEC[1],
    GPU_WITH_CODEC[2],
    "virtio-gpu-pci,bus=pcie.0,addr=0x4.0",
];

pub static MACHINES: &[Machine] = &[
    Machine {
        name: "one-gpu",
        iommu: true,
        devices: &GPU_WITH_CODEC,
        memory_mb: 1024,
        firmware: Firmware::Bios,
        params: "",
    },
    Machine {
        name: "two-gpus",
        iommu: true,
        devices: &TWO_GPUS,
        memory_mb: 1024,
        firmware: Firmware::Bios,
        params: "",
    },
    Machine {
        name: "split-slot",
        iommu: true,
        devices: &SPLIT_SLOT,
        memory_mb: 1024,
        firmware: Firmware::Bios,
        params: "",
    },
    Machine {
        name: "no-iommu",
        iommu: false,
        devices: &GPU_WITH_AUDIO,
        memory_mb: 1024,
        firmware: Firmware::Bios,
        params: "",
    },
    // The host's only GPU on a UEFI machine: the firmware draws on the emulated GPU (its only
    // display), so the kernel starts with efifb and fbcon on it, and bochs replaces efifb.
    Machine {
        name: "uefi-one-gpu",
        iommu: true,
        devices: &GPU_WITH_CODEC,
        memory_mb: 1024,
        firmware: Firmware::Uefi,
        params: "",
    },
    // The same machine where no driver takes the GPU (bochs is not loaded): efifb and fbcon stay
    // on it, as beside a driver without a frame buffer of its own (NVIDIA without fbdev).
    Machine {
        name: "uefi-firmware-fb",
        iommu: true,
        devices: &GPU_WITH_CODEC,
        memory_mb: 1024,
        firmware: Firmware::Uefi,
        params: "pitcrew.host_modules=snd-hda-codec-generic,snd-hda-intel",
    },
    // The full stack (cargo xtask full-test): Debian with systemd, libvirtd, LightDM and a nested
    // libvirt guest, booted from a disk image. The second display (04.0) is the "integrated GPU"
    // the desktop comes back on while the GPU is lent.
    Machine {
        name: "full-stack",
        iommu: true,
        devices: &FULL_STACK,
        memory_mb: 3072,
        firmware: Firmware::Bios,
        params: "",
    },
    Machine {
        name: "full-desktops",
        iommu: true,
        devices: &DESKTOPS,
        memory_mb: 4096,
        firmware: Firmware::Bios,
        params: "",
    },
];

pub fn machine(name: &str) -> Result<&'static Machine> {
    MACHINES.iter().find(|m| m.name == name).with_context(|| {
        let known: Vec<_> = MACHINES.iter().map(|m| m.name).collect();
        format!("unknown machine {name:?} (known: {})", known.join(", "))
    })
}

pub struct Boot<'a> {
    pub machine: &'a Machine,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    /// Extra kernel command line (pitcrew.* parameters for the guest's init).
    pub params: String,
    pub console_log: &'a Path,
    pub timeout: Duration,
    /// `-drive` specifications, in order (the first is /dev/vda).
    pub drives: &'a [String],
}

pub struct Outcome {
    pub finished: bool,
}

/// Boots, hands every results line to `on_line` as it arrives, and returns when QEMU exits or
/// the timeout passes (then QEMU is killed). `finished` tells whether the guest said DONE.
pub fn boot(b: &Boot, mut on_line: impl FnMut(&str)) -> Result<Outcome> {
    let mut append = String::from("console=ttyS0 quiet panic=-1");
    if b.machine.iommu {
        append.push_str(" intel_iommu=on iommu=pt");
    }
    for words in [b.machine.params, &b.params] {
        if !words.is_empty() {
            append.push(' ');
            append.push_str(words);
        }
    }

    let mut cmd = Command::new("qemu-system-x86_64");
    let memory = b.machine.memory_mb.to_string();
    cmd.args(["-machine", "q35,accel=tcg", "-m", &memory, "-smp", "2"])
        .args([
            "-display", "none", "-vga", "none", "-monitor", "none", "-nic", "none",
        ])
        // A codec plays into nothing instead of the host's sound system.
        .args(["-audiodev", "none,id=noaudio"])
        .args(["-no-reboot", "-serial"])
        .arg(format!("file:{}", b.console_log.display()))
        .args(["-serial", "stdio"]);
    if b.machine.firmware == Firmware::Uefi {
        cmd.args(["-bios", OVMF]);
    }
    if b.machine.iommu {
        cmd.args(["-device", "intel-iommu,intremap=on,caching-mode=on"]);
    }
    for d in b.machine.devices {
        cmd.args(["-device", d]);
    }
    for d in b.drives {
        cmd.args(["-drive", d]);
    }
    cmd.arg("-kernel")
        .arg(b.kernel)
        .arg("-initrd")
        .arg(b.initrd)
        .arg("-append")
        .arg(&append)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());

    let start = Instant::now();
    let mut child = cmd.spawn().context("starting qemu-system-x86_64")?;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        while r
            .read_until(b'\n', &mut buf)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            let line = without_escapes(&String::from_utf8_lossy(&buf));
            if tx
                .send(line.trim_end_matches(['\r', '\n']).to_string())
                .is_err()
            {
                break;
            }
            buf.clear();
        }
    });

    let deadline = start + b.timeout;
    let mut finished = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if line.trim() == "DONE" {
                    finished = true;
                }
                on_line(&line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!(
                    "xtask: the {} boot did not finish within {} s; QEMU killed (console: {})",
                    b.machine.name,
                    b.timeout.as_secs(),
                    b.console_log.display()
                );
                return Ok(Outcome { finished: false });
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!(
            "qemu-system-x86_64 failed ({status}); console: {}",
            b.console_log.display()
        );
    }
    let elapsed = start.elapsed();
    eprintln!(
        "xtask: {} boot took {:.1} s{}",
        b.machine.name,
        elapsed.as_secs_f64(),
        if finished {
            String::new()
        } else {
            format!(
                ", guest never reported DONE (console: {})",
                b.console_log.display()
            )
        }
    );
    Ok(Outcome { finished })
}

/// The line without terminal control sequences (ESC [ ... final byte): OVMF clears the screen on
/// every serial port, which would otherwise sit in front of the guest's first results line.
fn without_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn firmware_screen_control_is_dropped() {
        let line = "\u{1b}[2J\u{1b}[01;01H\u{1b}[=3h\u{1b}[2J\u{1b}[01;01HRESULT a PASS b";
        assert_eq!(super::without_escapes(line), "RESULT a PASS b");
    }
}
