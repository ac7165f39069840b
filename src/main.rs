//! `pitcrew`: the command line, or libvirt's QEMU hook when started under that name.

use clap::Parser;
use pitcrew::{
    invoked_as_hook, run_command, run_hook, serve_writes, Cli, HookArgs, Host, WRITE_HELPER,
};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    // libvirt runs the drop-in link as `<path>/qemu.d/pitcrew <vm> <op> <subop> [extra]`:
    // decide that before clap, which would take the VM name for a subcommand.
    let mut argv = std::env::args_os();
    if argv.next().is_some_and(|argv0| invoked_as_hook(&argv0)) {
        let args: Vec<String> = argv.map(|a| a.to_string_lossy().into_owned()).collect();
        let [vm, op, subop, rest @ ..] = args.as_slice() else {
            // A closed stderr loses the line, never the exit code.
            let _ = writeln!(
                std::io::stderr(),
                "pitcrew: as a libvirt hook, expected <vm> <op> <subop> [extra]"
            );
            return ExitCode::from(2);
        };
        let args = HookArgs {
            vm: vm.clone(),
            op: op.clone(),
            subop: subop.clone(),
            extra: rest.first().cloned(),
        };
        return run_hook(&Host::real("/"), &args);
    }
    // The write helper (`pitcrew __write`, see RealEffects) serves one handover's binding
    // writes over a pipe: it skips the command-line parser and logging.
    let mut args = std::env::args_os().skip(1);
    if let (Some(helper), None) = (args.next(), args.next()) {
        if helper == WRITE_HELPER {
            let served = serve_writes(&mut std::io::stdin().lock(), &mut std::io::stdout().lock());
            return if served.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    }
    match Cli::try_parse() {
        Ok(cli) => run_command(cli),
        Err(e) => {
            // --help and --version too: printed without panicking on a closed stdout.
            let _ = e.print();
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
