//! OpenAI Responses.
//!
//! The conversation is a list of typed items: messages, `function_call` items and
//! `function_call_output` items paired to them by `call_id`. The stream announces each
//! output item (`response.output_item.added`), streams its text or arguments, closes it
//! (`response.output_item.done`), and ends with `response.completed`,
//! `response.incomplete` or `response.failed`; there is no `[DONE]` line. Requests are
//! sent with `store: false`, so nothing is kept at OpenAI between turns and every request
//! carries the whole conversation, as with the other protocols. Output items other than
//! messages, reasoning and function calls (`custom_tool_call`, built-in tool calls) are
//! left out with a notice naming their type; a refusal is shown as text and ends the
//! response as [`FinishReason::Refusal`]. llama.cpp's server ends a response cut at
//! `max_output_tokens` with `response.completed` all the same; one whose output used every
//! token the request asked for is taken as cut ([`FinishReason::Length`]).
//!
//! With reasoning asked for, a request sends `reasoning.effort` with `summary: "auto"`
//! (the summary streams as reasoning text) and asks for the reasoning items'
//! `encrypted_content`, the only way to hand a model its reasoning back without
//! `store`. Reasoning items are kept whole and sent back verbatim in their place, before
//! the message and function calls they preceded; one without encrypted content cannot be
//! (its id means nothing to a server that stored nothing) and is kept only for its summary.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::sse::SseEvent;
use super::{
    Decode, FinishReason, LlmError, Message, ReasoningBlock, Request, StreamEvent, ToolArguments,
    ToolCall, Usage, count, parse_json, stream_error,
};

pub(crate) const TERMINATOR: &str = "response.completed";

/// The request's body; `prompt_cache_key` is sent when given (see
/// [`super::ClientSettings::send_prompt_cache_key`]).
pub(crate) fn request_body(request: &Request, prompt_cache_key: Option<&str>) -> Value {
    let mut input = Vec::new();
    for message in &request.messages_with_volatile_context() {
        match message {
            Message::User { text } => input.push(json!({
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            })),
            Message::Assistant { reasoning, text, tool_calls } => {
                input.extend(reasoning.iter().filter_map(reasoning_item));
                if !text.is_empty() {
                    input.push(json!({
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": text}],
                    }));
                }
                input.extend(tool_calls.iter().map(|call| {
                    json!({
                        "type": "function_call",
                        "call_id": call.id,
                        "name": call.name,
                        "arguments": call.arguments.to_wire_value().to_string(),
                    })
                }));
            }
            Message::ToolResult { call_id, content, .. } => input.push(json!({
                "type": "function_call_output",
                "call_id": call_id,
                "output": content,
            })),
        }
    }
    let mut body = json!({
        "model": request.model,
        "input": input,
        "max_output_tokens": request.max_output_tokens,
        "stream": true,
        "store": false,
    });
    if !request.system.is_empty() {
        body["instructions"] = json!(request.system);
    }
    if !request.tools.is_empty() {
        // `strict` defaults to true here, which would demand every property be required.
        body["tools"] = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                    "strict": false,
                })
            })
            .collect();
        body["tool_choice"] = json!("auto");
        body["parallel_tool_calls"] = json!(true);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if let Some(key) = prompt_cache_key {
        body["prompt_cache_key"] = json!(key);
    }
    if let Some(reasoning) = request.reasoning {
        // `summary: "auto"` asks for the readable summary of the reasoning, streamed as
        // `response.reasoning_summary_text.delta`; the reasoning itself stays encrypted.
        body["reasoning"] = json!({"effort": reasoning.effort(), "summary": "auto"});
        body["include"] = json!(["reasoning.encrypted_content"]);
    }
    body
}

/// A reasoning item to send back: one this protocol made, with its encrypted content.
fn reasoning_item(block: &ReasoningBlock) -> Option<Value> {
    match block {
        ReasoningBlock::ResponsesItem { item, .. } if has_encrypted_content(item) => {
            Some(item.clone())
        }
        _ => None,
    }
}

fn has_encrypted_content(item: &Value) -> bool {
    item.get("encrypted_content").and_then(Value::as_str).is_some_and(|content| !content.is_empty())
}

