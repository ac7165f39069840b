//! The commands behind `pitcrew ...` and the libvirt hook entry: each reads its input, calls the
//! library, prints the result, and turns an error into its exit code.

mod args;
mod doctor;
mod handover;
mod logging;

use args::Command;
pub use args::{command, Cli};

use crate::error::{Error, Failed};
use crate::hook::{self, HookArgs};
use crate::host::Host;
use crate::install::{self, InstallOptions, UninstallOptions};
use crate::snapshot::Snapshot;
use crate::status::Status;
use std::process::ExitCode;

/// Runs a parsed command line; errors go to stderr and become the exit code.
pub fn run(cli: Cli) -> ExitCode {
    logging::init(cli.verbose);
    let host = Host::real(&cli.root);
    let result = match cli.command {
        Command::Status { json } => status(&host, json),
        Command::Detach(args) => handover::run(&host, crate::plan::Direction::Detach, args),
        Command::Reattach(args) => handover::run(&host, crate::plan::Direction::Reattach, args),
        Command::Hook {
            vm,
            op,
            subop,
            extra,
        } => {
            return run_hook(
                &host,
                &HookArgs {
                    vm,
                    op,
                    subop,
                    extra,
                },
            )
        }
        Command::Doctor { json, vm } => doctor::run(&host, json, vm.as_deref()),
        Command::Install {
            vms,
            dry_run,
            no_reload,
        } => install(&host, &vms, dry_run, no_reload),
        Command::Uninstall {
            purge,
            dry_run,
            no_reload,
        } => {
            let options = UninstallOptions {
                purge,
                dry_run,
                reload: !no_reload,
            };
            install::uninstall(&host, &options, &mut std::io::stdout().lock()).map_err(Error::from)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pitcrew: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// The hook never writes to stdout: libvirt reads it as replacement XML for migrate/restore.
pub fn run_hook(host: &Host, args: &HookArgs) -> ExitCode {
    let reply = hook::run(host, args, &mut std::io::stdin().lock());
    if let Some(message) = reply.message {
        eprintln!("{message}");
    }
    ExitCode::from(reply.code as u8)
}

fn status(host: &Host, json: bool) -> Result<(), Error> {
    let snapshot = Snapshot::read(host).map_err(Failed::from)?;
    let status = Status::of(&snapshot);
    if !host.is_staged() && !rustix::process::geteuid().is_root() {
        eprintln!("pitcrew: not root: processes of other users holding a card are not shown");
    }
    let text = if json {
        serde_json::to_string_pretty(&status).expect("status serializes") + "\n"
    } else {
        status.to_string()
    };
    print_out(&text)
}

/// Prints to stdout; a reader that went away (`pitcrew status | head`) is not an error.
pub(super) fn print_out(text: &str) -> Result<(), Error> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failed::Stdout(e).into()),
        _ => Ok(()),
    }
}

fn install(host: &Host, vms: &[String], dry_run: bool, no_reload: bool) -> Result<(), Error> {
    let binary = std::env::current_exe().map_err(Failed::Binary)?;
    let options = InstallOptions {
        vms,
        binary: &binary,
        dry_run,
        reload: !no_reload,
    };
    install::install(host, &options, &mut std::io::stdout().lock())?;
    Ok(())
}
