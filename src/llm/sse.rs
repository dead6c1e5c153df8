//! Server-sent events, decoded from a byte stream that arrives in arbitrary pieces.
//!
//! Written by hand rather than taken from a crate because cairn needs three guarantees a
//! general decoder does not promise: a line or an event longer than a bound is an error (a
//! broken server must not grow memory without limit), invalid UTF-8 is an error rather than
//! silently replaced text, and how the bytes were split never changes the events. The
//! format follows the WHATWG EventSource rules: lines end in LF, CR or CRLF; `:` starts a
//! comment; `data` lines accumulate; a blank line dispatches.

use std::fmt;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, empty when the server sent none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    LineTooLong { limit: usize },
    EventTooLong { limit: usize },
    InvalidUtf8 { line: usize },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::LineTooLong { limit } => {
                write!(f, "a stream line is longer than {limit} bytes")
            }
            SseError::EventTooLong { limit } => {
                write!(f, "a stream event's data is longer than {limit} bytes")
            }
            SseError::InvalidUtf8 { line } => write!(f, "stream line {line} is not valid UTF-8"),
        }
    }
}

impl std::error::Error for SseError {}

/// The default bound on one line, and on one event's data (its `data:` lines together):
/// far above any real event (tool-call arguments arrive in pieces), far below what would
/// hurt.
pub const DEFAULT_MAX_LINE: usize = 8 * 1024 * 1024;

#[derive(Debug)]
pub struct SseDecoder {
    max_line: usize,
    /// Bytes of the line not yet ended.
    partial: Vec<u8>,
    /// The previous chunk ended in CR, so a leading LF belongs to that line ending.
    after_cr: bool,
    at_start: bool,
    lines_seen: usize,
    event: String,
    data: String,
    has_data: bool,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE)
    }
}

