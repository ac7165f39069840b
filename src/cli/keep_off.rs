//! `pitcrew keep-off` and the hidden `pitcrew reserve-audio` helper.

use super::args::KeepOff;
use crate::error::{Error, Failed, Input};
use crate::host::Host;
use crate::keepoff::{self, KeepOffError, Options};
use crate::reserve::helper;
use std::process::ExitCode;
use std::time::Duration;

pub fn run(host: &Host, args: &KeepOff) -> Result<(), Error> {
    let options = Options {
        undo: args.undo,
        keep_sound: args.keep_sound,
        strict: args.strict,
        dry_run: args.dry_run,
        live: !host.is_staged(),
    };
    keepoff::run(host, &args.devices, &options, &mut std::io::stdout().lock()).map_err(
        |e| match e {
            KeepOffError::Input(message) => Input::KeepOff(message).into(),
            other => Failed::KeepOff(other).into(),
        },
    )
}

/// Runs as the sound server's user; its first line on stdout is the engine's answer.
pub fn reserve_audio(
    host: &Host,
    card: u32,
    bus: String,
    until_vfio: crate::bdf::Bdf,
    hold_at_most: u64,
) -> ExitCode {
    let args = helper::Args {
        card,
        bus,
        until_vfio,
        hold_at_most: Duration::from_secs(hold_at_most),
    };
    ExitCode::from(helper::run(host, &args, &mut std::io::stdout().lock()) as u8)
}
