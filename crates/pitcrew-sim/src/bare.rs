//! A bare host for tests that need no simulated kernel (the hook, the config, the installer): a
//! temp-dir root holding only the files a test puts there, and a command runner that records
//! calls instead of running them.

use pitcrew::{CmdOutput, Effects, Host, Process, Signal};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a `systemctl start` does besides answering: the unit's side effects, such as the
/// reason a failing detach leaves for the hook.
pub type OnStart = Box<dyn FnMut() + Send>;

/// Records every command; answers with `result` (Err(TimedOut) when `time_out`).
#[derive(Default)]
pub struct FakeRunner {
    pub calls: Mutex<Vec<(String, Duration)>>,
    pub fail: bool,
    pub time_out: bool,
    pub on_start: Mutex<Option<OnStart>>,
    /// Every signal sent, by pid.
    pub signals: Arc<Mutex<Vec<(u32, Signal)>>>,
}

/// A process the fake runner hands out: it records the signals it gets and has always exited.
struct GoneProcess {
    pid: u32,
    signals: Arc<Mutex<Vec<(u32, Signal)>>>,
}

impl Process for GoneProcess {
    fn signal(&self, signal: Signal) -> io::Result<()> {
        self.signals.lock().unwrap().push((self.pid, signal));
        Ok(())
    }
    fn wait_exit(&self, _timeout: Duration) -> io::Result<bool> {
        Ok(true)
    }
}

impl FakeRunner {
    pub fn calls(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.0.clone())
            .collect()
    }
}

impl Effects for FakeRunner {
    fn write(&self, path: &Path, value: &str, _limit: Duration) -> io::Result<()> {
        panic!("unexpected sysfs write {} <- {value}", path.display())
    }
    fn run(&self, program: &str, args: &[&str], timeout: Duration) -> io::Result<CmdOutput> {
        let line = format!("{program} {}", args.join(" "));
        self.calls.lock().unwrap().push((line, timeout));
        // `systemctl start -- UNIT`, `openrc-run SCRIPT start`.
        let starts = args.iter().take(2).any(|a| *a == "start");
        if starts {
            if let Some(unit_runs) = self.on_start.lock().unwrap().as_mut() {
                unit_runs();
            }
        }
        if self.time_out && starts {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        Ok(CmdOutput {
            success: !self.fail,
            stdout: String::new(),
            stderr: if self.fail {
                "Job failed".into()
            } else {
                String::new()
            },
        })
    }
    /// A process that is already gone: signals are recorded as calls (`kill -TERM 4100`).
    fn process(&self, pid: u32) -> io::Result<Box<dyn Process>> {
        Ok(Box::new(GoneProcess {
            pid,
            signals: self.signals.clone(),
        }))
    }
    fn spawn(&self, program: &str, _args: &[&str]) -> io::Result<u32> {
        panic!("unexpected spawn of {program}")
    }

    fn reserve_audio(
        &self,
        _request: &pitcrew::ReserveRequest,
        _timeout: Duration,
    ) -> io::Result<String> {
        panic!("unexpected sound card reservation")
    }
}

/// Every operation libvirt 9 passes to a QEMU hook, with its sub-operation.
pub const HOOK_OPS: [(&str, &str); 9] = [
    ("prepare", "begin"),
    ("start", "begin"),
    ("started", "begin"),
    ("stopped", "end"),
    ("release", "end"),
    ("migrate", "begin"),
    ("restore", "begin"),
    ("reconnect", "begin"),
    ("attach", "begin"),
];

pub struct TestHost {
    pub dir: tempfile::TempDir,
    pub runner: Arc<FakeRunner>,
    pub host: Host,
}

impl Default for TestHost {
    fn default() -> TestHost {
        TestHost::with_runner(FakeRunner::default())
    }
}

impl TestHost {
    pub fn new() -> TestHost {
        TestHost::default()
    }

    /// A host run by systemd.
    pub fn with_runner(runner: FakeRunner) -> TestHost {
        let t = TestHost::bare(runner);
        std::fs::create_dir_all(t.path("/run/systemd/system")).unwrap();
        t
    }

    /// A host run by OpenRC (`/run/openrc/softlevel`).
    pub fn openrc(runner: FakeRunner) -> TestHost {
        let t = TestHost::bare(runner);
        t.file("/run/openrc/softlevel", "default\n", 0o644);
        t.file("/etc/init.d/pitcrew", "#!/sbin/openrc-run\n", 0o755);
        t
    }

    /// A host that shows no service manager at all.
    pub fn bare(runner: FakeRunner) -> TestHost {
        let dir = tempfile::tempdir().unwrap();
        let runner = Arc::new(runner);
        let host = Host::new(dir.path(), runner.clone());
        TestHost { dir, runner, host }
    }

    pub fn path(&self, absolute: &str) -> PathBuf {
        self.host.path(absolute)
    }

    /// Writes a file with an exact mode, creating 0755 parents.
    pub fn file(&self, absolute: &str, text: &str, mode: u32) {
        let path = self.path(absolute);
        let parent = path.parent().unwrap();
        std::fs::create_dir_all(parent).unwrap();
        // tempdir() makes the root 0700; the config check wants no group/other write only.
        for dir in parent
            .ancestors()
            .take_while(|d| d.starts_with(self.dir.path()))
        {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    pub fn config(&self, text: &str) {
        self.file("/etc/pitcrew/pitcrew.toml", text, 0o644);
    }

    /// A PCI function in sysfs with its class (0x030000 for a VGA controller).
    pub fn pci(&self, bdf: &str, class: &str) {
        self.file(
            &format!("/sys/bus/pci/devices/{bdf}/class"),
            &format!("{class}\n"),
            0o444,
        );
    }

    /// libvirt's `prepare begin` for VM win11 passing 01:00.0 through: the hook's reply.
    pub fn prepare_win11(&self) -> pitcrew::Reply {
        let args = pitcrew::HookArgs {
            vm: "win11".into(),
            op: "prepare".into(),
            subop: "begin".into(),
            extra: None,
        };
        let xml = domain_xml("win11", &[(1, 0, 0)]);
        pitcrew::hook(&self.host, &args, &mut xml.as_bytes())
    }
}

/// A domain XML passing the given PCI addresses through (as libvirt writes it).
pub fn domain_xml(name: &str, hostdevs: &[(u8, u8, u8)]) -> String {
    let devs: String = hostdevs
        .iter()
        .map(|(bus, slot, function)| {
            format!(
                "<hostdev mode='subsystem' type='pci' managed='yes'><source>\
                 <address domain='0x0000' bus='0x{bus:02x}' slot='0x{slot:02x}' function='0x{function:x}'/>\
                 </source><rom bar='off'/></hostdev>"
            )
        })
        .collect();
    format!(
        "<domain type='kvm'><name>{name}</name><memory unit='KiB'>131072</memory>\
         <os><type arch='x86_64' machine='q35'>hvm</type></os>\
         <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>{devs}\
         <hostdev mode='subsystem' type='usb'><source><vendor id='0x1'/><product id='0x2'/></source></hostdev>\
         </devices></domain>"
    )
}
