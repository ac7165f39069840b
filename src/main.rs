use clap::Parser;
use pitcrew::cli::{Cli, Command, Handover};
use pitcrew::config::{self, Config};
use pitcrew::domain::VmName;
use pitcrew::handover::{self, Request};
use pitcrew::hook::{self, HookArgs};
use pitcrew::host::Host;
use pitcrew::plan::Direction;
use pitcrew::snapshot::Snapshot;
use pitcrew::status::Status;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

fn main() -> ExitCode {
    // libvirt runs the drop-in link as `<path>/qemu.d/pitcrew <domain> <op> <subop> [extra]`:
    // decide that before clap, which would take the domain name for a subcommand.
    let mut argv = std::env::args_os();
    if argv
        .next()
        .is_some_and(|argv0| hook::invoked_as_hook(&argv0))
    {
        let args: Vec<String> = argv.map(|a| a.to_string_lossy().into_owned()).collect();
        let [domain, op, subop, rest @ ..] = args.as_slice() else {
            eprintln!("pitcrew: as a libvirt hook, expected <domain> <op> <subop> [extra]");
            return ExitCode::from(2);
        };
        let args = HookArgs {
            domain: domain.clone(),
            op: op.clone(),
            subop: subop.clone(),
            extra: rest.first().cloned(),
        };
        return run_hook(&Host::real("/"), &args);
    }
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let host = Host::real(&cli.root);
    let result = match cli.command {
        Command::Status { json } => status(&host, json),
        Command::Detach(args) => run_handover(&host, Direction::Detach, args),
        Command::Reattach(args) => run_handover(&host, Direction::Reattach, args),
        Command::Hook {
            domain,
            op,
            subop,
            extra,
        } => {
            return run_hook(
                &host,
                &HookArgs {
                    domain,
                    op,
                    subop,
                    extra,
                },
            )
        }
        Command::Install {
            vms,
            dry_run,
            restart_libvirtd,
        } => install(&host, &vms, dry_run, restart_libvirtd),
        Command::Uninstall { purge, dry_run } => {
            pitcrew::install::uninstall(&host, purge, dry_run, &mut std::io::stdout().lock())
                .map_err(anyhow::Error::from)
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

/// The hook never writes to stdout: libvirt reads it as replacement XML for migrate/restore.
fn run_hook(host: &Host, args: &HookArgs) -> ExitCode {
    let outcome = hook::run(host, args, &mut std::io::stdin().lock());
    if let Some(message) = outcome.message {
        eprintln!("{message}");
    }
    ExitCode::from(outcome.code as u8)
}

fn status(host: &Host, json: bool) -> anyhow::Result<()> {
    let snapshot = Snapshot::read(host)?;
    let status = Status::of(&snapshot);
    if !host.is_staged() && !rustix::process::geteuid().is_root() {
        eprintln!("pitcrew: not root: processes of other users holding a card are not shown");
    }
    let text = if json {
        serde_json::to_string_pretty(&status)? + "\n"
    } else {
        status.to_string()
    };
    print_out(&text)
}

/// Prints to stdout; a reader that went away (`pitcrew status | head`) is not an error.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn input(message: impl std::fmt::Display) -> anyhow::Error {
    pitcrew::Error::Input(message.to_string()).into()
}

fn run_handover(host: &Host, target: Direction, args: Handover) -> anyhow::Result<()> {
    if host.is_staged() && !args.dry_run {
        return Err(input(format!(
            "--root {} is a staged tree, not a running kernel: only --dry-run can plan against it",
            host.root().display()
        )));
    }
    let config = Config::load(host).map_err(input)?.unwrap_or_default();
    let (devices, mut policy) = match &args.vm {
        Some(name) => {
            let vm = VmName::parse(name).map_err(input)?;
            let devices = config::devices_for_vm(host, &config, name).map_err(input)?;
            (devices, config::policy_for_vm(&config, &vm))
        }
        None => (args.devices, config.defaults.policy.clone()),
    };
    if let Some(seconds) = args.term_timeout {
        policy.term_timeout = Duration::try_from_secs_f64(seconds)
            .map_err(|_| input(format!("--term-timeout {seconds}: not a number of seconds")))?;
    }
    // systemd stops a start job it gives up on with SIGTERM: finish the step, then roll back.
    let cancel = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, cancel.clone())?;
    }
    let request = Request {
        direction: target,
        devices,
        policy,
        owner: args.vm,
        dry_run: args.dry_run,
        crash_after: std::env::var("PITCREW_CRASH_AFTER_STEP")
            .ok()
            .and_then(|n| n.parse().ok()),
        cancel: Some(cancel),
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
    let mut text = outcome.plan.to_string();
    if !outcome.timeline.is_empty() {
        let total: Duration = outcome.timeline.iter().map(|t| t.took).sum();
        text += &format!("Done in {} ms:\n", total.as_millis());
        for (n, timed) in outcome.timeline.iter().enumerate() {
            text += &format!(
                "{:>3}. {:>6} ms  {}\n",
                n + 1,
                timed.took.as_millis(),
                timed.step
            );
        }
    }
    print_out(&text)
}

fn install(
    host: &Host,
    vms: &[String],
    dry_run: bool,
    restart_libvirtd: bool,
) -> anyhow::Result<()> {
    let binary = std::env::current_exe()?;
    let options = pitcrew::install::InstallOptions {
        vms,
        binary: &binary,
        dry_run,
        restart_libvirtd,
    };
    pitcrew::install::install(host, &options, &mut std::io::stdout().lock())?;
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
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .without_time()
                    .with_target(false),
            )
            .init(),
    }
}