/// A closed reasoning item, kept whole, with its summary's text.
fn reasoning_block(item: &Value) -> ReasoningBlock {
    let parts = item.get("summary").and_then(Value::as_array).map(Vec::as_slice);
    let summary: Vec<&str> = parts
        .unwrap_or_default()
        .iter()
        .filter_map(|part| part.get("text").and_then(Value::as_str))
        .collect();
    ReasoningBlock::ResponsesItem { item: item.clone(), summary: summary.join("\n\n") }
}

/// The output item types cairn takes into a response.
const USED_ITEMS: [&str; 3] = ["message", "reasoning", "function_call"];

/// What the user is told of an output item cairn leaves out.
fn unused_item_notice(item_type: &str, item: &Value) -> String {
    let item_type = if item_type.is_empty() { "untyped" } else { item_type };
    let name = item.get("name").and_then(Value::as_str).map(|name| format!(" (`{name}`)"));
    format!(
        "the model sent a `{item_type}` output item{}, which cairn does not handle; it was left out",
        name.unwrap_or_default()
    )
}

#[derive(Debug, Default)]
struct PartialCall {
    call_id: String,
    name: String,
    arguments: String,
}

pub(crate) struct Decoder {
    provider: String,
    /// The request's `max_output_tokens`, to tell a response cut there that a server
    /// reports as `completed` (llama.cpp does) from a finished one.
    max_output_tokens: Option<u64>,
    /// Open function calls by item id.
    calls: HashMap<String, PartialCall>,
    /// Item ids by output index, for deltas that name only the index.
    by_index: HashMap<u64, String>,
    /// Item ids in the order they were announced, for calls never closed by `done`.
    order: Vec<String>,
    called: bool,
    /// Whether the model streamed refusal text.
    refused: bool,
    done: bool,
}

impl Decoder {
    pub fn new(provider: &str, max_output_tokens: Option<u64>) -> Self {
        Self {
            provider: provider.to_owned(),
            max_output_tokens,
            calls: HashMap::new(),
            by_index: HashMap::new(),
            order: Vec::new(),
            called: false,
            refused: false,
            done: false,
        }
    }

    fn item_id(&self, data: &Value) -> Option<String> {
        match data.get("item_id").and_then(Value::as_str) {
            Some(id) => Some(id.to_owned()),
            None => data
                .get("output_index")
                .and_then(Value::as_u64)
                .and_then(|index| self.by_index.get(&index).cloned()),
        }
    }

    fn emit_call(&mut self, id: &str, item: Option<&Value>, out: &mut Vec<StreamEvent>) {
        let Some(mut call) = self.calls.remove(id) else { return };
        let field = |key: &str| item.and_then(|item| item.get(key)).and_then(Value::as_str);
        // The closing item carries the complete arguments; prefer them to the fragments.
        if let Some(arguments) = field("arguments") {
            arguments.clone_into(&mut call.arguments);
        }
        if call.call_id.is_empty() {
            call.call_id = field("call_id").unwrap_or(id).to_owned();
        }
        if call.name.is_empty() {
            call.name = field("name").unwrap_or_default().to_owned();
        }
        self.called = true;
        out.push(StreamEvent::ToolCall(ToolCall {
            id: call.call_id,
            name: call.name,
            arguments: ToolArguments::parse(&call.arguments),
        }));
    }

    fn end(&mut self, response: &Value, finish: FinishReason, out: &mut Vec<StreamEvent>) {
        for id in std::mem::take(&mut self.order) {
            self.emit_call(&id, None, out);
        }
        let usage = response.get("usage").filter(|usage| usage.is_object()).map(|usage| Usage {
            input_tokens: count(usage, "/input_tokens"),
            output_tokens: count(usage, "/output_tokens"),
            cached_input_tokens: count(usage, "/input_tokens_details/cached_tokens"),
            cache_write_input_tokens: 0,
            reasoning_tokens: count(usage, "/output_tokens_details/reasoning_tokens"),
        });
        if let Some(usage) = usage {
            out.push(StreamEvent::Usage(usage));
        }
        // OpenAI ends a response cut at `max_output_tokens` with `response.incomplete`;
        // llama.cpp's server says `completed` all the same. Output that used every token
        // asked for was cut.
        let spent_all = match (usage, self.max_output_tokens) {
            (Some(usage), Some(limit)) => usage.output_tokens >= limit,
            _ => false,
        };
        let finish = match finish {
            FinishReason::Stop if spent_all => FinishReason::Length,
            FinishReason::Stop if self.refused => FinishReason::Refusal,
            FinishReason::Stop if self.called => FinishReason::ToolCalls,
            other => other,
        };
        out.push(StreamEvent::Finish(finish));
        self.done = true;
    }
}

