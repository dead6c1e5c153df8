//! The SSE decoder: never panics, and how the bytes are split never changes the outcome.
#![no_main]

use cairn::llm::sse::{SseDecoder, SseEvent};
use libfuzzer_sys::fuzz_target;

/// A small line bound, so the bound is reached too.
const MAX_LINE: usize = 64;

fn decode(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, ()> {
    let mut decoder = SseDecoder::new(MAX_LINE);
    let mut events = Vec::new();
    for chunk in chunks {
        events.extend(decoder.feed(chunk).map_err(|_| ())?);
    }
    events.extend(decoder.finish());
    Ok(events)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else { return };
    let whole = decode(&[data]);
    let at = usize::from(cut) % (data.len() + 1);
    let (a, b) = data.split_at(at);
    assert_eq!(decode(&[a, b]), whole, "split at {at}");
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(decode(&bytes), whole, "byte by byte");
});
