//! `pitcrew-fuzz --seconds N` or `--cases N` [--seed S]: prints executions per target and every
//! crash (the input is saved under target/fuzz/seed-S/), exit 1 when there was one.

use pitcrew_fuzz::{run, Budget};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let budget = match (value("--seconds"), value("--cases")) {
        (Some(seconds), None) => Budget::Time(Duration::from_secs(seconds)),
        (None, Some(cases)) => Budget::Cases(cases),
        _ => {
            eprintln!("usage: pitcrew-fuzz (--seconds N | --cases N) [--seed S] [--out DIR]");
            return ExitCode::from(2);
        }
    };
    let seed = value("--seed").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| "target/fuzz".into(), std::path::PathBuf::from)
        .join(format!("seed-{seed}"));
    let started = Instant::now();
    let report = run(budget, seed);
    println!("seed {seed}, {:.1} s", started.elapsed().as_secs_f64());
    for (name, executions, outcomes) in &report.targets {
        println!("  {name:<14} {executions:>10} executions, {outcomes:>5} distinct outcomes");
    }
    println!(
        "{} executions, {} crashes, systemd-escape compared {}",
        report.executions(),
        report.crashes.len(),
        report
            .escape_oracle
            .map_or("never (not installed)".into(), |n| format!("{n} strings"))
    );
    for (n, crash) in report.crashes.iter().enumerate() {
        let _ = std::fs::create_dir_all(&out);
        let file = out.join(format!("crash-{}-{n}", crash.target));
        let _ = std::fs::write(&file, &crash.input);
        println!(
            "CRASH {} ({}): {}",
            crash.target,
            file.display(),
            crash.what
        );
    }
    if report.crashes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
