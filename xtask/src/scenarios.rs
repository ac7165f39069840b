//! The busybox test bed's scenarios (testbed/scenarios/*.sh): found, grouped by the machine
//! each names, run in one boot per machine, and their verdicts collected.

use crate::report::{self, Bench, Verdict};
use crate::{prepare, qemu, workspace, Common, Prepared};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

struct Scenario {
    name: String,
    machine: &'static qemu::Machine,
}

/// The scenarios in testbed/scenarios/*.sh, each naming its machine with `# machine: <name>`.
fn discover(only: &[String]) -> Result<Vec<Scenario>> {
    let dir = workspace().join("testbed/scenarios");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        let text = std::fs::read_to_string(&p)?;
        let machine = text
            .lines()
            .find_map(|l| l.strip_prefix("# machine:"))
            .with_context(|| format!("{} has no `# machine: <name>` line", p.display()))?;
        out.push(Scenario {
            name,
            machine: qemu::machine(machine.trim())?,
        });
    }
    if let Some(missing) = only.iter().find(|n| !out.iter().any(|s| &s.name == *n)) {
        bail!("no scenario {missing:?} in {}", dir.display());
    }
    Ok(out)
}

pub fn vm_verdicts(
    common: &Common,
    only: &[String],
    with_bench: bool,
) -> Result<BTreeMap<String, Verdict>> {
    let scenarios = discover(only)?;
    let p = prepare(common)?;
    let mut bench = Bench::default();
    let verdicts = run_scenarios(&p, &scenarios, with_bench.then_some(&mut bench))?;
    if !bench.is_empty() {
        println!("\n{}", bench.table());
    }
    Ok(verdicts)
}

/// Boots once per machine the scenarios need; the bench rides along in the one-gpu boot.
fn run_scenarios(
    p: &Prepared,
    scenarios: &[Scenario],
    mut bench: Option<&mut Bench>,
) -> Result<BTreeMap<String, Verdict>> {
    let mut verdicts: BTreeMap<String, Verdict> = BTreeMap::new();
    for machine in qemu::MACHINES {
        let names: Vec<&str> = scenarios
            .iter()
            .filter(|s| s.machine.name == machine.name)
            .map(|s| s.name.as_str())
            .collect();
        if names.is_empty() {
            continue;
        }
        let mut params = format!("pitcrew.mode=test pitcrew.scenarios={}", names.join(","));
        let mut bench_here = bench.take_if(|_| machine.name == "one-gpu");
        if bench_here.is_some() {
            params += " pitcrew.bench=5";
        }
        p.boot(machine, params, |line| {
            if let Some((name, v)) = report::parse_result(line) {
                let word = if v.pass { "PASS" } else { "FAIL" };
                println!("{word} {name}: {}", v.reason);
                verdicts.insert(name, v);
            } else if line.starts_with("BENCH ") {
                if let Some(b) = bench_here.as_deref_mut() {
                    b.add_line(line);
                }
            } else if !line.trim().is_empty() && line.trim() != "DONE" {
                println!("  guest: {line}");
            }
        })?;
        for n in names {
            verdicts.entry(n.to_string()).or_insert_with(|| Verdict {
                pass: false,
                reason: format!("no result from the guest ({} boot)", machine.name),
            });
        }
    }
    Ok(verdicts)
}
