//! Truncation of tool output, shared by every tool, so the model always sees the start and
//! the end of a long text and is told exactly how much was left out.
//!
//! [`truncate_middle`] cuts a text that is already in memory; [`HeadTail`] keeps the first
//! and last bytes of a stream of any length (a command that prints gigabytes) in bounded
//! memory.

/// The marker that stands for the bytes left out.
fn omitted_marker(bytes: u64) -> String {
    format!("\n[… {bytes} bytes omitted …]\n")
}

/// Returns `text` unchanged if it fits in `max_bytes`, else its head and tail (about half of
/// `max_bytes` each, cut on char boundaries) around a marker that states how many bytes
/// were left out. The marker itself is not counted in `max_bytes`.
pub fn truncate_middle(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    let head_end = floor_char_boundary(text, max_bytes / 2);
    let tail_start = ceil_char_boundary(text, text.len() - (max_bytes - max_bytes / 2));
    let omitted = (tail_start - head_end) as u64;
    format!("{}{}{}", &text[..head_end], omitted_marker(omitted), &text[tail_start..])
}

/// The largest char boundary of `text` at or below `index`.
fn floor_char_boundary(text: &str, index: usize) -> usize {
    (0..=index.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0)
}

/// The smallest char boundary of `text` at or above `index`.
fn ceil_char_boundary(text: &str, index: usize) -> usize {
    (index..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len())
}

/// The first and last `keep` bytes of a byte stream, and a count of what fell between.
///
/// Memory stays under about `3 * keep` bytes however much is pushed: the tail buffer is
/// allowed to grow to twice `keep` before its front is dropped, so the cost of dropping
/// stays amortized constant per byte.
#[derive(Debug)]
pub struct HeadTail {
    keep: usize,
    head: Vec<u8>,
    tail: Vec<u8>,
    /// Bytes dropped from the front of `tail`.
    dropped: u64,
}

impl HeadTail {
    pub fn new(keep: usize) -> HeadTail {
        HeadTail { keep, head: Vec::new(), tail: Vec::new(), dropped: 0 }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.head.len() < self.keep {
            let take = bytes.len().min(self.keep - self.head.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        if bytes.len() >= self.keep {
            // The whole tail is replaced: skip copying what would be dropped at once.
            let skip = bytes.len() - self.keep;
            self.dropped += (self.tail.len() + skip) as u64;
            self.tail.clear();
            self.tail.extend_from_slice(&bytes[skip..]);
            return;
        }
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > 2 * self.keep {
            let excess = self.tail.len() - self.keep;
            self.tail.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// Total bytes pushed.
    pub fn total(&self) -> u64 {
        (self.head.len() + self.tail.len()) as u64 + self.dropped
    }

    /// The text kept, decoded lossily, with a marker stating the omitted size when anything
    /// was dropped. A UTF-8 sequence cut at either edge of the gap is counted as omitted
    /// rather than shown as a replacement character.
    pub fn render(&self) -> String {
        let tail_start = self.tail.len().saturating_sub(self.keep);
        let tail = &self.tail[tail_start..];
        let omitted = self.dropped + tail_start as u64;
        if omitted == 0 {
            let mut all = self.head.clone();
            all.extend_from_slice(tail);
            return String::from_utf8_lossy(&all).into_owned();
        }
        let head_len = complete_utf8_prefix(&self.head);
        let tail_skip = tail.iter().take(3).take_while(|&&b| is_continuation(b)).count();
        let omitted = omitted + (self.head.len() - head_len + tail_skip) as u64;
        format!(
            "{}{}{}",
            String::from_utf8_lossy(&self.head[..head_len]),
            omitted_marker(omitted),
            String::from_utf8_lossy(&tail[tail_skip..])
        )
    }
}

fn is_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

/// The length of `bytes` without a multi-byte UTF-8 sequence cut off at its end.
fn complete_utf8_prefix(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Err(err) if err.error_len().is_none() => err.valid_up_to(),
        _ => bytes.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_unchanged() {
        assert_eq!(truncate_middle("hello", 5), "hello");
        assert_eq!(truncate_middle("", 0), "");
    }

    #[test]
    fn long_text_keeps_head_and_tail_and_states_the_omitted_size() {
        let text = format!("{}{}{}", "a".repeat(100), "b".repeat(1000), "c".repeat(100));
        let out = truncate_middle(&text, 200);
        assert!(out.starts_with(&"a".repeat(100)));
        assert!(out.ends_with(&"c".repeat(100)));
        assert!(out.contains("[… 1000 bytes omitted …]"), "{out}");
    }

    #[test]
    fn cuts_fall_on_char_boundaries() {
        let text = "é".repeat(100); // 200 bytes, two per char
        let out = truncate_middle(&text, 51);
        let (head, rest) = out.split_once('\n').unwrap();
        let tail = rest.rsplit_once('\n').unwrap().1;
        assert!(head.chars().all(|c| c == 'é') && tail.chars().all(|c| c == 'é'));
        let omitted = 200 - head.len() - tail.len();
        assert!(out.contains(&format!("[… {omitted} bytes omitted …]")), "{out}");
    }

    #[test]
    fn head_tail_keeps_everything_while_it_fits() {
        let mut kept = HeadTail::new(4);
        kept.push(b"abc");
        kept.push(b"defgh");
        assert_eq!(kept.render(), "abcdefgh");
        assert_eq!(kept.total(), 8);
    }

    #[test]
    fn head_tail_keeps_first_and_last_bytes_of_a_long_stream() {
        let mut kept = HeadTail::new(4);
        for chunk in [&b"0123"[..], b"45", b"6789abcdef", b"g", b"hij"] {
            kept.push(chunk);
        }
        assert_eq!(kept.total(), 20);
        assert_eq!(kept.render(), "0123\n[… 12 bytes omitted …]\nghij");
    }

    #[test]
    fn head_tail_memory_stays_bounded() {
        let mut kept = HeadTail::new(1024);
        let chunk = vec![b'y'; 1000];
        for _ in 0..10_000 {
            kept.push(&chunk);
            assert!(kept.head.len() + kept.tail.len() <= 3 * 1024);
        }
        assert_eq!(kept.total(), 10_000_000);
        assert!(kept.render().contains(&format!("[… {} bytes omitted …]", 10_000_000 - 2048)));
    }

    #[test]
    fn head_tail_drops_utf8_sequences_cut_at_the_gap() {
        let mut kept = HeadTail::new(3);
        kept.push("aaéé".as_bytes()); // the head keeps "aa" and the first byte of an é
        kept.push(&[b'x'; 10]);
        kept.push("éé".as_bytes()); // the tail keeps the last byte of an é, then an é
        assert_eq!(kept.render(), "aa\n[… 16 bytes omitted …]\né");
    }
}
