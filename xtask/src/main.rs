//! Project tasks (`cargo xtask ...`): the real-kernel test bed for pitcrew.
//!
//! Each command checks/installs the host prerequisites, prepares the cached Debian kernel kit,
//! builds a static pitcrew and a fresh initramfs, and boots QEMU (q35, TCG, intel-iommu) with
//! the emulated GPU. The guest's init (testbed/init.sh) runs the scenario scripts and reports on
//! ttyS1; see report.rs for the protocol.

mod desktop;
mod dist;
mod fullstack;
mod gnome_plasma;
mod initramfs;
mod kernel;
mod openrc;
mod pitcrew_bin;
mod prereqs;
mod qemu;
mod report;
mod scenarios;
mod stack;
mod suite;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use report::{Bench, Verdict};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "xtask",
    about = "pitcrew project tasks: the real-kernel test bed"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every scenario on the real kernel (one QEMU boot per machine) and print the timing table
    VmTest {
        #[command(flatten)]
        common: Common,
        /// Run only these scenarios (repeatable; names as in testbed/scenarios/<name>.sh)
        #[arg(long = "scenario", value_name = "NAME")]
        scenarios: Vec<String>,
        /// Skip the timing benchmark
        #[arg(long)]
        no_bench: bool,
    },
    /// One boot that shows pitcrew status, detach, status, reattach on the real kernel
    Demo {
        #[command(flatten)]
        common: Common,
    },
    /// One boot that times the raw sysfs floor against pitcrew's detach and reattach
    Bench {
        #[command(flatten)]
        common: Common,
        /// Rounds of each measurement (the table shows the median)
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        /// Another static pitcrew (the build before a change) timed in the same boot, in
        /// alternate rounds with the floor and this one
        #[arg(long, value_name = "PATH")]
        against: Option<PathBuf>,
    },
    /// The full stack: Debian with systemd (or OpenRC), libvirtd and LightDM in QEMU, where
    /// starting and destroying a libvirt domain that passes the emulated GPU through runs the
    /// hook, the unit (or OpenRC service) and the engine
    FullTest {
        /// Give up on the boot after this many seconds (QEMU is killed; default: the stack's
        /// whole run with room to spare)
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// Use this statically linked pitcrew instead of building one
        #[arg(long, value_name = "PATH")]
        pitcrew: Option<PathBuf>,
        /// The Debian release to build the system from
        #[arg(long, value_enum, default_value = "bookworm")]
        suite: suite::Suite,
        /// The display manager and desktops on top of it
        #[arg(long, value_enum, default_value = "lightdm")]
        stack: stack::Stack,
    },
    /// Build (or find) the full stack's cached image for a suite, without booting it
    FullImage {
        /// The Debian release to build the system from
        #[arg(long, value_enum, default_value = "bookworm")]
        suite: suite::Suite,
        /// The display manager and desktops on top of it
        #[arg(long, value_enum, default_value = "lightdm")]
        stack: stack::Stack,
    },
    /// Generate the man pages and shell completions into target/dist; lay out, list or build
    /// the packages (Debian, Arch, RPM) from the one list of what they hold
    Dist(dist::Args),
    /// Fuzz the parsers and the hook (release build) for this long; `cargo xtask test` runs a
    /// fixed number of cases of the same harness
    Fuzz {
        /// How long to fuzz, shared between the targets
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        seconds: u64,
        /// Start from this seed (a run with the same seed and length repeats itself)
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Every test: cargo test, the unit file checks, the real-kernel scenarios, then the full stack
    Test,
}

