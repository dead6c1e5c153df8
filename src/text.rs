//! Text helpers shared by the agent and the command line, among them the one escaping
//! of untrusted text for the terminal ([`terminal_safe`]).

use std::borrow::Cow;
use std::fmt::Write as _;

/// A subject line: the first line, trimmed and capped so `git log --oneline` stays tidy.
pub fn one_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or("(no subject)");
    const MAX: usize = 100;
    if line.chars().count() > MAX {
        let mut cut: String = line.chars().take(MAX - 1).collect();
        cut.push('…');
        cut
    } else {
        line.to_string()
    }
}

/// Lines added and removed between two texts (a line diff, as `git diff --stat` counts).
pub fn line_counts(old: &str, new: &str) -> (usize, usize) {
    let diff = similar::TextDiff::from_lines(old, new);
    let mut added = 0;
    let mut removed = 0;
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    (added, removed)
}

/// Whether content is binary by git's rule: a NUL byte in its first 8,000 bytes.
pub fn is_binary(bytes: &[u8]) -> bool {
    bytes.iter().take(8000).any(|b| *b == 0)
}

/// `text` made safe to print on a terminal: every control character except `\n` and `\t`
/// is shown in Rust's escape form, `\u{1b}` for ESC. That covers C0 (so no escape
/// sequence can start: `ESC [ 2 J`, OSC `ESC ] 0 ; title BEL`, OSC 8 links), DEL, and C1
/// (U+0080 to U+009F, whose U+009B is a one-character CSI), and `\r` except as part of
/// `\r\n` (a lone `\r` returns the cursor and overwrites what was printed). Printable text,
/// including all other Unicode, is unchanged.
///
/// For model text, reasoning, tool output, commit subjects and file names: anything
/// cairn did not write itself. cairn's own colours are added after escaping.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    let needs =
        |(i, c): (usize, char)| is_unsafe(c) && !(c == '\r' && text[i + 1..].starts_with('\n'));
    if !text.char_indices().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() == Some(&'\n') {
            out.push(c);
        } else {
            push_escaped(&mut out, c);
        }
    }
    Cow::Owned(out)
}

/// Whether `c` is a control character [`terminal_safe`] escapes (`\r` before `\n` aside).
fn is_unsafe(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

fn push_escaped(out: &mut String, c: char) {
    if is_unsafe(c) {
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
    } else {
        out.push(c);
    }
}

/// [`terminal_safe`] for text that arrives in pieces (a streamed answer): a `\r` at the
/// end of one piece is held until the next shows whether a `\n` follows it. Pieces are
/// whole `str`s, so a multi-byte character is never split between two of them.
#[derive(Debug, Default)]
pub struct TerminalStream {
    held_cr: bool,
}

impl TerminalStream {
    /// The printable form of `piece`, given the pieces before it.
    pub fn escape(&mut self, piece: &str) -> String {
        let mut out = String::with_capacity(piece.len() + 1);
        if std::mem::take(&mut self.held_cr) {
            if piece.starts_with('\n') {
                out.push('\r');
            } else {
                push_escaped(&mut out, '\r');
            }
        }
        let piece = match piece.strip_suffix('\r') {
            Some(rest) => {
                self.held_cr = true;
                rest
            }
            None => piece,
        };
        out.push_str(&terminal_safe(piece));
        out
    }

    /// What is still held once the stream has ended (a last lone `\r`, escaped).
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        if std::mem::take(&mut self.held_cr) {
            push_escaped(&mut out, '\r');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{TerminalStream, one_line, terminal_safe};

    #[test]
    fn subjects_are_one_trimmed_line() {
        assert_eq!(one_line("\n  first line  \nsecond"), "first line");
        assert_eq!(one_line(""), "(no subject)");
        assert_eq!(one_line(&"x".repeat(300)).chars().count(), 100);
    }

    #[test]
    fn escapes_every_control_but_newline_tab_and_crlf() {
        assert_eq!(terminal_safe("plain\ttext\nnext ünïcødé ✓"), "plain\ttext\nnext ünïcødé ✓");
        assert!(matches!(terminal_safe("clean"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(terminal_safe("\x1b[2Jwiped"), "\\u{1b}[2Jwiped");
        assert_eq!(terminal_safe("\x1b]0;title\x07"), "\\u{1b}]0;title\\u{7}");
        assert_eq!(
            terminal_safe("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\"),
            "\\u{1b}]8;;http://evil\\u{1b}\\link\\u{1b}]8;;\\u{1b}\\"
        );
        assert_eq!(terminal_safe("ok\r\nfake\roverwrite\r"), "ok\r\nfake\\u{d}overwrite\\u{d}");
        assert_eq!(terminal_safe("\u{9b}31m c1 \u{85}"), "\\u{9b}31m c1 \\u{85}");
        assert_eq!(terminal_safe("\0\x08\x7f"), "\\u{0}\\u{8}\\u{7f}");
    }

    #[test]
    fn nothing_printed_from_escaped_text_is_a_control_character() {
        let every: String = (0u32..0x200).filter_map(char::from_u32).collect();
        let safe = terminal_safe(&every);
        assert!(safe.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'), "{safe:?}");
    }

    #[test]
    fn a_stream_holds_a_trailing_cr_until_it_knows_what_follows() {
        let mut stream = TerminalStream::default();
        let pieces = ["line\r", "\nnext\r", "over", "é\x1b", "[1m\r"];
        let out: String =
            pieces.iter().map(|p| stream.escape(p)).collect::<String>() + &stream.finish();
        assert_eq!(out, "line\r\nnext\\u{d}overé\\u{1b}[1m\\u{d}");
        let whole: String = pieces.concat();
        assert_eq!(out, terminal_safe(&whole));
    }

    #[test]
    fn counts_added_and_removed_lines() {
        assert_eq!(super::line_counts("a\nb\nc\n", "a\nB\nc\nd\n"), (2, 1));
        assert_eq!(super::line_counts("", "x\n"), (1, 0));
        assert_eq!(super::line_counts("same\n", "same\n"), (0, 0));
    }
}
