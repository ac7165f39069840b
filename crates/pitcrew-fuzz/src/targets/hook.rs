//! libvirt's hook call: any argv, config and XML end in exit 0, 1 or 2 with at most one bounded
//! line; only the three ops pitcrew acts on do anything; the only commands are systemctl on the
//! VM's escaped unit; the only file written is that VM's request under /run/pitcrew/vm.

use super::xml::{domain_xml, XML_TOKENS};
use crate::rng::Rng;
use crate::{one_bounded_line, outcome_of, Target};
use pitcrew::{hook, CmdOutput, Effects, HookArgs, Host, Process, VmName, MAX_MESSAGE};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records the commands; whether they succeed is part of the input.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<Vec<String>>>,
    fail: Mutex<bool>,
}

impl Effects for Recorder {
    fn write(&self, path: &Path, _: &str, _: Duration) -> io::Result<()> {
        panic!("the hook wrote {}", path.display())
    }
    fn run(&self, program: &str, args: &[&str], _: Duration) -> io::Result<CmdOutput> {
        let mut call = vec![program.to_string()];
        call.extend(args.iter().map(|a| a.to_string()));
        self.calls.lock().unwrap().push(call);
        Ok(CmdOutput {
            success: !*self.fail.lock().unwrap(),
            ..CmdOutput::default()
        })
    }
    fn process(&self, pid: u32) -> io::Result<Box<dyn Process>> {
        panic!("the hook looked up pid {pid}")
    }
    fn spawn(&self, program: &str, _: &[&str]) -> io::Result<u32> {
        panic!("the hook started {program}")
    }

    fn reserve_audio(&self, request: &pitcrew::ReserveRequest, _: Duration) -> io::Result<String> {
        panic!("the hook reserved ALSA card {}", request.card)
    }
}

pub struct HookArgv {
    dir: tempfile::TempDir,
    host: Host,
    effects: Arc<Recorder>,
}

impl HookArgv {
    pub fn new() -> HookArgv {
        let dir = crate::scratch_dir();
        let effects = Arc::new(Recorder::default());
        let host = Host::new(dir.path(), effects.clone());
        let class = host.path("/sys/bus/pci/devices/0000:01:00.0/class");
        std::fs::create_dir_all(class.parent().unwrap()).unwrap();
        std::fs::write(&class, "0x030000\n").unwrap();
        std::fs::create_dir_all(host.path("/etc/pitcrew")).unwrap();
        for dir in [dir.path(), &host.path("/etc"), &host.path("/etc/pitcrew")] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        HookArgv { dir, host, effects }
    }
}

const OPS: &[(&str, &str)] = &[
    ("prepare", "begin"),
    ("release", "end"),
    ("migrate", "begin"),
    ("start", "begin"),
    ("started", "begin"),
    ("stopped", "end"),
    ("restore", "begin"),
    ("reconnect", "begin"),
    ("attach", "begin"),
    ("prepare", "end"),
    ("-", "-"),
];
const CONFIGS: &[&str] = &[
    "auto = true\n",
    "[vm.win11]\n",
    "[vm.win11]\ndevices = [\"01:00.0\"]\nreattach = false\n",
    "[vm.\"gpu-vm\"]\ndevices = [\"01:00.0\"]\n",
    "auto = true\n[defaults]\nreattach = false\n",
    "auto = maybe\n",
    "",
];
const DOMAINS: &[&str] = &[
    "win11",
    "gpu-vm",
    "a/b",
    "..",
    "-rf",
    "x\ny",
    "$(reboot)",
    "",
];

impl Target for HookArgv {
    fn name(&self) -> &'static str {
        "hook-argv"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let mut rng = Rng::new(2);
        (0..8).map(|_| self.clone_generate(&mut rng)).collect()
    }

    fn dictionary(&self) -> &'static [&'static str] {
        XML_TOKENS
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        self.clone_generate(rng)
    }

    fn check(&mut self, input: &[u8]) -> Result<String, String> {
        let text = super::text(input);
        let mut fields = text.splitn(7, '\0');
        let mut next = || fields.next().unwrap_or("").to_string();
        let (domain, op, subop, extra, fail, config, xml) =
            (next(), next(), next(), next(), next(), next(), next());
        std::fs::write(self.host.path("/etc/pitcrew/pitcrew.toml"), &config).unwrap();
        let _ = std::fs::remove_dir_all(self.host.path("/run"));
        self.effects.calls.lock().unwrap().clear();
        *self.effects.fail.lock().unwrap() = fail == "fail";
        let args = HookArgs {
            vm: domain.clone(),
            op: op.clone(),
            subop: subop.clone(),
            extra: (!extra.is_empty()).then_some(extra),
        };
        let reply = hook(&self.host, &args, &mut xml.as_bytes());
        if !(0..=2).contains(&reply.code) {
            return Err(format!("exit code {}", reply.code));
        }
        if let Some(message) = &reply.message {
            one_bounded_line("hook message", message, MAX_MESSAGE)?;
            if !message.starts_with("pitcrew: ") {
                return Err(format!("message without the pitcrew prefix: {message}"));
            }
        } else if reply.code != 0 {
            return Err("a failure without a message".into());
        }
        let acts = matches!(
            (op.as_str(), subop.as_str()),
            ("prepare", "begin") | ("release", "end") | ("migrate", "begin")
        );
        let calls = self.effects.calls.lock().unwrap().clone();
        if !acts && (reply.code != 0 || reply.message.is_some() || !calls.is_empty()) {
            return Err(format!(
                "{op} {subop} is none of pitcrew's business but did something"
            ));
        }
        let unit = VmName::parse(&domain).map(|vm| vm.unit_name());
        for call in &calls {
            let expected_unit = unit
                .as_ref()
                .map_err(|_| format!("{call:?} for an invalid name"))?;
            let shape = [
                vec!["systemctl", "start", "--", expected_unit.as_str()],
                vec![
                    "systemctl",
                    "stop",
                    "--no-block",
                    "--",
                    expected_unit.as_str(),
                ],
            ];
            if !shape.iter().any(|s| s == call) {
                return Err(format!("unexpected command {call:?}"));
            }
        }
        self.written_files_are_expected(&domain)?;
        let message = reply.message.as_deref().unwrap_or("");
        Ok(format!(
            "{} {} {}",
            reply.code,
            calls.len(),
            outcome_of(message)
        ))
    }
}

impl HookArgv {
    fn clone_generate(&self, rng: &mut Rng) -> Vec<u8> {
        let (op, subop) = rng.pick(OPS);
        let extra = rng.pick(&["", "-", "failed"]);
        let fail = rng.pick(&["", "fail"]);
        let xml = domain_xml(rng);
        [
            *rng.pick(DOMAINS),
            op,
            subop,
            extra,
            fail,
            *rng.pick(CONFIGS),
            &xml,
        ]
        .join("\0")
        .into_bytes()
    }

    /// Nothing but `run/pitcrew/vm/<escaped name>.json` may appear under /run.
    fn written_files_are_expected(&self, domain: &str) -> Result<(), String> {
        let run = self.dir.path().join("run");
        let mut found = Vec::new();
        let mut stack = vec![run.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    found.push(path);
                }
            }
        }
        let allowed = VmName::parse(domain)
            .ok()
            .map(|vm| run.join(format!("pitcrew/vm/{}.json", vm.escaped())));
        match found.as_slice() {
            [] => Ok(()),
            [one] if Some(one) == allowed.as_ref() => Ok(()),
            other => Err(format!("the hook for {domain:?} left {other:?}")),
        }
    }
}
