//! Anthropic Messages.
//!
//! The stream is a sequence of typed events: `message_start` (with input usage), content
//! blocks that open, receive deltas and close (text, tool use with its input as JSON
//! fragments, thinking), `message_delta` (stop reason and cumulative usage), `ping`,
//! `error`, and `message_stop`, which marks a complete answer. Requests carry the system
//! text as a top-level field and tool results as `tool_result` blocks inside user turns.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::sse::SseEvent;
use super::{
    Decode, FinishReason, LlmError, Message, Request, StreamEvent, ToolArguments, ToolCall, Usage,
    count, parse_json, stream_error,
};

pub(crate) const TERMINATOR: &str = "message_stop";
pub(crate) const API_VERSION: &str = "2023-06-01";

pub(crate) fn request_body(request: &Request) -> Value {
    // Consecutive entries of one role become one turn: tool results and the user's next
    // words share a user turn, as the API expects.
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = match message {
            Message::User { text } => ("user", text_block(text)),
            Message::Assistant { text, tool_calls } => {
                let mut blocks = text_block(text);
                blocks.extend(tool_calls.iter().map(|call| {
                    // The API only accepts an object as input.
                    let input = match call.arguments.to_wire_value() {
                        value @ Value::Object(_) => value,
                        _ => Value::Object(Map::new()),
                    };
                    json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input})
                }));
                ("assistant", blocks)
            }
            Message::ToolResult { call_id, content, is_error } => {
                let mut block =
                    json!({"type": "tool_result", "tool_use_id": call_id, "content": content});
                if *is_error {
                    block["is_error"] = json!(true);
                }
                ("user", vec![block])
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, content)) if *last == role => content.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_output_tokens,
        "messages": messages,
        "stream": true,
    });
    if !request.system.is_empty() {
        body["system"] = json!(request.system);
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": tool.parameters,
                })
            })
            .collect();
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    body
}

/// The API refuses empty text blocks, so empty text is no block at all.
fn text_block(text: &str) -> Vec<Value> {
    if text.is_empty() { Vec::new() } else { vec![json!({"type": "text", "text": text})] }
}

enum Block {
    ToolUse { id: String, name: String, json: String, start_input: Value },
    Other,
}

pub(crate) struct Decoder {
    provider: String,
    blocks: BTreeMap<u64, Block>,
    input_tokens: u64,
    cache_read: u64,
    cache_creation: u64,
    output_tokens: u64,
    saw_usage: bool,
    stop_reason: Option<String>,
    done: bool,
}

impl Decoder {
    pub fn new(provider: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            blocks: BTreeMap::new(),
            input_tokens: 0,
            cache_read: 0,
            cache_creation: 0,
            output_tokens: 0,
            saw_usage: false,
            stop_reason: None,
            done: false,
        }
    }

    /// `message_delta` usage is cumulative and may repeat any field, so a present field
    /// replaces what `message_start` said.
    fn take_usage(&mut self, usage: &Value) {
        if !usage.is_object() {
            return;
        }
        self.saw_usage = true;
        let set = |field: &mut u64, key: &str| {
            if let Some(value) = usage.get(key).and_then(Value::as_u64) {
                *field = value;
            }
        };
        set(&mut self.input_tokens, "input_tokens");
        set(&mut self.cache_read, "cache_read_input_tokens");
        set(&mut self.cache_creation, "cache_creation_input_tokens");
        set(&mut self.output_tokens, "output_tokens");
    }
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "tool_use" => FinishReason::ToolCalls,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "refusal" => FinishReason::Refusal,
        other => FinishReason::Other(other.to_owned()),
    }
}

impl Decode for Decoder {
    // One arm per event type of the stream, in the order the API sends them; split up, the
    // state machine they share would be spread over as many functions.
    fn event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        let data = parse_json(&self.provider, &event.data)?;
        let kind = data.get("type").and_then(Value::as_str).unwrap_or(event.event.as_str());
        let index = count(&data, "/index");
        match kind {
            "message_start" => {
                let usage = data.pointer("/message/usage").cloned().unwrap_or(Value::Null);
                self.take_usage(&usage);
            }
            "content_block_start" => {
                let block = data.get("content_block").unwrap_or(&Value::Null);
                let text = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or_default();
                let state = match text("type") {
                    "tool_use" => Block::ToolUse {
                        id: text("id").to_owned(),
                        name: text("name").to_owned(),
                        json: String::new(),
                        start_input: block.get("input").cloned().unwrap_or(Value::Null),
                    },
                    "text" if !text("text").is_empty() => {
                        out.push(StreamEvent::TextDelta(text("text").to_owned()));
                        Block::Other
                    }
                    _ => Block::Other,
                };
                self.blocks.insert(index, state);
            }
            "content_block_delta" => {
                let delta = data.get("delta").unwrap_or(&Value::Null);
                let text = |key: &str| delta.get(key).and_then(Value::as_str).unwrap_or_default();
                match text("type") {
                    "text_delta" => out.push(StreamEvent::TextDelta(text("text").to_owned())),
                    "thinking_delta" => {
                        out.push(StreamEvent::ReasoningDelta(text("thinking").to_owned()));
                    }
                    "input_json_delta" => {
                        if let Some(Block::ToolUse { json, .. }) = self.blocks.get_mut(&index) {
                            json.push_str(text("partial_json"));
                        }
                    }
                    // signature_delta, citations_delta: nothing cairn shows.
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(Block::ToolUse { id, name, json, start_input }) =
                    self.blocks.remove(&index)
                {
                    let arguments = match start_input {
                        Value::Object(map) if json.trim().is_empty() && !map.is_empty() => {
                            ToolArguments::Json(Value::Object(map))
                        }
                        _ => ToolArguments::parse(&json),
                    };
                    out.push(StreamEvent::ToolCall(ToolCall { id, name, arguments }));
                }
            }
            "message_delta" => {
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_owned());
                }
                let usage = data.get("usage").cloned().unwrap_or(Value::Null);
                self.take_usage(&usage);
            }
            "message_stop" => {
                if self.saw_usage {
                    out.push(StreamEvent::Usage(Usage {
                        input_tokens: self.input_tokens + self.cache_read + self.cache_creation,
                        output_tokens: self.output_tokens,
                        cached_input_tokens: self.cache_read,
                    }));
                }
                let reason = self.stop_reason.as_deref().map_or(FinishReason::Stop, finish_reason);
                out.push(StreamEvent::Finish(reason));
                self.done = true;
            }
            "error" => return Err(stream_error(&self.provider, &data)),
            // `ping` keeps the connection alive; unknown events are newer API features.
            _ => {}
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.done
    }
}
