//! OpenAI Chat Completions, the protocol most servers speak (OpenAI, Ollama, llama.cpp,
//! vLLM, OpenRouter, DeepSeek, …).
//!
//! Compatible servers differ in small ways, and this decoder is lenient about each one it
//! knows: usage may be missing, in its own final chunk, or beside `finish_reason`;
//! tool-call ids may be missing or empty (stable ones are made up); arguments may arrive
//! in fragments or whole, even as a JSON object; tool calls may lack an `index`;
//! reasoning comes as `reasoning_content` (DeepSeek, vLLM, llama.cpp) or `reasoning`
//! (OpenRouter, Ollama). A refusal streams as `refusal` text, shown like content, and ends
//! the response as [`FinishReason::Refusal`]. A tool call whose first fragment (the one
//! with its name) never came is passed on nameless, with a notice, for the agent to answer
//! as unparseable. Reasoning text is kept with the answer but never sent back: DeepSeek
//! refuses `reasoning_content` in a request, and the others ignore it. It is strict about the one thing that tells a complete answer
//! from a cut one: the `data: [DONE]` line.

use serde_json::{Value, json};

use super::sse::SseEvent;
use super::{
    Decode, FinishReason, LlmError, MaxTokensField, Message, ReasoningBlock, Request, StreamEvent,
    ToolArguments, ToolCall, Usage, count, parse_json, stream_error,
};

pub(crate) const TERMINATOR: &str = "data: [DONE]";

/// The request's body; `prompt_cache_key` is sent when given (see
/// [`super::ClientSettings::send_prompt_cache_key`]).
pub(crate) fn request_body(
    request: &Request,
    max_tokens_field: MaxTokensField,
    prompt_cache_key: Option<&str>,
) -> Value {
    let mut messages = Vec::new();
    if !request.system.is_empty() {
        messages.push(json!({"role": "system", "content": request.system}));
    }
    for message in &request.messages_with_volatile_context() {
        messages.push(match message {
            Message::User { text } => json!({"role": "user", "content": text}),
            Message::Assistant { text, tool_calls, .. } if tool_calls.is_empty() => {
                json!({"role": "assistant", "content": text})
            }
            Message::Assistant { text, tool_calls, .. } => {
                let calls: Vec<Value> = tool_calls
                    .iter()
                    .map(|call| {
                        json!({
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments.to_wire_value().to_string()},
                        })
                    })
                    .collect();
                let content = if text.is_empty() { Value::Null } else { json!(text) };
                json!({"role": "assistant", "content": content, "tool_calls": calls})
            }
            Message::ToolResult { call_id, content, .. } => {
                json!({"role": "tool", "tool_call_id": call_id, "content": content})
            }
        });
    }
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    body[max_tokens_field.as_str()] = json!(request.max_output_tokens);
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                })
            })
            .collect();
        body["tool_choice"] = json!("auto");
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if let Some(key) = prompt_cache_key {
        body["prompt_cache_key"] = json!(key);
    }
    if let Some(reasoning) = request.reasoning {
        body["reasoning_effort"] = json!(reasoning.effort());
    }
    body
}

#[derive(Debug, Default)]
struct PartialCall {
    index: Option<u64>,
    id: String,
    name: String,
    arguments: String,
}

pub(crate) struct Decoder {
    provider: String,
    completion_id: Option<String>,
    calls: Vec<PartialCall>,
    reasoning: String,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    /// Whether the model streamed `refusal` text.
    refused: bool,
    done: bool,
}

