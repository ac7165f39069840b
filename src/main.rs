use clap::Parser;
use pitcrew::cli::{Cli, Command, Handover};
use pitcrew::handover::{self, Request, Target};
use pitcrew::host::Host;
use pitcrew::policy::Policy;
use pitcrew::snapshot::Snapshot;
use pitcrew::status::Status;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let host = Host::real(&cli.root);
    let result = match cli.command {
        Command::Status { json } => status(&host, json),
        Command::Detach(args) => handover(&host, Target::Vfio, args),
        Command::Reattach(args) => handover(&host, Target::Host, args),
        Command::Hook { .. } | Command::Install { .. } | Command::Uninstall { .. } => {
            Err(pitcrew::Error::Input("not available in this build".into()).into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pitcrew: {err:#}");
            let code = err
                .downcast_ref::<pitcrew::Error>()
                .map_or(1, pitcrew::Error::exit_code);
            ExitCode::from(code as u8)
        }
    }
}

fn status(host: &Host, json: bool) -> anyhow::Result<()> {
    let snapshot = Snapshot::read(host)?;
    let status = Status::of(&snapshot);
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{status}");
    }
    Ok(())
}

fn handover(host: &Host, target: Target, args: Handover) -> anyhow::Result<()> {
    if host.is_staged() && !args.dry_run {
        return Err(pitcrew::Error::Input(format!(
            "--root {} is a staged tree, not a running kernel: only --dry-run can plan against it",
            host.root().display()
        ))
        .into());
    }
    if args.vm.is_some() {
        return Err(
            pitcrew::Error::Input("--vm needs the configuration file support".into()).into(),
        );
    }
    let mut policy = Policy::default();
    if let Some(seconds) = args.term_timeout {
        policy.term_timeout = Duration::try_from_secs_f64(seconds).map_err(|_| {
            pitcrew::Error::Input(format!("--term-timeout {seconds}: not a duration"))
        })?;
    }
    let request = Request {
        target,
        devices: args.devices,
        policy,
        owner: args.vm,
        dry_run: args.dry_run,
        crash_after: std::env::var("PITCREW_CRASH_AFTER_STEP")
            .ok()
            .and_then(|n| n.parse().ok()),
    };
    let outcome = match handover::run(host, &request) {
        // Die the way a crash would, so the next run meets exactly what a kill -9 leaves.
        Err(pitcrew::Error::Interrupted { .. }) => {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
            unreachable!("SIGKILL cannot be caught")
        }
        other => other?,
    };
    print!("{}", outcome.plan);
    if !args.dry_run && !outcome.timeline.is_empty() {
        let total: Duration = outcome.timeline.iter().map(|t| t.took).sum();
        println!("Done in {} ms:", total.as_millis());
        for (n, timed) in outcome.timeline.iter().enumerate() {
            println!(
                "{:>3}. {:>6} ms  {}",
                n + 1,
                timed.took.as_millis(),
                timed.step
            );
        }
    }
    Ok(())
}

/// To the journal when systemd connected stderr to it, else to stderr.
fn init_logging(verbose: u8) {
    use tracing_subscriber::prelude::*;
    let level = match verbose {
        0 => tracing::Level::INFO,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let filter = tracing_subscriber::filter::LevelFilter::from_level(level);
    let journald = std::env::var_os("JOURNAL_STREAM")
        .is_some()
        .then(|| tracing_journald::layer().ok())
        .flatten();
    let registry = tracing_subscriber::registry().with(filter);
    match journald {
        Some(layer) => registry.with(layer).init(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .without_time()
                    .with_target(false),
            )
            .init(),
    }
}
