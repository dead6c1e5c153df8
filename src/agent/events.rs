//! What the agent reports while it works. The headless front end prints text to stdout
//! and activity to stderr; with `--json` every event is one JSON object per line.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    SessionStarted {
        session: String,
        model: String,
    },
    StepRecorded {
        step: u64,
        commit: String,
        kind: String,
        subject: String,
    },
    TextDelta {
        text: String,
    },
    ReasoningDelta {
        text: String,
    },
    ToolCall {
        id: String,
        name: String,
        arguments: serde_json::Value,
    },
    ToolResult {
        id: String,
        name: String,
        is_error: bool,
        content: String,
    },
    Usage {
        input_tokens: u64,
        output_tokens: u64,
        cached_input_tokens: u64,
        cache_write_input_tokens: u64,
        reasoning_tokens: u64,
    },
    Retry {
        message: String,
    },
    /// Something went wrong that the session survives (a summary call failed).
    Notice {
        message: String,
    },
    Done {
        session: String,
        checkpoint: String,
        reason: String,
    },
    Error {
        message: String,
    },
}
