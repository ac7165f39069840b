//! Where log lines go.

/// To the journal when systemd connected stderr to it, else to stderr.
pub(super) fn init(verbose: u8) {
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
                    // Its own complaint about a closed stderr would go to stderr and panic.
                    .log_internal_errors(false)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .without_time()
                    .with_target(false),
            )
            .init(),
    }
}
