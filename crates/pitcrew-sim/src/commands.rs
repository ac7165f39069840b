//! The commands the engine runs: modprobe and systemctl, with their real messages, and udevadm.

use pitcrew::CmdOutput;

use crate::builder::service_cgroup;
use crate::model::Model;
use crate::render::RELEASE;

fn ok(stdout: &str) -> CmdOutput {
    CmdOutput {
        success: true,
        stdout: stdout.to_string(),
        stderr: String::new(),
    }
}

fn failed(stdout: &str, stderr: String) -> CmdOutput {
    CmdOutput {
        success: false,
        stdout: stdout.to_string(),
        stderr,
    }
}

/// Runs `argv` against the model; an unknown program fails as if it were not installed.
pub(crate) fn run(model: &mut Model, argv: &[String]) -> CmdOutput {
    let program = argv[0].rsplit('/').next().unwrap_or_default();
    let args = &argv[1..];
    match program {
        "modprobe" => modprobe(model, args),
        "systemctl" => systemctl(model, args),
        "openrc-run" => openrc_run(model, args),
        "journalctl" => journalctl(model, args),
        "systemd-inhibit" | "elogind-inhibit" if args.iter().any(|a| a == "--list") => {
            let mut out: String = inhibitors(model).iter().map(|l| format!("{l}\n")).collect();
            if !args.iter().any(|a| a == "--no-legend") {
                out = format!("WHO UID USER PID COMM WHAT WHY MODE\n{out}");
            }
            ok(&out)
        }
        // The rules and the database are the test's to arrange; the call is what is checked.
        "udevadm" => ok(""),
        other => failed("", format!("pitcrew-sim: {other}: command not simulated\n")),
    }
}

/// logind's view: every live `systemd-inhibit` holds the lock its options describe, as
/// `systemd-inhibit --list` prints it (WHO UID USER PID COMM WHAT WHY MODE).
pub(crate) fn inhibitors(model: &Model) -> Vec<String> {
    model
        .processes
        .values()
        .filter(|p| p.alive && (p.comm == "systemd-inhibit" || p.comm == "elogind-inhibit"))
        .map(|p| {
            let option = |name: &str| {
                p.cmdline
                    .iter()
                    .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_string))
                    .unwrap_or_default()
            };
            format!(
                "{} 0 root {} systemd-inhibit {} {} {}",
                option("who"),
                p.pid,
                option("what"),
                option("why"),
                option("mode")
            )
        })
        .collect()
}

fn modprobe(model: &mut Model, args: &[String]) -> CmdOutput {
    let remove = args.iter().any(|a| a == "-r" || a == "--remove");
    let all = args.iter().any(|a| a == "-a" || a == "--all");
    let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if names.is_empty() {
        return failed("", "modprobe: FATAL: Module name not given\n".to_string());
    }
    // Without -r or -a, words after the module name are its parameters.
    let names = if remove || all {
        &names[..]
    } else {
        &names[..1]
    };
    // Like kmod, every name is tried even after one fails, and any failure fails the run.
    let mut errors = String::new();
    for name in names {
        let result = if remove {
            unload(model, name, true)
        } else {
            load(model, name)
        };
        if let Err(message) = result {
            errors.push_str(&format!("modprobe: FATAL: {message}\n"));
        }
    }
    if errors.is_empty() {
        ok("")
    } else {
        failed("", errors)
    }
}

/// modprobe treats `-` and `_` in module names alike.
fn module_key(model: &Model, name: &str) -> Option<String> {
    let wanted = name.replace('-', "_");
    model.modules.keys().find(|k| **k == wanted).cloned()
}

fn load(model: &mut Model, name: &str) -> Result<(), String> {
    let Some(key) = module_key(model, name) else {
        return Err(format!(
            "Module {name} not found in directory /lib/modules/{RELEASE}"
        ));
    };
    if model.modules[&key].loaded {
        return Ok(());
    }
    for pre in model.modules[&key].spec.pre_softdeps.clone() {
        load(model, &pre)?;
    }
    for dep in model.modules[&key].spec.deps.clone() {
        load(model, &dep)?;
    }
    model.mark_loaded(&key);
    // Registering a driver probes every unbound device it matches.
    for driver in model.modules[&key].spec.drivers.clone() {
        model.probe_driver(&driver);
    }
    Ok(())
}

/// Removes `name`, then, as `modprobe -r` does, its dependencies that nothing uses any more;
/// only the module named on the command line (`explicit`) reports why it stays.
fn unload(model: &mut Model, name: &str, explicit: bool) -> Result<(), String> {
    let quiet = |message: String| if explicit { Err(message) } else { Ok(()) };
    let Some(key) = module_key(model, name) else {
        return quiet(format!("Module {name} is not in kernel."));
    };
    let module = &model.modules[&key];
    if !module.loaded {
        return quiet(format!("Module {name} is not in kernel."));
    }
    if module.spec.builtin {
        return quiet(format!("Module {name} is builtin."));
    }
    if model.refcnt(&key) > 0 {
        return quiet(format!("Module {name} is in use."));
    }
    let drivers = module.spec.drivers.clone();
    let deps = module.spec.deps.clone();
    let pre_softdeps = module.spec.pre_softdeps.clone();
    let bound: Vec<String> = model
        .devices
        .values()
        .filter(|d| d.driver.as_ref().is_some_and(|dr| drivers.contains(dr)))
        .map(|d| d.spec.bdf.clone())
        .collect();
    for bdf in bound {
        model.unbind(&bdf);
    }
    if let Some(m) = model.modules.get_mut(&key) {
        m.loaded = false;
    }
    for dep in deps {
        unload(model, &dep, false)?;
    }
    // kmod removes the named module's pre-softdeps last, each if unused, whatever it does
    // with the devices bound to them; one in use stops modprobe with exit 1 (its "Module %s
    // is in use" is logged at LOG_CRIT, which exits), the named module already gone.
    if explicit {
        for pre in pre_softdeps {
            match module_key(model, &pre) {
                Some(key)
                    if model.modules[&key].loaded
                        && !model.modules[&key].spec.builtin
                        && model.refcnt(&key) > 0 =>
                {
                    return Err(format!("Module {key} is in use."));
                }
                _ => unload(model, &pre, false)?,
            }
        }
    }
    Ok(())
}

