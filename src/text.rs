//! Untrusted text in messages (a VM name, a value from a file, a parser's complaint quoting it):
//! cut and with control characters escaped, so it can neither flood nor break a line.

/// Untrusted text inside a message: at most 64 characters,
/// control characters escaped, so it can neither flood nor break the line.
pub fn shown(text: &str) -> String {
    let mut out = escaped(text.chars().take(64));
    if text.chars().nth(64).is_some() {
        out.push('…');
    }
    out
}

/// `text` as a single line of at most `max` bytes: control characters and line separators
/// escaped, the end cut (marked with '…') when too long.
pub fn one_line(text: &str, max: usize) -> String {
    let line = escaped(text.chars());
    if line.len() <= max {
        return line;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

fn escaped(chars: impl Iterator<Item = char>) -> String {
    chars
        .flat_map(|c| {
            let unsafe_char = c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
            let escape = unsafe_char.then(|| c.escape_default());
            let plain = (!unsafe_char).then_some(c);
            escape.into_iter().flatten().chain(plain)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_escapes_and_bounds() {
        assert_eq!(one_line("a\nb\tc\u{1b}[0m", 100), "a\\nb\\tc\\u{1b}[0m");
        let long = one_line(&"é".repeat(1000), 512);
        assert!(long.len() <= 512 && long.ends_with('…'), "{}", long.len());
        assert_eq!(shown(&"x".repeat(70)), format!("{}…", "x".repeat(64)));
    }
}
