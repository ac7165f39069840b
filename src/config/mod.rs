//! `/etc/pitcrew/pitcrew.toml`: which VMs pitcrew manages, their devices and how a handover
//! treats them. Every refusal names the file, the line and what to change.

mod perms;
pub(crate) use perms::MAX_BYTES as MAX_CONFIG_BYTES;
mod values;

use crate::bdf::Bdf;
use crate::host::Host;
use crate::policy::{DisplayManagerPolicy, Policy};
use crate::tuning::{LendTuning, Tuning};
use crate::vm::VmName;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use values::{RebarValue, ResetValue, Seconds, VmKey};

pub const CONFIG_PATH: &str = "/etc/pitcrew/pitcrew.toml";

/// The unit template's TimeoutStartSec/TimeoutStopSec: the hard ceiling systemd enforces.
/// A VM's `unit_timeout` must leave the hook [`HOOK_MARGIN`] below it.
pub const UNIT_CEILING: Duration = Duration::from_secs(300);
/// How much longer than `unit_timeout` the hook waits for `systemctl start` before giving up;
/// under OpenRC, how long it gives the instance's processes to roll back after SIGTERM.
pub const HOOK_MARGIN: Duration = Duration::from_secs(15);

type TermTimeout = Seconds<1, 60>;
type StepTimeout = Seconds<1, 120>;
type UnitTimeout = Seconds<10, { UNIT_CEILING.as_secs() - HOOK_MARGIN.as_secs() }>;

#[derive(Debug, thiserror::Error)]
/// Why the config cannot be used.
pub enum ConfigError {
    #[error("{path}: no such file; create it (see /usr/share/doc/pitcrew/examples/pitcrew.toml) or run `pitcrew install --vm NAME`", path = .path.display())]
    /// There is no config file.
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    #[error("{path}: cannot read it: {cause}", path = .path.display(), cause = crate::untrusted::cause(.path, .source))]
    /// It exists but cannot be read.
    Unreadable {
        /// The config file.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}", path = .path.display())]
    /// It is not valid TOML or has a bad value.
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The 1-based line of the problem.
        line: usize,
        /// What is wrong there.
        reason: String,
    },
    #[error("{path}: refused because {reason}", path = .path.display())]
    /// Others could change it.
    Insecure {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with its owner or mode.
        reason: String,
    },
}

/// Settings that a `[vm."name"]` table may override; unset ones fall back to `[defaults]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    reattach: Option<bool>,
    display_manager: Option<DisplayManagerPolicy>,
    inhibit_sleep: Option<bool>,
    term_timeout: Option<TermTimeout>,
    step_timeout: Option<StepTimeout>,
    unit_timeout: Option<UnitTimeout>,
    rebar: Option<RebarValue>,
    rebar_required: Option<bool>,
    reset_method: Option<ResetValue>,
}

/// A `[vm."name".device."<address>"]` table: what a lend changes on that one function.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceTable {
    rebar: Option<RebarValue>,
    rebar_required: Option<bool>,
    reset_method: Option<ResetValue>,
}

impl DeviceTable {
    /// `base` with what this table sets.
    fn over(&self, base: &Tuning) -> Tuning {
        Tuning {
            rebar: self.rebar.map_or(base.rebar, |v| v.0),
            rebar_required: self.rebar_required.unwrap_or(base.rebar_required),
            reset_method: self
                .reset_method
                .clone()
                .map_or_else(|| base.reset_method.clone(), |v| v.0),
        }
    }
}

/// A `[vm."name"]` table: the settings plus the devices (serde's flatten does not combine with
/// deny_unknown_fields, hence the repetition).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VmTable {
    devices: Option<Vec<Bdf>>,
    reattach: Option<bool>,
    display_manager: Option<DisplayManagerPolicy>,
    inhibit_sleep: Option<bool>,
    term_timeout: Option<TermTimeout>,
    step_timeout: Option<StepTimeout>,
    unit_timeout: Option<UnitTimeout>,
    rebar: Option<RebarValue>,
    rebar_required: Option<bool>,
    reset_method: Option<ResetValue>,
    device: Option<BTreeMap<Bdf, DeviceTable>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    auto: bool,
    #[serde(default)]
    defaults: Settings,
    #[serde(default)]
    vm: BTreeMap<VmKey, VmTable>,
}

/// What pitcrew does for one VM, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// Devices named in the config; empty means "the GPUs in the domain XML".
    pub devices: Vec<Bdf>,
    /// Give the devices back to the host when the VM stops.
    pub reattach: bool,
    /// How a handover for this VM treats what stands in its way.
    pub policy: Policy,
    /// How long the whole detach may take; the hook waits this plus [`HOOK_MARGIN`].
    pub unit_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// The whole config file, defaults applied to every VM table.
pub struct Config {
    /// Also manage VMs that are not listed when their XML passes a GPU through.
    pub auto: bool,
    /// What VMs without a table of their own get (the `[defaults]` table).
    pub defaults: VmConfig,
    /// The VMs the config lists, each with its settings.
    pub vms: BTreeMap<VmName, VmConfig>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            auto: false,
            defaults: VmConfig {
                devices: Vec::new(),
                reattach: true,
                policy: Policy::default(),
                unit_timeout: Duration::from_secs(120),
            },
            vms: BTreeMap::new(),
        }
    }
}

