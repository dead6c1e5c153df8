//! The persisted conversation: the JSON of the messages a step stores under
//! `.cairn/state/messages/` (one file per message), versioned by [`SCHEMA_VERSION`], with
//! conversions to and from the wire types of [`crate::llm`].
//!
//! The wire types serve the provider clients and change with them; these types are what
//! every recorded and pushed session holds, so they change only together with
//! [`SCHEMA_VERSION`]. `tests/it/transcript.rs` pins the JSON of each message kind and
//! reads a session recorded by an earlier cairn (`fixtures/sessions/`).
//!
//! The agent keeps its conversation as wire messages and converts at the store's edge
//! ([`encode`], [`decode_conversation`]); readers that only present a session (export,
//! the review page) decode [`Message`]s and need no wire type at all.

mod message;

use serde_json::Value;

use crate::llm;

pub use message::{Message, ToolArguments, ToolCall};

/// The version of the persisted session format: the messages' JSON and the `.cairn/`
/// state beside them. `session.toml` names it as `schema`; one without the field is
/// version 1. A session whose schema is newer than this is refused, never misread.
pub const SCHEMA_VERSION: u32 = 1;

/// A stored message that is not a message of this schema.
#[derive(Debug, thiserror::Error)]
#[error("message {number}: {source}")]
pub struct DecodeError {
    /// The message's number in the conversation, from 1.
    pub number: usize,
    #[source]
    pub source: serde_json::Error,
}

/// The persisted JSON of a wire message.
pub fn encode(message: &llm::Message) -> Value {
    Message::from(message).into_json()
}

/// Rebuilds a conversation of wire messages from its stored JSON, in order.
pub fn decode_conversation(messages: &[Value]) -> Result<Vec<llm::Message>, DecodeError> {
    messages
        .iter()
        .enumerate()
        .map(|(i, value)| {
            Message::from_json(value)
                .map(Message::into_wire)
                .map_err(|source| DecodeError { number: i + 1, source })
        })
        .collect()
}

/// A tool call as `step.json` lists it under `tool_calls`: its arguments as they came, or,
/// when they were not JSON, the raw text and why.
pub fn step_tool_call(call: &llm::ToolCall) -> Value {
    let mut entry = serde_json::Map::new();
    entry.insert("id".into(), call.id.clone().into());
    entry.insert("name".into(), call.name.clone().into());
    match &call.arguments {
        llm::ToolArguments::Json(arguments) => {
            entry.insert("arguments".into(), arguments.clone());
        }
        llm::ToolArguments::Invalid { raw, error } => {
            entry.insert("invalid_arguments".into(), raw.clone().into());
            entry.insert("error".into(), error.clone().into());
        }
    }
    Value::Object(entry)
}