impl Decode for Decoder {
    // One arm per event type of the stream, in the order the API sends them; split up, the
    // state machine they share would be spread over as many functions.
    fn event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        let data = parse_json(&self.provider, &event.data)?;
        let kind = data.get("type").and_then(Value::as_str).unwrap_or(event.event.as_str());
        let text = |key: &str| data.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        match kind {
            "response.output_item.added" => {
                let item = data.get("item").unwrap_or(&Value::Null);
                let item_type = item.get("type").and_then(Value::as_str).unwrap_or_default();
                if !USED_ITEMS.contains(&item_type) {
                    out.push(StreamEvent::Notice(unused_item_notice(item_type, item)));
                }
                if item_type == "function_call" {
                    let field =
                        |key: &str| item.get(key).and_then(Value::as_str).unwrap_or_default();
                    let call_id = field("call_id").to_owned();
                    let id = match field("id") {
                        "" => call_id.clone(),
                        id => id.to_owned(),
                    };
                    if let Some(index) = data.get("output_index").and_then(Value::as_u64) {
                        self.by_index.insert(index, id.clone());
                    }
                    let call = PartialCall {
                        call_id,
                        name: field("name").to_owned(),
                        arguments: field("arguments").to_owned(),
                    };
                    self.calls.insert(id.clone(), call);
                    self.order.push(id);
                }
            }
            "response.function_call_arguments.delta" => {
                if let Some(call) = self.item_id(&data).and_then(|id| self.calls.get_mut(&id)) {
                    call.arguments.push_str(&text("delta"));
                }
            }
            "response.function_call_arguments.done" => {
                if let Some(call) = self.item_id(&data).and_then(|id| self.calls.get_mut(&id)) {
                    call.arguments = text("arguments");
                }
            }
            "response.output_item.done" => {
                let item = data.get("item").unwrap_or(&Value::Null);
                if item.get("type").and_then(Value::as_str) == Some("reasoning") {
                    out.push(StreamEvent::Reasoning(reasoning_block(item)));
                }
                if item.get("type").and_then(Value::as_str) == Some("function_call") {
                    let id = item
                        .get("id")
                        .or_else(|| item.get("call_id"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .or_else(|| self.item_id(&data))
                        .unwrap_or_default();
                    self.order.retain(|open| *open != id);
                    self.emit_call(&id, Some(item), out);
                }
            }
            "response.output_text.delta" => out.push(StreamEvent::TextDelta(text("delta"))),
            "response.refusal.delta" => {
                self.refused = true;
                out.push(StreamEvent::TextDelta(text("delta")));
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                out.push(StreamEvent::ReasoningDelta(text("delta")));
            }
            "response.completed" => {
                let response = data.get("response").cloned().unwrap_or(Value::Null);
                self.end(&response, FinishReason::Stop, out);
            }
            "response.incomplete" => {
                let response = data.get("response").cloned().unwrap_or(Value::Null);
                let reason = response
                    .pointer("/incomplete_details/reason")
                    .and_then(Value::as_str)
                    .unwrap_or("incomplete");
                let finish = match reason {
                    "max_output_tokens" => FinishReason::Length,
                    "content_filter" => FinishReason::ContentFilter,
                    other => FinishReason::Other(other.to_owned()),
                };
                self.end(&response, finish, out);
            }
            "response.failed" => {
                let error = data.pointer("/response/error").cloned().unwrap_or(data);
                return Err(stream_error(&self.provider, &error));
            }
            "error" => return Err(stream_error(&self.provider, &data)),
            _ => {}
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.done
    }
}
