//! Every message pitcrew shows a user, rendered from simulated hosts and staged roots into
//! snapshot files (tests/catalog/snapshots/), so a change of wording shows up in one diff. Each
//! message is also held to the rules in rules.rs. One file per area: what pitcrew is told to read
//! (config, request files), what a handover says, the hook, doctor, install and the rest.

mod config;
mod doctor;
mod handover;
mod hook;
mod input;
mod install;
mod requests;
mod rules;
mod sound;
mod tuning;

use std::path::Path;

/// The messages of one area, in the order they were made, each under a name saying what led
/// to it.
#[derive(Default)]
pub(crate) struct Catalog {
    entries: Vec<(String, String)>,
}

impl Catalog {
    /// A one-line message (an error, a refusal, a warning, a hook line, a doctor finding),
    /// made under `root`: checked against every rule, then kept with the root shown as <root>.
    pub(crate) fn line(&mut self, name: &str, root: &Path, message: &str) {
        rules::check_line(name, root, message, rules::MAX_BYTES);
        self.keep(name, root, message);
    }

    /// The hook's line, which libvirt shows: within [`pitcrew::MAX_MESSAGE`] bytes.
    pub(crate) fn hook_line(&mut self, name: &str, root: &Path, message: &str) {
        rules::check_line(name, root, message, pitcrew::MAX_MESSAGE);
        self.keep(name, root, message);
    }

    /// A report of several lines (a plan, install's account of what it wrote): each line is
    /// held to the rules of a message.
    pub(crate) fn lines(&mut self, name: &str, root: &Path, text: &str) {
        for line in text.lines() {
            rules::check_line(name, root, line.trim_start(), rules::MAX_BYTES);
        }
        self.keep(name, root, text.trim_end());
    }

    fn keep(&mut self, name: &str, root: &Path, message: &str) {
        self.entries
            .push((name.to_string(), redacted(root, message)));
    }

    /// The snapshot of the area, one message after its name.
    pub(crate) fn render(&self) -> String {
        self.entries
            .iter()
            .map(|(name, message)| format!("## {name}\n{message}\n"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `message` without what changes from run to run: the temporary root and timings.
fn redacted(root: &Path, message: &str) -> String {
    let mut out = if root == Path::new("/") {
        message.to_string()
    } else {
        message.replace(&root.display().to_string(), "<root>")
    };
    // Durations: "(12 ms)", "in 1158 ms".
    let mut result = String::new();
    let mut rest = out.as_str();
    while let Some(at) = rest.find(" ms") {
        let digits = rest[..at]
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .count();
        if digits > 0 {
            result.push_str(&rest[..at - digits]);
            result.push('N');
        } else {
            result.push_str(&rest[..at]);
        }
        result.push_str(" ms");
        rest = &rest[at + 3..];
    }
    result.push_str(rest);
    out = result;
    out
}

/// Runs `f` with pitcrew's log lines (what stderr or the journal get) caught, as the command
/// line writes them; returns what `f` returned and the lines.
///
/// One global subscriber writes each thread's lines to that thread's own buffer. A thread-local
/// default subscriber per call (`with_default`) loses lines when tests run in parallel: tracing
/// caches each call site's interest across threads, and a site first reached while another
/// test's subscriber comes or goes can be cached as disabled.
pub(crate) fn logged<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    use std::cell::RefCell;
    use std::sync::OnceLock;
    thread_local! {
        static LINES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    struct ThreadBuffer;
    impl std::io::Write for ThreadBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            LINES.with(|lines| lines.borrow_mut().extend_from_slice(buf));
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(|| ThreadBuffer)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in the test binary");
    });
    LINES.with(|lines| lines.borrow_mut().clear());
    let value = f();
    let text = LINES.with(|lines| String::from_utf8(lines.take()).unwrap());
    (value, text.lines().map(str::to_string).collect())
}
