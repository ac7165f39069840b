//! /etc/pitcrew/pitcrew.toml: any text either parses to settings within their documented ranges
//! or is refused with one bounded line naming the file and line.

use crate::rng::Rng;
use crate::{one_bounded_line, outcome_of, Target};
use pitcrew::{Config, VmName, HOOK_MARGIN, UNIT_CEILING};
use std::path::Path;
use std::time::Duration;

pub struct ConfigText;

const KEYS: &[&str] = &[
    "auto",
    "reattach",
    "display_manager",
    "term_timeout",
    "step_timeout",
    "unit_timeout",
    "devices",
    "nonsense",
];
const VALUES: &[&str] = &[
    "true",
    "false",
    "\"auto\"",
    "\"stop\"",
    "\"never\"",
    "\"keep\"",
    "0",
    "1",
    "10",
    "60",
    "61",
    "120",
    "285",
    "286",
    "-5",
    "9223372036854775807",
    "1.5",
    "\"x\"",
    "[]",
    "[\"0000:01:00.0\"]",
    "[\"01:00.0\", \"02:00.1\"]",
    "[\"zz\"]",
    "{}",
    "1979-05-27",
];
const NAMES: &[&str] = &[
    "win11",
    "\"gpu-vm\"",
    "\"a\\\"b\"",
    "\"\"",
    "\"a/b\"",
    "\"x\\ny\"",
    "'lit'",
    "\"\\u00e9\"",
];

impl Target for ConfigText {
    fn name(&self) -> &'static str {
        "config"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        vec![
            include_bytes!("../../../../dist/pitcrew.toml").to_vec(),
            b"auto = true\n[defaults]\nterm_timeout = 5\n[vm.win11]\ndevices = [\"01:00.0\"]\n"
                .to_vec(),
            b"[vm.\"a\\\"b\"]\nunit_timeout = 285\n".to_vec(),
        ]
    }

    fn dictionary(&self) -> &'static [&'static str] {
        &[
            "[vm.",
            "[defaults]",
            "[[vm]]",
            " = ",
            "\n",
            "\"\"\"",
            "'''",
            "#",
            "[",
            "]",
            "{",
            "}",
            ",",
            "=",
            "auto",
            "devices",
            "unit_timeout",
            "display_manager",
            "\\u0000",
            "\\U0010FFFF",
        ]
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let mut text = String::new();
        let pairs = |rng: &mut Rng, text: &mut String| {
            for _ in 0..rng.size(5) {
                *text += &format!("{} = {}\n", rng.pick(KEYS), rng.pick(VALUES));
            }
        };
        pairs(rng, &mut text);
        for _ in 0..rng.size(4) {
            let table = if rng.one_in(3) {
                "[defaults]".to_string()
            } else {
                format!("[vm.{}]", rng.pick(NAMES))
            };
            text += &format!("{table}\n");
            pairs(rng, &mut text);
        }
        text.into_bytes()
    }

    fn check(&mut self, input: &[u8]) -> Result<String, String> {
        let text = super::text(input);
        match Config::parse(&text, Path::new("/etc/pitcrew/pitcrew.toml")) {
            Ok(config) => {
                for (name, vm) in config
                    .vms
                    .iter()
                    .map(|(n, v)| (Some(n), v))
                    .chain([(None, &config.defaults)])
                {
                    if let Some(name) = name {
                        if VmName::parse(name.as_str()).as_ref() != Ok(name) {
                            return Err(format!("VM key {name:?} would not pass the validator"));
                        }
                    }
                    let p = &vm.policy;
                    let within = |d: Duration, lo: u64, hi: u64| (lo..=hi).contains(&d.as_secs());
                    if !within(p.term_timeout, 1, 60)
                        || !within(p.step_timeout, 1, 120)
                        || vm.unit_timeout + HOOK_MARGIN > UNIT_CEILING
                    {
                        return Err(format!("a timeout outside its range was accepted: {vm:?}"));
                    }
                }
                Ok(format!("ok {}", config.vms.len().min(3)))
            }
            Err(e) => {
                let message = e.to_string();
                one_bounded_line("ConfigError", &message, 1024)?;
                if !message.starts_with("/etc/pitcrew/pitcrew.toml:") {
                    return Err(format!("the message does not name the file: {message}"));
                }
                Ok(outcome_of(&message))
            }
        }
    }
}
