//! Writes one of the simulated hosts to a directory and prints its root, for trying pitcrew's
//! read-only commands on a machine with a GPU setup this one lacks:
//!
//!     pitcrew status --root "$(cargo run -q -p pitcrew-sim --bin pitcrew-fixture -- nvidia)"

use pitcrew_sim::fixtures;
use std::process::ExitCode;

type Fixture = fn() -> pitcrew_sim::SimHost;

const FIXTURES: &[(&str, Fixture)] = &[
    ("nvidia", fixtures::nvidia_with_audio_and_usbc),
    ("amd", fixtures::amd_with_audio),
    ("amd-only", fixtures::amd_only_gpu),
    ("apu", fixtures::apu_and_dgpu_sharing_amdgpu),
    ("radeon-for-vms", fixtures::radeon_beside_the_desktop),
    ("two-nvidia", fixtures::two_identical_nvidia),
    ("unrelated", fixtures::group_with_unrelated_device),
    ("nvidia-efifb", fixtures::nvidia_only_on_efifb),
    ("efifb-only", fixtures::driverless_gpu_on_efifb),
];

fn main() -> ExitCode {
    let names: Vec<&str> = FIXTURES.iter().map(|(name, _)| *name).collect();
    let wanted = std::env::args().nth(1).unwrap_or_default();
    match FIXTURES.iter().find(|(name, _)| *name == wanted) {
        Some((_, build)) => {
            println!("{}", build().keep().display());
            ExitCode::SUCCESS
        }
        None => {
            eprintln!(
                "usage: pitcrew-fixture <{}>: writes that simulated host to a temporary \
                 directory and prints its root",
                names.join("|")
            );
            ExitCode::from(2)
        }
    }
}
