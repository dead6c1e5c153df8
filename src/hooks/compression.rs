//! Whether Gemini CLI really compressed its history after a `PreCompress`.
//!
//! Gemini CLI fires `PreCompress` before every model request, before it tests its own
//! threshold, so the event says only that a compression may follow. cairn keeps it as
//! pending (a [`Pending`] beside the agent session's cache entry, see `sessions`) and, at
//! that agent session's next recorded hook call, reads Gemini's transcript for the evidence
//! it accepts: a line `{"$set": {"messages": […]}}` written after the `PreCompress`
//! (beyond the transcript's length then) that leaves the conversation with fewer messages
//! than it had. That is how Gemini's JSONL transcript stores a history it replaced; a
//! `$rewindTo` (the user rewinding) also shortens it but is not a compression, and a `$set`
//! of as many messages (tool output masked) is not one either. A transcript that is
//! missing, not a regular file, larger than [`agent_transcript::MAX_BYTES`] or not JSON
//! Lines (older Gemini versions wrote one JSON document and did not store a compressed
//! history at all) shows no compression, so no `compact` step is recorded.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::agent_transcript;

/// A `PreCompress` not yet confirmed or dismissed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Pending {
    pub trigger: Option<String>,
    pub transcript: Option<PathBuf>,
    /// The transcript's length when the event fired: evidence must come after it.
    pub offset: u64,
}

impl Pending {
    /// The `PreCompress` of `transcript` (as the payload named it), now.
    pub(super) fn now(trigger: Option<String>, transcript: Option<PathBuf>) -> Pending {
        let offset = transcript
            .as_deref()
            .and_then(|path| std::fs::metadata(path).ok())
            .filter(|meta| meta.is_file())
            .map_or(0, |meta| meta.len());
        Pending { trigger, transcript, offset }
    }

    /// Whether the transcript shows the history compressed since the event.
    pub(super) fn happened(&self) -> bool {
        let Some(path) = &self.transcript else { return false };
        match agent_transcript::read_regular(path, agent_transcript::MAX_BYTES) {
            Ok(bytes) => compressed_after(&bytes, self.offset),
            Err(_) => false,
        }
    }
}

/// One line of Gemini's JSONL transcript, as far as the message count goes. Lines of other
/// shapes (the session's metadata, or anything garbled) parse to nothing.
#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "$rewindTo", default)]
    rewind_to: Option<String>,
    #[serde(rename = "$set", default)]
    set: Option<Set>,
}

#[derive(Deserialize)]
struct Set {
    #[serde(default)]
    messages: Option<Vec<MessageId>>,
}

#[derive(Deserialize)]
struct MessageId {
    #[serde(default)]
    id: Option<String>,
}

/// Replays the transcript's message list and says whether a `$set` of the messages that
/// starts at or after byte `offset` shortened it.
fn compressed_after(bytes: &[u8], offset: u64) -> bool {
    let mut ids: Vec<String> = Vec::new();
    let mut known: HashSet<String> = HashSet::new();
    let mut start = 0u64;
    for line in bytes.split(|&b| b == b'\n') {
        let at = start;
        start += line.len() as u64 + 1;
        let Ok(line) = serde_json::from_slice::<Line>(line) else { continue };
        if let Some(Set { messages: Some(messages) }) = line.set {
            let before = ids.len();
            ids = messages.into_iter().map(|m| m.id.unwrap_or_default()).collect();
            known = ids.iter().cloned().collect();
            if at >= offset && ids.len() < before {
                return true;
            }
        } else if let Some(target) = line.rewind_to {
            let keep = ids.iter().position(|id| *id == target).unwrap_or(0);
            ids.truncate(keep);
            known = ids.iter().cloned().collect();
        } else if let Some(id) = line.id
            // A message written again (its tokens or tool calls filled in) is the same one.
            && known.insert(id.clone())
        {
            ids.push(id);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn line_of(value: serde_json::Value) -> String {
        format!("{value}\n")
    }

    fn transcript(lines: &[serde_json::Value]) -> String {
        lines.iter().cloned().map(line_of).collect()
    }

    fn message(id: &str) -> serde_json::Value {
        json!({"id": id, "timestamp": "2026-12-01T10:00:00Z", "type": "user", "content": [{"text": id}]})
    }

    #[test]
    fn only_a_shorter_history_set_after_the_event_is_a_compression() {
        let head = transcript(&[
            json!({"sessionId": "g", "projectHash": "p", "startTime": "t", "lastUpdated": "t"}),
            message("a"),
            message("b"),
            message("b"),
            message("c"),
            json!({"$set": {"lastUpdated": "t2"}}),
        ]);
        let offset = head.len() as u64;
        let shorter = json!({"$set": {"messages": [{"id": "s", "type": "user"}, {"id": "c"}]}});
        assert!(compressed_after(format!("{head}{}", line_of(shorter.clone())).as_bytes(), offset));
        // Nothing new, new messages, or as many messages with masked content: no.
        assert!(!compressed_after(head.as_bytes(), offset));
        let more = format!("{head}{}", line_of(message("d")));
        assert!(!compressed_after(more.as_bytes(), offset));
        let masked = json!({"$set": {"messages": [{"id": "a"}, {"id": "b"}, {"id": "c"}]}});
        assert!(!compressed_after(format!("{head}{}", line_of(masked)).as_bytes(), offset));
        // A rewind shortens the history but is the user's.
        let rewound = format!("{head}{}", line_of(json!({"$rewindTo": "b"})));
        assert!(!compressed_after(rewound.as_bytes(), offset));
        // A compression before the event is an earlier one.
        let earlier = format!("{head}{}", line_of(shorter));
        assert!(!compressed_after(earlier.as_bytes(), earlier.len() as u64));
    }

    #[test]
    fn garbled_transcripts_show_no_compression() {
        for garbled in [
            "not json at all\n{\"$set\": {\"messages\": []}}".to_string(),
            // Wrongly typed fields, a legacy single JSON document, binary.
            transcript(&[message("a"), json!({"$set": {"messages": "none"}}), json!({"id": 7})]),
            "{\n  \"sessionId\": \"g\",\n  \"messages\": [{\"id\": \"a\"}]\n}\n".to_string(),
            String::from_utf8_lossy(&[0xff, 0xfe, b'\n', 0, 0]).into_owned(),
        ] {
            assert!(!compressed_after(garbled.as_bytes(), 0), "{garbled:?}");
        }
        // The first line shrinking a history of zero is no compression either.
        assert!(!compressed_after(b"{\"$set\": {\"messages\": []}}\n", 0));
    }

    #[test]
    fn a_missing_or_special_transcript_is_no_evidence() {
        let pending = Pending::now(Some("auto".into()), Some("/nonexistent/t.jsonl".into()));
        assert_eq!(pending.offset, 0);
        assert!(!pending.happened());
        assert!(!Pending::now(None, None).happened());
        let dev = Pending { trigger: None, transcript: Some("/dev/zero".into()), offset: 0 };
        assert!(!dev.happened());
    }

    #[test]
    fn the_offset_is_the_transcripts_length_at_the_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.jsonl");
        let head = transcript(&[message("a"), message("b")]);
        std::fs::write(&path, &head).unwrap();
        let pending = Pending::now(Some("auto".into()), Some(path.clone()));
        assert_eq!(pending.offset, head.len() as u64);
        assert!(!pending.happened());
        let compressed = json!({"$set": {"messages": [{"id": "s"}]}});
        std::fs::write(&path, format!("{head}{}", line_of(compressed))).unwrap();
        assert!(pending.happened());
    }
}
