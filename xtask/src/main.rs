//! Project tasks (`cargo xtask ...`).

mod dist;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "pitcrew project tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate the man pages and shell completions into target/dist (packaged by cargo deb)
    Dist,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Dist => dist::run(),
    }
}
