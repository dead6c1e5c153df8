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

pub use message::{Message, Reasoning, ToolArguments, ToolCall};

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

/// The persisted JSON of a wire message: an assistant message's reasoning, if any, goes
/// under its `reasoning` key.
pub fn encode(message: &llm::Message) -> Value {
    let json = Message::from(message).into_json();
    match message {
        llm::Message::Assistant { reasoning, .. } if !reasoning.is_empty() => {
            let list = reasoning.iter().map(|block| Reasoning::from(block).into_json());
            with_key(json, "reasoning", Value::Array(list.collect()))
        }
        _ => json,
    }
}

/// `object` with `key` added, keys in sorted order whatever `serde_json` keeps them in
/// (see the [`message`] module).
fn with_key(object: Value, key: &str, value: Value) -> Value {
    let Value::Object(map) = object else { return object };
    let mut sorted: std::collections::BTreeMap<String, Value> = map.into_iter().collect();
    sorted.insert(key.to_owned(), value);
    Value::Object(sorted.into_iter().collect())
}

/// Rebuilds a conversation of wire messages from its stored JSON, in order.
pub fn decode_conversation(messages: &[Value]) -> Result<Vec<llm::Message>, DecodeError> {
    messages
        .iter()
        .enumerate()
        .map(|(i, value)| decode(value).map_err(|source| DecodeError { number: i + 1, source }))
        .collect()
}

/// One stored message as a wire message, with its reasoning.
fn decode(value: &Value) -> Result<llm::Message, serde_json::Error> {
    let mut message = Message::from_json(value)?.into_wire();
    if let llm::Message::Assistant { reasoning, .. } = &mut message {
        *reasoning = Reasoning::list_in(value)?.into_iter().map(Reasoning::into_wire).collect();
    }
    Ok(message)
}

/// The reasoning text of a stored message that people may read, pieces apart by a blank
/// line: never a signature or encrypted content. Read field by field, so that it works on
/// a [`presentable`] message too and presenting a session never fails on it.
pub fn readable_reasoning(message: &Value) -> String {
    let entries = message.get("reasoning").and_then(Value::as_array).map(Vec::as_slice);
    let texts: Vec<&str> = entries
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| entry.get("text").or_else(|| entry.get("summary"))?.as_str())
        .filter(|text| !text.is_empty())
        .collect();
    texts.join("\n\n")
}

/// Redacts a stored message with `redact` (which returns how many secrets it replaced),
/// except the provider's opaque tokens in its reasoning, which hold nothing readable and
/// would be refused if changed. Thinking text whose redaction changed it no longer matches
/// its signature, so it is kept as plain reasoning text, never sent back.
pub fn redact_message(message: &mut Value, redact: impl Fn(&mut Value) -> usize) {
    let Some(Value::Array(list)) = message.get_mut("reasoning").map(Value::take) else {
        redact(message);
        return;
    };
    redact(message);
    let list = list.into_iter().map(|entry| redact_reasoning(entry, &redact)).collect();
    if let Value::Object(map) = message {
        map.insert("reasoning".into(), Value::Array(list));
    }
}

/// One stored reasoning entry, redacted but for its opaque token.
fn redact_reasoning(mut entry: Value, redact: &impl Fn(&mut Value) -> usize) -> Value {
    let pointer = opaque_pointer(&entry);
    let token = pointer.and_then(|pointer| entry.pointer_mut(pointer)).map(Value::take);
    let redacted = redact(&mut entry) > 0;
    match (pointer, token) {
        (Some("/signature"), Some(_)) if redacted => {
            let text = entry.get("text").cloned().unwrap_or_default();
            serde_json::json!({"kind": "text", "text": text})
        }
        (Some(pointer), Some(token)) => {
            if let Some(slot) = entry.pointer_mut(pointer) {
                *slot = token;
            }
            entry
        }
        _ => entry,
    }
}

/// Where a stored reasoning entry holds the provider's opaque token, by its kind.
fn opaque_pointer(entry: &Value) -> Option<&'static str> {
    match entry.get("kind").and_then(Value::as_str)? {
        "thinking" => Some("/signature"),
        "redacted_thinking" => Some("/data"),
        "responses_item" => Some("/item/encrypted_content"),
        _ => None,
    }
}

