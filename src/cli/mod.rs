//! The commands behind `pitcrew ...` and the libvirt hook entry: each reads its input, calls the
//! library, prints the result, and turns an error into its exit code.

mod args;
mod doctor;
mod handover;
mod keep_off;
mod logging;

use args::Command;
pub use args::{command, Cli};

use crate::error::{Error, Failed, Input};
use crate::hook::{self, HookArgs};
use crate::host::Host;
use crate::install::{self, InstallOptions, UninstallOptions};
use crate::snapshot::Snapshot;
use crate::status::Status;
use std::process::ExitCode;

/// Runs a parsed command line; errors go to stderr and become the exit code.
pub fn run(cli: Cli) -> ExitCode {
    // The hook logs nothing (its one line goes to stderr itself), and runs for every VM event.
    if !matches!(cli.command, Command::Hook { .. }) {
        logging::init(cli.verbose);
    }
    let host = Host::real(&cli.root);
    let reads_host = matches!(
        cli.command,
        Command::Status { .. } | Command::Detach(_) | Command::Reattach(_)
    );
    if let Err(err) = check_root(&host, reads_host) {
        return fail(&err.into());
    }
    let result = match cli.command {
        Command::Status { json } => status(&host, json),
        Command::KeepOff(args) => keep_off::run(&host, &args),
        Command::ReserveAudio {
            card,
            bus,
            until_vfio,
            hold_at_most,
        } => return keep_off::reserve_audio(&host, card, bus, until_vfio, hold_at_most),
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
        Err(err) => fail(&err),
    }
}

/// An error message is one line; this bounds what a hostile input can make of it.
const MAX_ERROR: usize = 4096;

fn fail(err: &Error) -> ExitCode {
    say(&format!(
        "pitcrew: {}",
        crate::text::one_line(&err.to_string(), MAX_ERROR)
    ));
    ExitCode::from(err.exit_code())
}

/// Writes one line to stderr. A closed or full stderr loses the line, never the exit code.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Refuses a `--root` that is not a directory pitcrew can list. Commands that read the machine
/// also need its sys/ and proc/: a staged tree without them is no system to read.
fn check_root(host: &Host, reads_host: bool) -> Result<(), Input> {
    let bad = |reason: String| Input::BadRoot {
        root: host.root().to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(host.root()).map_err(|e| {
        bad(format!(
            "{}; give a directory (a staged system tree) or /",
            crate::untrusted::plain(&e)
        ))
    })?;
    if !meta.is_dir() {
        return Err(bad(format!(
            "{}, not a directory; give a directory (a staged system tree) or /",
            crate::untrusted::kind_or_file(&meta)
        )));
    }
    std::fs::read_dir(host.root())
        .map_err(|e| bad(format!("cannot list it: {}", crate::untrusted::plain(&e))))?;
    if reads_host && host.is_staged() {
        for dir in ["sys", "proc"] {
            if !host.path(format!("/{dir}")).is_dir() {
                return Err(bad(format!(
                    "no {dir}/ directory, so not a system tree to read: stage sys/ and proc/ \
                     under it as a running system has them"
                )));
            }
        }
    }
    Ok(())
}

/// The hook never writes to stdout: libvirt reads it as replacement XML for migrate/restore.
pub fn run_hook(host: &Host, args: &HookArgs) -> ExitCode {
    let reply = hook::run(host, args, &mut std::io::stdin().lock());
    if let Some(message) = reply.message {
        say(&message);
    }
    ExitCode::from(reply.code as u8)
}

fn status(host: &Host, json: bool) -> Result<(), Error> {
    let snapshot = Snapshot::read(host).map_err(Failed::from)?;
    let status = Status::of(&snapshot);
    if !host.is_staged() && !rustix::process::geteuid().is_root() {
        say("pitcrew: not root: processes of other users holding a card are not shown");
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