fn systemctl(model: &mut Model, args: &[String]) -> CmdOutput {
    let quiet = args.iter().any(|a| a == "-q" || a == "--quiet");
    let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let (Some(verb), Some(unit)) = (words.first(), words.get(1)) else {
        return failed(
            "",
            "pitcrew-sim: systemctl needs a verb and a unit\n".to_string(),
        );
    };
    let given = if unit.contains('.') {
        unit.to_string()
    } else {
        format!("{unit}.service")
    };
    let name = match (&model.display_manager, given.as_str()) {
        (Some(dm), "display-manager.service") => dm.clone(),
        _ => given.clone(),
    };
    let known = model.units.contains_key(&name);
    match verb.as_str() {
        "is-active" => {
            let active = known && model.units[&name].running;
            let word = if active { "active\n" } else { "inactive\n" };
            let stdout = if quiet { "" } else { word };
            CmdOutput {
                success: active,
                stdout: stdout.to_string(),
                stderr: String::new(),
            }
        }
        "stop" if !known => failed(
            "",
            format!("Failed to stop {given}: Unit {given} not loaded.\n"),
        ),
        "start" | "restart" if !known => failed(
            "",
            format!("Failed to {verb} {given}: Unit {given} not found.\n"),
        ),
        "stop" => {
            stop(model, &name);
            ok("")
        }
        "start" => {
            start(model, &name);
            ok("")
        }
        "restart" => {
            stop(model, &name);
            start(model, &name);
            ok("")
        }
        "reload" if !known || !model.units[&name].running => failed(
            "",
            format!("Failed to reload {given}: Unit {given} is not active.\n"),
        ),
        "reload" => {
            if let Some(u) = model.units.get_mut(&name) {
                u.reloads.push(std::time::SystemTime::now());
            }
            ok("")
        }
        other => failed("", format!("Unknown command verb {other}.\n")),
    }
}

/// `openrc-run /etc/init.d/<svc> start|stop|zap`, as OpenRC answers them.
fn openrc_run(model: &mut Model, args: &[String]) -> CmdOutput {
    let (Some(script), Some(verb)) = (args.first(), args.get(1)) else {
        return failed("", "openrc-run should not be run directly\n".to_string());
    };
    let service = script.rsplit('/').next().unwrap_or_default().to_string();
    if !model.units.contains_key(&service) {
        return failed(
            "",
            format!("openrc-run '{script}': No such file or directory\n"),
        );
    }
    match verb.as_str() {
        "stop" => stop(model, &service),
        "start" => start(model, &service),
        "zap" => {}
        other => return failed("", format!(" * {service}: unknown function `{other}'\n")),
    }
    ok("")
}

/// systemd ends the unit's whole cgroup; an OpenRC script stops its own daemon, which takes
/// what it started (its templates) along, and leaves anything else in the cgroup running.
fn stop(model: &mut Model, unit: &str) {
    let own: Vec<String> = model.units[unit]
        .spec
        .spawns
        .iter()
        .map(|t| t.comm.clone())
        .collect();
    let whole = !model.init.is_openrc();
    for pid in model.unit_pids(unit) {
        if whole || own.contains(&model.processes[&pid].comm) {
            model.end_process(pid);
        }
    }
    if let Some(u) = model.units.get_mut(unit) {
        u.running = false;
    }
}

/// Starting spawns the unit's templates now, so they open only the nodes present now.
fn start(model: &mut Model, unit: &str) {
    let Some(u) = model.units.get_mut(unit) else {
        return;
    };
    if u.running {
        return;
    }
    u.running = true;
    let templates = u.spec.spawns.clone();
    for template in templates {
        let cgroup = service_cgroup(model.init, unit);
        model.spawn(&cgroup, &template);
    }
}

/// The journal's "Reloaded <unit>" lines: `journalctl ... --since @SECS UNIT=<unit>`, the only
/// query pitcrew makes (other field matches are taken as asking for those lines).
fn journalctl(model: &Model, args: &[String]) -> CmdOutput {
    let since = args
        .iter()
        .position(|a| a == "--since")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.strip_prefix('@')?.parse::<f64>().ok())
        .map(|secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs));
    let Some(unit) = args.iter().find_map(|a| a.strip_prefix("UNIT=")) else {
        return failed(
            "",
            "pitcrew-sim: journalctl needs a UNIT= match\n".to_string(),
        );
    };
    let lines: String = model
        .units
        .get(unit)
        .map(|u| u.reloads.iter())
        .into_iter()
        .flatten()
        .filter(|at| since.is_none_or(|since| **at >= since))
        .map(|_| format!("Reloaded {unit}.\n"))
        .collect();
    ok(&lines)
}
