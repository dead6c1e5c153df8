//! Session titles: the one short line `cairn sessions` shows for a session, made from its
//! first prompt.
//!
//! A title reaches terminals from places cairn does not control: a prompt pasted with
//! escape sequences, a hook payload, or a fetched session's `session.toml`. So the same
//! function makes a title when a session starts and cleans a stored one before it is
//! printed: one line, no control or bidirectional-override characters, a bounded length.

/// How many characters a title keeps; a longer one ends in an ellipsis.
pub const MAX_CHARS: usize = 60;

/// What a session whose prompt holds no printable text is called.
const UNTITLED: &str = "(untitled)";

/// A one-line title for a session whose first prompt is `prompt`: its first line with
/// printable text, control characters dropped, runs of whitespace collapsed to one space,
/// and cut at [`MAX_CHARS`] characters with an ellipsis.
pub fn session_title(prompt: &str) -> String {
    prompt.lines().map(clean_line).find(|line| !line.is_empty()).map_or_else(
        || UNTITLED.to_string(),
        |line| {
            if line.chars().count() <= MAX_CHARS {
                return line;
            }
            let mut cut: String = line.chars().take(MAX_CHARS - 1).collect();
            cut.truncate(cut.trim_end().len());
            cut.push('…');
            cut
        },
    )
}

/// `line` with its words joined by single spaces and unprintable characters removed.
fn clean_line(line: &str) -> String {
    let printable: String = line
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| !is_hidden_control(*c))
        .collect();
    printable.split(' ').filter(|word| !word.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Characters that move the cursor, change colors or reorder text on a terminal rather
/// than print: C0 and C1 controls (ESC among them), and the bidirectional overrides and
/// isolates that make text read differently from what it holds.
fn is_hidden_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_is_the_first_line_with_its_whitespace_collapsed() {
        assert_eq!(session_title("\n\n  fix   the\tbug  \nin lib.sh"), "fix the bug");
        assert_eq!(session_title("make it\r\nwork"), "make it");
    }

    #[test]
    fn a_long_prompt_is_cut_with_an_ellipsis() {
        let prompt = "word ".repeat(30);
        let title = session_title(&prompt);
        assert_eq!(title.chars().count(), MAX_CHARS);
        assert_eq!(title, format!("{}…", ["word"; 12].join(" ")));
        let exact = "x".repeat(MAX_CHARS);
        assert_eq!(session_title(&exact), exact, "a title of exactly the limit is kept whole");
        let wide = "é".repeat(MAX_CHARS + 1);
        assert_eq!(session_title(&wide).chars().count(), MAX_CHARS, "counted in characters");
    }

    #[test]
    fn escape_sequences_and_bidi_overrides_do_not_survive() {
        let hostile = "\x1b[2J\x1b]0;owned\x07\u{202E}gnp.exe\u{9b}31m done";
        let title = session_title(hostile);
        assert!(title.chars().all(|c| !is_hidden_control(c)), "{title:?}");
        assert_eq!(title, "[2J]0;ownedgnp.exe31m done");
    }

    #[test]
    fn a_prompt_with_nothing_printable_is_untitled() {
        assert_eq!(session_title(""), UNTITLED);
        assert_eq!(session_title(" \n\t\n\x1b\x07\n"), UNTITLED);
        assert_eq!(session_title("\x1b\x1b\nsecond line"), "second line");
    }

    #[test]
    fn a_clean_title_is_left_as_it_is() {
        for title in ["fix the bug", "(untitled)", "résumé: 😀 ok"] {
            assert_eq!(session_title(title), title);
        }
        let long = session_title(&"abc ".repeat(40));
        assert_eq!(session_title(&long), long, "cleaning a stored title changes nothing");
    }
}
