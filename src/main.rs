//! `pitcrew`: the command line, or libvirt's QEMU hook when started under that name.

use clap::Parser;
use pitcrew::cli::{self, Cli};
use pitcrew::hook::{self, HookArgs};
use pitcrew::host::Host;
use std::process::ExitCode;

fn main() -> ExitCode {
    // libvirt runs the drop-in link as `<path>/qemu.d/pitcrew <vm> <op> <subop> [extra]`:
    // decide that before clap, which would take the VM name for a subcommand.
    let mut argv = std::env::args_os();
    if argv
        .next()
        .is_some_and(|argv0| hook::invoked_as_hook(&argv0))
    {
        let args: Vec<String> = argv.map(|a| a.to_string_lossy().into_owned()).collect();
        let [vm, op, subop, rest @ ..] = args.as_slice() else {
            eprintln!("pitcrew: as a libvirt hook, expected <vm> <op> <subop> [extra]");
            return ExitCode::from(2);
        };
        let args = HookArgs {
            vm: vm.clone(),
            op: op.clone(),
            subop: subop.clone(),
            extra: rest.first().cloned(),
        };
        return cli::run_hook(&Host::real("/"), &args);
    }
    cli::run(Cli::parse())
}