impl Decoder {
    pub fn new(provider: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            completion_id: None,
            calls: Vec::new(),
            reasoning: String::new(),
            usage: None,
            finish: None,
            refused: false,
            done: false,
        }
    }

    fn merge_call(&mut self, fragment: &Value) {
        let index = fragment.get("index").and_then(Value::as_u64);
        let id = fragment.get("id").and_then(Value::as_str).filter(|id| !id.is_empty());
        let function = fragment.get("function").unwrap_or(&Value::Null);
        let name = function.get("name").and_then(Value::as_str).filter(|name| !name.is_empty());
        let slot = match index {
            Some(index) => self.calls.iter().position(|call| call.index == Some(index)),
            // Without an index, a fragment starts a new call when it brings a new id, or a
            // name while the last call is complete or named otherwise; anything else
            // continues the last call.
            None => self.calls.last().and_then(|last| {
                let new_id = id.is_some_and(|id| !last.id.is_empty() && last.id != id);
                let new_name = name.is_some_and(|name| {
                    name != last.name || serde_json::from_str::<Value>(&last.arguments).is_ok()
                });
                (!new_id && !new_name).then_some(self.calls.len() - 1)
            }),
        };
        let slot = slot.unwrap_or_else(|| {
            self.calls.push(PartialCall { index, ..PartialCall::default() });
            self.calls.len() - 1
        });
        let call = &mut self.calls[slot];
        if let (Some(id), true) = (id, call.id.is_empty()) {
            id.clone_into(&mut call.id);
        }
        // Some servers repeat the name in every fragment; it is never split.
        if let (Some(name), true) = (name, call.name.is_empty()) {
            name.clone_into(&mut call.name);
        }
        match function.get("arguments") {
            Some(Value::String(piece)) => call.arguments.push_str(piece),
            Some(whole @ Value::Object(_)) => call.arguments = whole.to_string(),
            _ => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.reasoning.is_empty() {
            let text = std::mem::take(&mut self.reasoning);
            out.push(StreamEvent::Reasoning(ReasoningBlock::Text { text }));
        }
        let prefix = self.completion_id.as_deref().map(|id| format!("{id}_")).unwrap_or_default();
        for (position, call) in std::mem::take(&mut self.calls).into_iter().enumerate() {
            let id = if call.id.is_empty() { format!("{prefix}call_{position}") } else { call.id };
            if call.name.is_empty() {
                out.push(StreamEvent::Notice(nameless_call_notice(&id, &call.arguments)));
            }
            let arguments = ToolArguments::parse(&call.arguments);
            out.push(StreamEvent::ToolCall(ToolCall { id, name: call.name, arguments }));
        }
        let called = out.iter().any(|event| matches!(event, StreamEvent::ToolCall(_)));
        if let Some(usage) = self.usage {
            out.push(StreamEvent::Usage(usage));
        }
        let finish = match self.finish.take() {
            Some(FinishReason::Stop) | None if self.refused => FinishReason::Refusal,
            Some(FinishReason::Stop) | None if called => FinishReason::ToolCalls,
            Some(reason) => reason,
            None => FinishReason::Stop,
        };
        out.push(StreamEvent::Finish(finish));
        self.done = true;
    }
}

/// What the user is told of a tool call that came without its name: llama.cpp now and then
/// drops the first fragment, which carries the name and id.
fn nameless_call_notice(id: &str, arguments: &str) -> String {
    let arguments = super::error::shorten(arguments.trim());
    format!(
        "the model sent a tool call that could not be parsed: it has no tool name (call \
         `{id}`, arguments `{arguments}`); the model is told to call the tool again"
    )
}

/// Output tokens, reasoning included. xAI leaves the reasoning out of `completion_tokens`,
/// which shows as a `total_tokens` of prompt + completion + reasoning; elsewhere the total
/// is prompt + completion, the reasoning already in the completion.
fn output_tokens(usage: &Value) -> u64 {
    let completion = count(usage, "/completion_tokens");
    let reasoning = count(usage, "/completion_tokens_details/reasoning_tokens");
    let apart = count(usage, "/prompt_tokens").saturating_add(completion).saturating_add(reasoning);
    if reasoning > 0 && count(usage, "/total_tokens") == apart {
        completion.saturating_add(reasoning)
    } else {
        completion
    }
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" | "eos" | "end_turn" | "stop_sequence" => FinishReason::Stop,
        "tool_calls" | "function_call" | "tool_use" => FinishReason::ToolCalls,
        "length" | "max_tokens" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

impl Decode for Decoder {
    fn event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        if event.data.trim() == "[DONE]" {
            self.finish(out);
            return Ok(());
        }
        let chunk = parse_json(&self.provider, &event.data)?;
        if chunk.get("error").is_some_and(|error| !error.is_null()) {
            return Err(stream_error(&self.provider, &chunk));
        }
        if self.completion_id.is_none() {
            self.completion_id = chunk.get("id").and_then(Value::as_str).map(str::to_owned);
        }
        if let Some(usage) = chunk.get("usage").filter(|usage| usage.is_object()) {
            self.usage = Some(Usage {
                input_tokens: count(usage, "/prompt_tokens"),
                output_tokens: output_tokens(usage),
                cached_input_tokens: count(usage, "/prompt_tokens_details/cached_tokens"),
                cache_write_input_tokens: 0,
                reasoning_tokens: count(usage, "/completion_tokens_details/reasoning_tokens"),
            });
        }
        let choices = chunk.get("choices").and_then(Value::as_array).map(Vec::as_slice);
        for choice in choices.unwrap_or_default() {
            let delta = choice.get("delta").unwrap_or(&Value::Null);
            for key in ["reasoning_content", "reasoning"] {
                if let Some(text) = delta.get(key).and_then(Value::as_str).filter(|t| !t.is_empty())
                {
                    self.reasoning.push_str(text);
                    out.push(StreamEvent::ReasoningDelta(text.to_owned()));
                }
            }
            if let Some(text) =
                delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty())
            {
                out.push(StreamEvent::TextDelta(text.to_owned()));
            }
            if let Some(text) =
                delta.get("refusal").and_then(Value::as_str).filter(|t| !t.is_empty())
            {
                self.refused = true;
                out.push(StreamEvent::TextDelta(text.to_owned()));
            }
            if let Some(fragments) = delta.get("tool_calls").and_then(Value::as_array) {
                for fragment in fragments {
                    self.merge_call(fragment);
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish = Some(finish_reason(reason));
            }
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.done
    }
}