#[derive(Args)]
struct Common {
    /// Give up on a boot after this many seconds (QEMU is killed)
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    timeout: u64,
    /// Use this statically linked pitcrew instead of building one
    #[arg(long, value_name = "PATH")]
    pitcrew: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// What every boot needs: the kernel kit and a fresh initramfs with pitcrew and the scripts.
struct Prepared {
    kit: kernel::Kit,
    initrd: PathBuf,
    out: PathBuf,
    timeout: Duration,
}

fn prepare(common: &Common) -> Result<Prepared> {
    prepare_with(common, None)
}

/// `against`: a second pitcrew, installed as pitcrew-b for the bench to compare.
fn prepare_with(common: &Common, against: Option<&Path>) -> Result<Prepared> {
    prereqs::ensure()?;
    let kit = kernel::prepare()?;
    eprintln!("xtask: kernel {} ({})", kit.version, kit.recipe);
    let ws = workspace();
    let pitcrew = pitcrew_bin::get(&ws, common.pitcrew.as_deref())?;
    let out = ws.join("target/testbed");
    std::fs::create_dir_all(&out)?;
    let initrd = out.join("initrd.cpio");
    initramfs::build(&kit, &pitcrew, against, &ws.join("testbed"), &initrd)?;
    Ok(Prepared {
        kit,
        initrd,
        out,
        timeout: Duration::from_secs(common.timeout),
    })
}

impl Prepared {
    fn boot(
        &self,
        machine: &qemu::Machine,
        params: String,
        on_line: impl FnMut(&str),
    ) -> Result<qemu::Outcome> {
        let console_log = self.out.join(format!("console-{}.log", machine.name));
        eprintln!("xtask: booting {} ({params})", machine.name);
        let outcome = qemu::boot(
            &qemu::Boot {
                machine,
                kernel: &self.kit.vmlinuz,
                initrd: &self.initrd,
                params,
                console_log: &console_log,
                timeout: self.timeout,
                drives: &[],
            },
            on_line,
        )?;
        Ok(outcome)
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::VmTest {
            common,
            scenarios,
            no_bench,
        } => vm_test(&common, &scenarios, !no_bench),
        Cmd::Demo { common } => demo(&common),
        Cmd::Bench {
            common,
            rounds,
            against,
        } => bench(&common, rounds, against.as_deref()),
        Cmd::FullTest {
            timeout,
            pitcrew,
            suite,
            stack,
        } => {
            let verdicts = fullstack::run(
                &workspace(),
                suite,
                stack,
                timeout.map_or(stack.timeout(), Duration::from_secs),
                pitcrew.as_deref(),
            )?;
            Ok(summary(&verdicts))
        }
        Cmd::FullImage { suite, stack } => {
            prereqs::ensure()?;
            let image = fullstack::prepare(suite, stack)?;
            println!("{}", image.disk.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Dist(args) => dist::run(args).map(|()| ExitCode::SUCCESS),
        Cmd::Fuzz { seconds, seed } => fuzz(seconds, seed),
        Cmd::Test => test(),
    }
}

fn vm_test(common: &Common, only: &[String], with_bench: bool) -> Result<ExitCode> {
    Ok(summary(&scenarios::vm_verdicts(common, only, with_bench)?))
}

/// Every verdict, then the last line `N passed, N failed`; failure when any failed.
fn summary(verdicts: &BTreeMap<String, Verdict>) -> ExitCode {
    let failed = verdicts.values().filter(|v| !v.pass).count();
    println!("\nscenarios:");
    for (name, v) in verdicts {
        if v.pass {
            println!("  PASS {name}");
        } else {
            println!("  FAIL {name}: {}", v.reason);
        }
    }
    println!("{} passed, {failed} failed", verdicts.len() - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn demo(common: &Common) -> Result<ExitCode> {
    let p = prepare(common)?;
    let mut verdict = None;
    let outcome = p.boot(qemu::machine("one-gpu")?, "pitcrew.mode=demo".into(), |l| {
        if let Some((_, v)) = report::parse_result(l) {
            println!(
                "demo {}: {}",
                if v.pass { "PASS" } else { "FAIL" },
                v.reason
            );
            verdict = Some(v.pass);
        } else if l.trim() != "DONE" {
            println!("{l}");
        }
    })?;
    Ok(if outcome.finished && verdict == Some(true) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn bench(common: &Common, rounds: u32, against: Option<&Path>) -> Result<ExitCode> {
    let p = prepare_with(common, against)?;
    let mut bench = Bench::default();
    let params = format!("pitcrew.mode=bench pitcrew.bench={rounds}");
    let outcome = p.boot(qemu::machine("one-gpu")?, params, |l| {
        if l.starts_with("BENCH ") {
            bench.add_line(l);
        } else if !l.trim().is_empty() && l.trim() != "DONE" {
            println!("  guest: {l}");
        }
    })?;
    println!("{}", bench.table());
    Ok(if outcome.finished {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn fuzz(seconds: u64, seed: Option<u64>) -> Result<ExitCode> {
    let seconds = seconds.to_string();
    let seed = seed.map(|s| s.to_string());
    let mut args = vec!["run", "--quiet", "--release", "-p", "pitcrew-fuzz", "--"];
    args.extend(["--seconds", &seconds]);
    if let Some(seed) = &seed {
        args.extend(["--seed", seed]);
    }
    eprintln!("xtask: fuzz: cargo {}", args.join(" "));
    let status = std::process::Command::new("cargo")
        .args(&args)
        .current_dir(workspace())
        .status()
        .context("running cargo")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What CI runs: the workspace's tests, the unit file checks, then every real-kernel scenario.
fn test() -> Result<ExitCode> {
    let ws = workspace();
    let step = |what: &str, program: &str, args: &[&str]| -> Result<bool> {
        eprintln!("xtask: {what}: {program} {}", args.join(" "));
        let status = std::process::Command::new(program)
            .args(args)
            .current_dir(&ws)
            .status()
            .with_context(|| format!("running {program}"))?;
        Ok(status.success())
    };
    if !step(
        "unit and integration tests",
        "cargo",
        &["test", "--workspace"],
    )? {
        return Ok(ExitCode::FAILURE);
    }
    if !step("build", "cargo", &["build", "--quiet", "-p", "pitcrew"])?
        || !step(
            "systemd unit checks",
            "sh",
            &["scripts/check-unit.sh", "target/debug/pitcrew"],
        )?
    {
        return Ok(ExitCode::FAILURE);
    }
    let common = Common {
        timeout: 600,
        pitcrew: None,
    };
    let mut verdicts = scenarios::vm_verdicts(&common, &[], true)?;
    for (suite, stack) in [
        (suite::Suite::Bookworm, stack::Stack::Lightdm),
        (suite::Suite::Trixie, stack::Stack::Lightdm),
        (suite::Suite::Trixie, stack::Stack::GnomePlasma),
        (suite::Suite::Trixie, stack::Stack::Openrc),
    ] {
        verdicts.extend(fullstack::run(&ws, suite, stack, stack.timeout(), None)?);
    }
    Ok(summary(&verdicts))
}
