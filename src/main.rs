use clap::Parser;
use pitcrew::cli::Cli;

fn main() {
    let cli = Cli::parse();
    let _ = cli;
}
