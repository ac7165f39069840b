//! What every message must be: one line (within the hook's cap), no run of spaces inside a
//! sentence, no path said twice, every command it quotes pasteable as shell words, and no
//! command that changes or removes anything but pitcrew's own files.

use std::path::Path;

/// The most the command line prints of an error; the hook's line is held to its own cap,
/// [`pitcrew::MAX_MESSAGE`], what libvirt shows of it.
pub(crate) const MAX_BYTES: usize = 4096;

/// Files and directories that are pitcrew's own (host paths): a message may tell the user to
/// change or remove these, and nothing else.
const OWN: [&str; 6] = [
    "/etc/pitcrew",
    "/run/pitcrew",
    "/etc/udev/rules.d/73-pitcrew-keep-off.rules",
    "/etc/libvirt/hooks/qemu.d/pitcrew",
    "/usr/local/bin/pitcrew",
    "/etc/systemd/system/pitcrew@.service",
];

/// Commands that change who may write a file, or remove it.
const CHANGING: [&str; 5] = ["chmod", "chown", "rm", "rmdir", "mv"];

/// Panics with every rule `message` breaks.
pub(crate) fn check_line(name: &str, root: &Path, message: &str, max: usize) {
    let broken = broken_rules(root, message, max);
    assert!(
        broken.is_empty(),
        "catalog entry {name:?} breaks {}:\n  {message}",
        broken.join("; ")
    );
}

fn broken_rules(root: &Path, message: &str, max: usize) -> Vec<String> {
    let mut broken = Vec::new();
    if message.contains('\n') || message.contains('\r') {
        broken.push("one line".to_string());
    }
    if message.len() > max {
        broken.push(format!("at most {max} bytes ({})", message.len()));
    }
    if let Some(run) = space_run(message) {
        broken.push(format!("no run of spaces inside a sentence (at {run:?})"));
    }
    let (prose, commands) = split_commands(message);
    if let Some(path) = doubled_path(&prose) {
        broken.push(format!("each path once ({path} twice)"));
    }
    for command in &commands {
        match shell_words(command) {
            Err(why) => broken.push(format!("`{command}` pastes as shell words ({why})")),
            Ok(words) => {
                if let Some(target) = foreign_change(root, &words) {
                    broken.push(format!(
                        "only pitcrew's own files changed (`{command}` changes {target})"
                    ));
                }
            }
        }
    }
    for verb in ["chmod", "chown"] {
        if prose
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == verb)
        {
            broken.push(format!("{verb} only as a command in backquotes"));
        }
    }
    broken
}

/// Two or more spaces between two words (leading indentation is layout, not a sentence).
fn space_run(message: &str) -> Option<String> {
    let text = message.trim_start();
    let at = text.find("  ")?;
    let end = text[at..].find(|c| c != ' ').map(|n| at + n)?;
    let from = text[..at]
        .char_indices()
        .rev()
        .nth(10)
        .map_or(0, |(i, _)| i);
    Some(text[from..(end + 5).min(text.len())].to_string())
}

/// The message without its `commands`, and the commands.
fn split_commands(message: &str) -> (String, Vec<String>) {
    let mut prose = String::new();
    let mut commands = Vec::new();
    for (n, part) in message.split('`').enumerate() {
        if n % 2 == 1 {
            commands.push(part.to_string());
            prose.push_str(" <command> ");
        } else {
            prose.push_str(part);
        }
    }
    (prose, commands)
}

/// A path (a word starting with '/', not counting the punctuation after it) said twice.
fn doubled_path(prose: &str) -> Option<String> {
    let mut seen = std::collections::BTreeSet::new();
    for word in prose.split(|c: char| c.is_whitespace() || "(),;'\"<>[]{}=".contains(c)) {
        let path = word.trim_end_matches([':', '.', ',', ';', '!', '?']);
        if path.len() > 1 && path.starts_with('/') && !seen.insert(path) {
            return Some(path.to_string());
        }
    }
    None
}

/// A command split as a POSIX shell would split it. Refused: what would not paste as
/// written (an open quote, and outside quotes an expansion, a glob, a redirection or an escape,
/// which would change the words) or is not a simple command (one `&&` between commands is).
fn shell_words(command: &str) -> Result<Vec<String>, String> {
    let mut quote = None;
    for c in command.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '$' | '\\' | ';' | '|' | '<' | '>' | '(' | ')' | '*' | '?' | '~' | '!') => {
                return Err(format!("{c:?} outside quotes"))
            }
            (Some('"'), '$' | '\\' | '`' | '!') => return Err(format!("{c:?} inside \"...\"")),
            _ => {}
        }
    }
    let words = shlex::split(command).ok_or("an open quote")?;
    if words.iter().any(|w| w.contains('&') && w != "&&") {
        return Err("a lone '&'".into());
    }
    Ok(words)
}

/// The first path a changing command (chmod, chown, rm...) would touch that is not pitcrew's
/// own; each command of an `a && b` chain is looked at.
fn foreign_change(root: &Path, words: &[String]) -> Option<String> {
    for command in words.split(|w| w == "&&") {
        let Some((program, args)) = command.split_first() else {
            continue;
        };
        let program = program.rsplit('/').next().unwrap_or(program);
        let skip = match program {
            "chmod" | "chown" => 1,
            p if CHANGING.contains(&p) => 0,
            "install" | "mkdir" | "cp" | "ln" => {
                // What is written is the last word; it must be pitcrew's too.
                let target = args.last()?;
                if !own(root, target) {
                    return Some(target.clone());
                }
                continue;
            }
            _ => continue,
        };
        let operands = args.iter().filter(|a| !a.starts_with('-')).skip(skip);
        if let Some(target) = operands.into_iter().find(|a| !own(root, a)) {
            return Some(target.clone());
        }
    }
    None
}

/// Whether `path` (a path on the host, or under the staged `root`) is one of pitcrew's own.
fn own(root: &Path, path: &str) -> bool {
    let path = Path::new(path);
    let host = match path.strip_prefix(root) {
        Ok(rest) => Path::new("/").join(rest),
        Err(_) => path.to_path_buf(),
    };
    OWN.iter().any(|own| host.starts_with(own))
}