impl SseDecoder {
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line,
            partial: Vec::new(),
            after_cr: false,
            at_start: true,
            lines_seen: 0,
            event: String::new(),
            data: String::new(),
            has_data: false,
        }
    }

    /// Feeds the next piece of the stream and returns the events it completed.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        if bytes.is_empty() {
            return Ok(events);
        }
        if self.after_cr && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        self.after_cr = false;
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.check_length(self.partial.len() + end)?;
            self.partial.extend_from_slice(&bytes[..end]);
            let line = std::mem::take(&mut self.partial);
            if let Some(event) = self.line(&line)? {
                events.push(event);
            }
            let is_cr = bytes[end] == b'\r';
            bytes = &bytes[end + 1..];
            if is_cr {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.check_length(self.partial.len() + bytes.len())?;
        self.partial.extend_from_slice(bytes);
        Ok(events)
    }

    /// Ends the stream. An event whose lines all ended but which lacked the final blank
    /// line is still delivered (some servers close right after the last `data:` line); an
    /// unterminated last line is dropped, since it may have been cut anywhere.
    pub fn finish(&mut self) -> Option<SseEvent> {
        self.partial.clear();
        self.dispatch()
    }

    fn check_length(&self, len: usize) -> Result<(), SseError> {
        if len > self.max_line {
            Err(SseError::LineTooLong { limit: self.max_line })
        } else {
            Ok(())
        }
    }

    fn line(&mut self, raw: &[u8]) -> Result<Option<SseEvent>, SseError> {
        self.lines_seen += 1;
        let mut raw = raw;
        if self.at_start {
            self.at_start = false;
            raw = raw.strip_prefix("\u{feff}".as_bytes()).unwrap_or(raw);
        }
        let line = std::str::from_utf8(raw)
            .map_err(|_| SseError::InvalidUtf8 { line: self.lines_seen })?;
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.data.len() + value.len() + 1 > self.max_line {
                    return Err(SseError::EventTooLong { limit: self.max_line });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // `id` and `retry` steer browser reconnection, which cairn does not do.
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent { event, data: std::mem::take(&mut self.data) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, SseError> {
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(decoder.feed(chunk)?);
        }
        events.extend(decoder.finish());
        Ok(events)
    }

    fn fixtures() -> Vec<(String, Vec<u8>)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sse");
        let mut out = Vec::new();
        for provider in std::fs::read_dir(&root).unwrap() {
            for file in std::fs::read_dir(provider.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_some_and(|ext| ext == "sse") {
                    out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
                }
            }
        }
        assert!(out.len() >= 30, "fixtures missing under {}", root.display());
        out
    }

    /// Any split of a fixture's bytes gives the same events: every single split point,
    /// one byte at a time, and fifty seeded random multi-way splits. Fixtures are
    /// also tried with CRLF and CR line endings.
    #[test]
    fn any_split_of_every_fixture_yields_the_same_events() {
        let mut rng = fastrand::Rng::with_seed(7);
        for (name, bytes) in fixtures() {
            let text = String::from_utf8(bytes).unwrap();
            for variant in [text.clone(), text.replace('\n', "\r\n"), text.replace('\n', "\r")] {
                let bytes = variant.as_bytes();
                let whole = decode_in(&[bytes]).unwrap();
                assert!(!whole.is_empty(), "{name}");
                for cut in 0..=bytes.len() {
                    let (a, b) = bytes.split_at(cut);
                    assert_eq!(decode_in(&[a, b]).unwrap(), whole, "{name} split at {cut}");
                }
                let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
                assert_eq!(decode_in(&bytewise).unwrap(), whole, "{name} byte by byte");
                for _ in 0..50 {
                    let mut cuts: Vec<usize> =
                        (0..rng.usize(1..8)).map(|_| rng.usize(0..=bytes.len())).collect();
                    cuts.sort_unstable();
                    let mut pieces = Vec::new();
                    let mut start = 0;
                    for cut in cuts {
                        pieces.push(&bytes[start..cut]);
                        start = cut;
                    }
                    pieces.push(&bytes[start..]);
                    assert_eq!(decode_in(&pieces).unwrap(), whole, "{name} cut {pieces:?}");
                }
            }
        }
    }

    #[test]
    fn fields_comments_and_multiline_data() {
        let events = decode_in(&[
            b": keep-alive\n\nevent: ping\ndata: a\ndata:b\nid: 3\nretry: 10\n\ndata\n\n",
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                SseEvent { event: "ping".into(), data: "a\nb".into() },
                SseEvent { event: String::new(), data: String::new() },
            ]
        );
    }

    #[test]
    fn bom_is_skipped_and_unterminated_tail_dropped() {
        let events = decode_in(&["\u{feff}data: 1\n\ndata: 2\ndata: {\"cut".as_bytes()]).unwrap();
        assert_eq!(
            events,
            vec![
                SseEvent { event: String::new(), data: "1".into() },
                SseEvent { event: String::new(), data: "2".into() },
            ]
        );
    }

    #[test]
    fn long_lines_are_refused_even_across_chunks() {
        let mut decoder = SseDecoder::new(16);
        assert!(decoder.feed(b"data: 0123456").is_ok());
        assert_eq!(decoder.feed(b"789abcdef"), Err(SseError::LineTooLong { limit: 16 }));
    }

    #[test]
    fn an_event_of_many_short_data_lines_is_bounded_too() {
        let mut decoder = SseDecoder::new(16);
        assert!(decoder.feed(b"data: 0123\ndata: 4567\ndata: 89a\n").is_ok());
        assert_eq!(decoder.feed(b"data: bcde\n"), Err(SseError::EventTooLong { limit: 16 }));
        // A dispatched event frees its room.
        let mut decoder = SseDecoder::new(16);
        for _ in 0..100 {
            assert_eq!(decoder.feed(b"data: 0123456789\n\n").unwrap().len(), 1);
        }
    }

    #[test]
    fn invalid_utf8_is_an_error_but_split_utf8_is_not() {
        let mut decoder = SseDecoder::default();
        assert_eq!(decoder.feed(b"data: \xff\n"), Err(SseError::InvalidUtf8 { line: 1 }));
        let snow = "data: ☃\n\n".as_bytes();
        assert_eq!(
            decode_in(&[&snow[..7], &snow[7..]]).unwrap(),
            vec![SseEvent { event: String::new(), data: "☃".into() }]
        );
    }
}
