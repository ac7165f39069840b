use clap::Parser;
use pitcrew::cli::{Cli, Command};
use pitcrew::hook::{self, HookArgs};
use pitcrew::host::Host;
use std::process::ExitCode;

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
    let host = Host::real(&cli.root);
    match cli.command {
        Command::Hook {
            domain,
            op,
            subop,
            extra,
        } => run_hook(
            &host,
            &HookArgs {
                domain,
                op,
                subop,
                extra,
            },
        ),
        Command::Install {
            vms,
            dry_run,
            restart_libvirtd,
        } => report(install(&host, &vms, dry_run, restart_libvirtd)),
        Command::Uninstall { purge, dry_run } => report(
            pitcrew::install::uninstall(&host, purge, dry_run, &mut std::io::stdout().lock())
                .map_err(anyhow::Error::from),
        ),
        // Detach, reattach and status belong to the engine (merged from the engine branch).
        _ => {
            eprintln!("pitcrew: not implemented on this branch");
            ExitCode::from(2)
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

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pitcrew: {e:#}");
            ExitCode::FAILURE
        }
    }
}
