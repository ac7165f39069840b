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

/// `word` as one word of a shell command a user may paste: as it is when nothing in it means
/// anything to a shell, else in single quotes (a quote inside as `'\''`).
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
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
    fn shell_words_paste_as_one_word() {
        assert_eq!(shell_word("win11"), "win11");
        assert_eq!(shell_word("pitcrew@win11.service"), "pitcrew@win11.service");
        assert_eq!(
            shell_word(r"pitcrew@gpu\x2dvm.service"),
            r"'pitcrew@gpu\x2dvm.service'"
        );
        assert_eq!(shell_word("my vm"), "'my vm'");
        assert_eq!(shell_word("a'b;rm -rf ~"), r"'a'\''b;rm -rf ~'");
        assert_eq!(shell_word("$(id)"), "'$(id)'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn one_line_escapes_and_bounds() {
        assert_eq!(one_line("a\nb\tc\u{1b}[0m", 100), "a\\nb\\tc\\u{1b}[0m");
        let long = one_line(&"é".repeat(1000), 512);
        assert!(long.len() <= 512 && long.ends_with('…'), "{}", long.len());
        assert_eq!(shown(&"x".repeat(70)), format!("{}…", "x".repeat(64)));
    }
}