/// The header of a VM's table, `[vm."<name>"]`, the name quoted by the toml crate itself so any
/// name libvirt allows reads back as exactly that name.
pub fn vm_table_header(name: &str) -> String {
    // The serializer quotes keys as keys (a string value may come out as a multi-line literal,
    // which is no key); an empty table prints as its header alone.
    let table = BTreeMap::from([("vm", BTreeMap::from([(name, toml::Table::new())]))]);
    toml::to_string(&table)
        .expect("a table with a string key serializes")
        .trim()
        .to_string()
}

impl Config {
    /// Reads the config of `host`; `Ok(None)` when there is none (nothing is managed).
    pub fn load(host: &Host) -> Result<Option<Config>, ConfigError> {
        let path = host.path(CONFIG_PATH);
        let bytes = match perms::read_trusted(host, &path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(perms::Refusal::Unreadable(source)) => {
                return Err(ConfigError::Unreadable { path, source })
            }
            Err(perms::Refusal::Insecure(reason)) => {
                return Err(ConfigError::Insecure { path, reason })
            }
        };
        let text = String::from_utf8(bytes).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            line: line_of_bytes(e.as_bytes(), e.utf8_error().valid_up_to()),
            reason: "not UTF-8 text: save it as UTF-8".into(),
        })?;
        Config::parse(&text, &path).map(Some)
    }

    /// Like [`Config::load`], for commands that cannot work without a config.
    pub fn load_required(host: &Host) -> Result<Config, ConfigError> {
        Config::load(host)?.ok_or_else(|| ConfigError::Missing {
            path: host.path(CONFIG_PATH),
        })
    }

    /// Parses config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: e.span().map(|span| line_of(text, span.start)).unwrap_or(1),
            // toml quotes the offending value verbatim (an unknown variant, say): one short line.
            reason: crate::text::one_line(e.message().trim(), 300),
        })?;
        let base = Config::default().defaults;
        let defaults = resolve(
            &base,
            None,
            file.defaults.reattach,
            file.defaults.display_manager,
            file.defaults.inhibit_sleep,
            [
                file.defaults.term_timeout.map(|s| s.duration()),
                file.defaults.step_timeout.map(|s| s.duration()),
                file.defaults.unit_timeout.map(|s| s.duration()),
            ],
            lend_tuning(
                &base.policy.tuning.all,
                &DeviceTable {
                    rebar: file.defaults.rebar,
                    rebar_required: file.defaults.rebar_required,
                    reset_method: file.defaults.reset_method,
                },
                None,
            ),
        );
        let vms = file
            .vm
            .into_iter()
            .map(|(VmKey(name), t)| {
                let timeouts = [
                    t.term_timeout.map(|s| s.duration()),
                    t.step_timeout.map(|s| s.duration()),
                    t.unit_timeout.map(|s| s.duration()),
                ];
                let vm = resolve(
                    &defaults,
                    t.devices,
                    t.reattach,
                    t.display_manager,
                    t.inhibit_sleep,
                    timeouts,
                    lend_tuning(
                        &defaults.policy.tuning.all,
                        &DeviceTable {
                            rebar: t.rebar,
                            rebar_required: t.rebar_required,
                            reset_method: t.reset_method,
                        },
                        t.device,
                    ),
                );
                (name, vm)
            })
            .collect();
        Ok(Config {
            auto: file.auto,
            defaults,
            vms,
        })
    }

    /// The VM's settings when the config lists it.
    pub fn listed(&self, name: &VmName) -> Option<&VmConfig> {
        self.vms.get(name)
    }

    /// The VM's settings: its own table, or the defaults for a VM managed through `auto`.
    pub fn for_vm(&self, name: &VmName) -> &VmConfig {
        self.vms.get(name).unwrap_or(&self.defaults)
    }
}

/// The handover policy for `name`: its own table, else `[defaults]`.
pub fn policy_for_vm(config: &Config, name: &VmName) -> Policy {
    config.for_vm(name).policy.clone()
}

/// A table's tuning over `base`, and each of its device tables over that.
fn lend_tuning(
    base: &Tuning,
    table: &DeviceTable,
    devices: Option<BTreeMap<Bdf, DeviceTable>>,
) -> LendTuning {
    let all = table.over(base);
    LendTuning {
        devices: devices
            .into_iter()
            .flatten()
            .map(|(bdf, device)| (bdf, device.over(&all)))
            .collect(),
        all,
    }
}

fn resolve(
    base: &VmConfig,
    devices: Option<Vec<Bdf>>,
    reattach: Option<bool>,
    display_manager: Option<DisplayManagerPolicy>,
    inhibit_sleep: Option<bool>,
    [term, step, unit]: [Option<Duration>; 3],
    tuning: LendTuning,
) -> VmConfig {
    VmConfig {
        devices: devices.unwrap_or_else(|| base.devices.clone()),
        reattach: reattach.unwrap_or(base.reattach),
        policy: Policy {
            display_manager: display_manager.unwrap_or(base.policy.display_manager),
            term_timeout: term.unwrap_or(base.policy.term_timeout),
            step_timeout: step.unwrap_or(base.policy.step_timeout),
            inhibit_sleep: inhibit_sleep.unwrap_or(base.policy.inhibit_sleep),
            tuning,
        },
        unit_timeout: unit.unwrap_or(base.unit_timeout),
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    line_of_bytes(text.as_bytes(), offset)
}

fn line_of_bytes(bytes: &[u8], offset: usize) -> usize {
    let offset = offset.min(bytes.len());
    bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}
