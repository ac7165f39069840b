//! The files under /run/pitcrew another run left (the state record, a hook's request): any
//! content loads or is refused with one bounded line, and what loads saves back to itself.

use crate::rng::Rng;
use crate::{one_bounded_line, outcome_of, Target};
use pitcrew::{devices_for_vm, Config, Host, Record};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

pub struct RunFiles {
    _dir: tempfile::TempDir,
    host: Host,
    config: Config,
}

impl RunFiles {
    pub fn new() -> RunFiles {
        let dir = crate::scratch_dir();
        // A staged root: nothing of this machine can change.
        let host = Host::real(dir.path());
        std::fs::create_dir_all(host.path("/run/pitcrew/vm")).expect("the request directory");
        RunFiles {
            _dir: dir,
            host,
            config: Config::default(),
        }
    }

    fn paths(&self) -> [PathBuf; 2] {
        [
            self.host.path("/run/pitcrew/state.json"),
            self.host.path("/run/pitcrew/vm/win11.json"),
        ]
    }
}

const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"lent\"",
    "\"unloaded_modules\"",
    "\"stopped_units\"",
    "\"driver\"",
    "\"owner\"",
    "\"module\"",
    "\"functions\"",
    "\"vm\"",
    "\"devices\"",
    "\"0000:01:00.0\"",
    "\"01:00.0\"",
    "\"zz\"",
    "null",
    "true",
    "1e999",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"win11\"",
];

impl Target for RunFiles {
    fn name(&self) -> &'static str {
        "state-record"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        vec![
            br#"{"lent":{"0000:01:00.0":{"driver":"nvidia","owner":"win11"}},"unloaded_modules":[{"module":"nvidia","functions":["0000:01:00.0"]}],"stopped_units":["lightdm.service"]}"#.to_vec(),
            br#"{"vm":"win11","devices":["0000:01:00.0","0000:01:00.1"]}"#.to_vec(),
            b"{}".to_vec(),
        ]
    }

    fn dictionary(&self) -> &'static [&'static str] {
        PIECES
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let mut text = String::new();
        for _ in 0..rng.size(40) {
            text.push_str(rng.pick::<&str>(PIECES));
        }
        text.into_bytes()
    }

    fn check(&mut self, input: &[u8]) -> Result<String, String> {
        for path in &self.paths() {
            std::fs::write(path, input).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let loaded = match Record::load(&self.host) {
            Ok(record) => {
                let text = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
                let again: Record = serde_json::from_slice(&text)
                    .map_err(|e| format!("a loaded record does not read back: {e}"))?;
                if again != record {
                    return Err("a loaded record changes when saved".into());
                }
                "ok".to_string()
            }
            Err(e) => {
                let message = e.to_string();
                one_bounded_line("state record error", &message, 1024)?;
                outcome_of(&message)
            }
        };
        let requested = match devices_for_vm(&self.host, &self.config, "win11") {
            Ok(devices) => format!("ok {}", devices.len().min(2)),
            Err(e) => {
                let message = e.to_string();
                one_bounded_line("request error", &message, 1024)?;
                outcome_of(&message)
            }
        };
        Ok(format!("{loaded} / {requested}"))
    }
}