/// A stored message as a session is shown to people (`cairn export`): its reasoning's
/// opaque tokens (signatures, encrypted content) taken out, mean nothing to a reader.
pub fn presentable(mut message: Value) -> Value {
    let entries = message.get_mut("reasoning").and_then(Value::as_array_mut);
    for entry in entries.into_iter().flatten() {
        let Some(pointer) = opaque_pointer(entry) else { continue };
        let (parent, key) = pointer.rsplit_once('/').unwrap_or_default();
        if let Some(Value::Object(holder)) = entry.pointer_mut(parent) {
            holder.remove(key);
        }
    }
    message
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A token that looks like an API key to the redactor.
    const KEY_LIKE: &str = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz";

    /// A stand-in for `secrets::redact_json` (a layer above this one) that knows one key.
    fn redact_key_like(value: &mut Value) -> usize {
        match value {
            Value::String(text) if text.contains(KEY_LIKE) => {
                *text = text.replace(KEY_LIKE, "[redacted]");
                1
            }
            Value::Array(items) => items.iter_mut().map(redact_key_like).sum(),
            Value::Object(map) => map.values_mut().map(redact_key_like).sum(),
            _ => 0,
        }
    }

    #[test]
    fn redaction_keeps_opaque_tokens_and_demotes_thinking_it_changed() {
        let mut message = json!({
            "role": "assistant",
            "text": "done",
            "reasoning": [
                {"kind": "thinking", "text": "plain thought", "signature": format!("Eq/{KEY_LIKE}")},
                {"kind": "thinking", "text": format!("the key is {KEY_LIKE}"), "signature": "Eq=="},
                {"kind": "redacted_thinking", "data": format!("+{KEY_LIKE}")},
                {"kind": "responses_item", "summary": "s", "item": {
                    "type": "reasoning", "encrypted_content": format!("-{KEY_LIKE}"),
                }},
            ],
        });
        redact_message(&mut message, redact_key_like);
        let reasoning = &message["reasoning"];
        assert_eq!(reasoning[0]["signature"], format!("Eq/{KEY_LIKE}"));
        assert_eq!(reasoning[1], json!({"kind": "text", "text": "the key is [redacted]"}));
        assert_eq!(reasoning[2]["data"], format!("+{KEY_LIKE}"));
        assert_eq!(reasoning[3]["item"]["encrypted_content"], format!("-{KEY_LIKE}"));
    }

    #[test]
    fn presentable_messages_hold_no_opaque_token_and_keep_their_text() {
        let message = json!({"role": "assistant", "reasoning": [
            {"kind": "thinking", "text": "thought", "signature": "SIG"},
            {"kind": "redacted_thinking", "data": "DATA"},
            {"kind": "responses_item", "summary": "summary", "item": {"id": "rs_1", "encrypted_content": "ENC"}},
        ]});
        let shown = presentable(message);
        let text = shown.to_string();
        assert!(!text.contains("SIG") && !text.contains("DATA") && !text.contains("ENC"), "{text}");
        assert_eq!(readable_reasoning(&shown), "thought\n\nsummary");
    }

    #[test]
    fn reasoning_round_trips_through_the_stored_form_and_old_messages_have_none() {
        let message = llm::Message::Assistant {
            reasoning: vec![
                llm::ReasoningBlock::Thinking { text: "t".into(), signature: "s".into() },
                llm::ReasoningBlock::RedactedThinking { data: "d".into() },
                llm::ReasoningBlock::Text { text: "plain".into() },
                llm::ReasoningBlock::ResponsesItem {
                    item: json!({"id": "rs_1", "encrypted_content": "e"}),
                    summary: "sum".into(),
                },
            ],
            text: "hi".into(),
            tool_calls: Vec::new(),
        };
        let stored = encode(&message);
        let keys: Vec<&String> = stored.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["reasoning", "role", "text"]);
        assert_eq!(decode_conversation(&[stored]).unwrap(), [message]);
        let old = json!({"role": "assistant", "text": "hi"});
        let decoded = decode_conversation(&[old]).unwrap();
        assert!(
            matches!(&decoded[0], llm::Message::Assistant { reasoning, .. } if reasoning.is_empty())
        );
    }
}
