//! Anthropic Messages.
//!
//! The stream is a sequence of typed events: `message_start` (with input usage), content
//! blocks that open, receive deltas and close (text, tool use with its input as JSON
//! fragments, thinking), `message_delta` (stop reason and cumulative usage), `ping`,
//! `error`, and `message_stop`, which marks a complete answer. Requests carry the system
//! text as a top-level field and tool results as `tool_result` blocks inside user turns.
//!
//! With reasoning asked for, a request enables extended thinking. The answer's `thinking`
//! blocks (their text and `signature`) and `redacted_thinking` blocks are kept and sent
//! back unchanged at the start of their assistant turn, before its `tool_use` blocks: the
//! API checks the signature and requires the thinking that led to a tool call with it.
//! A tool-use loop is one assistant turn with one thinking mode: a loop in progress keeps
//! its thinking blocks when reasoning is switched off, and one that began without thinking
//! is finished without when it is switched on.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::sse::SseEvent;
use super::{
    Decode, FinishReason, LlmError, Message, ReasoningBlock, Request, StreamEvent, ToolArguments,
    ToolCall, Usage, count, parse_json, stream_error,
};

pub(crate) const TERMINATOR: &str = "message_stop";
pub(crate) const API_VERSION: &str = "2023-06-01";

/// The API's smallest thinking budget.
const MIN_THINKING_BUDGET: u32 = 1024;

/// A turn of the conversation: its role and content blocks.
type Turn = (&'static str, Vec<Value>);

/// The request's body. With `prompt_cache` on and a cache key set, it marks cache
/// breakpoints (at most four, as the API allows): the last tool definition, the system
/// text (tools come before it in the cached prefix, so this covers both), and the rolling
/// pair in the conversation (see [`mark_conversation_breakpoints`]). The volatile context
/// goes after all of them.
pub(crate) fn request_body(request: &Request, prompt_cache: bool) -> Value {
    let cache = prompt_cache && request.cache_key.is_some();
    let in_progress = turn_in_progress(&request.messages);
    let mut thinking_budget = thinking_budget(request);
    // Reasoning switched on in the middle of a tool-use loop that began without thinking:
    // the API wants one thinking mode per assistant turn, and thinking enabled on a turn
    // whose messages start with no thinking block is refused. The loop goes on without;
    // the next turn thinks.
    if in_progress.is_some_and(|start| !thinks(&request.messages[start..])) {
        thinking_budget = None;
    }
    let mut turns = conversation_turns(&request.messages, thinking_budget.is_some(), in_progress);
    if cache {
        mark_conversation_breakpoints(&mut turns);
    }
    if let Some(text) = &request.volatile_context {
        push_blocks(&mut turns, "user", text_block(text));
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
        body["system"] = if cache {
            json!([{"type": "text", "text": request.system, "cache_control": breakpoint()}])
        } else {
            json!(request.system)
        };
    }
    if !request.tools.is_empty() {
        let mut tools: Vec<Value> = request
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
        if let (true, Some(last)) = (cache, tools.last_mut()) {
            last["cache_control"] = breakpoint();
        }
        body["tools"] = Value::Array(tools);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if let Some(budget) = thinking_budget {
        body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
    }
    body
}

/// The thinking budget to ask for, if any. The API wants it below `max_tokens`, so a
/// level's budget is cut to fit the call's output limit; a call with too small a limit
/// for the API's minimum budget thinks not at all.
fn thinking_budget(request: &Request) -> Option<u32> {
    let wanted = request.reasoning?.thinking_budget();
    let budget = wanted.min(request.max_output_tokens.saturating_sub(1));
    (budget >= MIN_THINKING_BUDGET).then_some(budget)
}

/// A cache breakpoint: the prefix up to and including the block that carries it is cached
/// (for five minutes, renewed by each read).
fn breakpoint() -> Value {
    json!({"type": "ephemeral"})
}

/// Where the assistant turn in progress starts, if the conversation ends in one. To the
/// API a tool-use loop is one assistant turn: its assistant messages with tool calls and
/// the results answering them, up to the end (the user's next words, after a turn cut
/// short, share the results' user turn and do not end it).
fn turn_in_progress(messages: &[Message]) -> Option<usize> {
    let mut at = messages.len();
    while at > 0 && matches!(messages[at - 1], Message::User { .. }) {
        at -= 1;
    }
    let mut start = None;
    loop {
        let results_end = at;
        while at > 0 && matches!(messages[at - 1], Message::ToolResult { .. }) {
            at -= 1;
        }
        match at.checked_sub(1).map(|index| &messages[index]) {
            Some(Message::Assistant { tool_calls, .. })
                if at < results_end && !tool_calls.is_empty() =>
            {
                at -= 1;
                start = Some(at);
            }
            _ => return start,
        }
    }
}

/// Whether any of these assistant messages carries a thinking block to send back.
fn thinks(messages: &[Message]) -> bool {
    messages.iter().any(|message| match message {
        Message::Assistant { reasoning, .. } => {
            reasoning.iter().any(|b| thinking_block(b).is_some())
        }
        _ => false,
    })
}

/// The messages as turns. Consecutive entries of one role become one turn: tool results
/// and the user's next words share a user turn, as the API expects. Thinking blocks go
/// back to a request that thinks, and, whatever the request, within the assistant turn in
/// progress (from `in_progress` on): the API wants them with the tool calls they led to,
/// and a loop keeps the thinking it began with. A request without thinking leaves out
/// those of finished turns, which the API would ignore.
fn conversation_turns(
    messages: &[Message],
    thinking: bool,
    in_progress: Option<usize>,
) -> Vec<Turn> {
    let mut turns = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let keep_thinking = thinking || in_progress.is_some_and(|start| index >= start);
        let (role, blocks) = match message {
            Message::User { text } => ("user", text_block(text)),
            Message::Assistant { reasoning, text, tool_calls } => {
                let mut blocks: Vec<Value> = match keep_thinking {
                    true => reasoning.iter().filter_map(thinking_block).collect(),
                    false => Vec::new(),
                };
                blocks.extend(text_block(text));
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
        push_blocks(&mut turns, role, blocks);
    }
    turns
}

/// A thinking block as the model sent it; `None` for another protocol's reasoning.
fn thinking_block(block: &ReasoningBlock) -> Option<Value> {
    match block {
        ReasoningBlock::Thinking { text, signature } => {
            Some(json!({"type": "thinking", "thinking": text, "signature": signature}))
        }
        ReasoningBlock::RedactedThinking { data } => {
            Some(json!({"type": "redacted_thinking", "data": data}))
        }
        ReasoningBlock::Text { .. } | ReasoningBlock::ResponsesItem { .. } => None,
    }
}

/// Adds blocks to the last turn when it has `role`, else as a new turn.
fn push_blocks(turns: &mut Vec<Turn>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last, content)) if *last == role => content.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

/// The rolling breakpoints: on the newest block, where this call's prefix ends and the next
/// call will read from, and on the last block of the user turn before the model's latest
/// answer, where the previous call's prefix ended. That second one makes the previous
/// call's cache entry be read however many blocks the latest step added: on its own, the
/// API looks for earlier entries only some 20 blocks back from a breakpoint.
fn mark_conversation_breakpoints(turns: &mut [Turn]) {
    let previous_end = turns
        .iter()
        .rposition(|(role, _)| *role == "assistant")
        .and_then(|answer| turns[..answer].iter().rposition(|(role, _)| *role == "user"));
    let newest = turns.len().checked_sub(1);
    for index in [previous_end, newest].into_iter().flatten() {
        if let Some(block) = turns[index].1.last_mut() {
            block["cache_control"] = breakpoint();
        }
    }
}

/// The API refuses empty text blocks, so empty text is no block at all.
fn text_block(text: &str) -> Vec<Value> {
    if text.is_empty() { Vec::new() } else { vec![json!({"type": "text", "text": text})] }
}

enum Block {
    ToolUse { id: String, name: String, json: String, start_input: Value },
    Thinking { text: String, signature: String },
    RedactedThinking { data: String },
    Other,
}

pub(crate) struct Decoder {
    provider: String,
    blocks: BTreeMap<u64, Block>,
    input_tokens: u64,
    cache_read: u64,
    cache_creation: u64,
    output_tokens: u64,
    thinking_tokens: u64,
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
            thinking_tokens: 0,
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
        let set = |field: &mut u64, pointer: &str| {
            if let Some(value) = usage.pointer(pointer).and_then(Value::as_u64) {
                *field = value;
            }
        };
        set(&mut self.input_tokens, "/input_tokens");
        set(&mut self.cache_read, "/cache_read_input_tokens");
        set(&mut self.cache_creation, "/cache_creation_input_tokens");
        set(&mut self.output_tokens, "/output_tokens");
        set(&mut self.thinking_tokens, "/output_tokens_details/thinking_tokens");
    }
}

/// What a closed content block makes: a tool call or a reasoning block to keep.
fn closed_block(block: Block) -> Option<StreamEvent> {
    match block {
        Block::ToolUse { id, name, json, start_input } => {
            let arguments = match start_input {
                Value::Object(map) if json.trim().is_empty() && !map.is_empty() => {
                    ToolArguments::Json(Value::Object(map))
                }
                _ => ToolArguments::parse(&json),
            };
            Some(StreamEvent::ToolCall(ToolCall { id, name, arguments }))
        }
        Block::Thinking { text, signature } => {
            Some(StreamEvent::Reasoning(ReasoningBlock::Thinking { text, signature }))
        }
        Block::RedactedThinking { data } => {
            Some(StreamEvent::Reasoning(ReasoningBlock::RedactedThinking { data }))
        }
        Block::Other => None,
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
                    "thinking" => {
                        if !text("thinking").is_empty() {
                            out.push(StreamEvent::ReasoningDelta(text("thinking").to_owned()));
                        }
                        Block::Thinking {
                            text: text("thinking").to_owned(),
                            signature: text("signature").to_owned(),
                        }
                    }
                    "redacted_thinking" => {
                        Block::RedactedThinking { data: text("data").to_owned() }
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
                        if let Some(Block::Thinking { text: thought, .. }) =
                            self.blocks.get_mut(&index)
                        {
                            thought.push_str(text("thinking"));
                        }
                        out.push(StreamEvent::ReasoningDelta(text("thinking").to_owned()));
                    }
                    "signature_delta" => {
                        if let Some(Block::Thinking { signature, .. }) = self.blocks.get_mut(&index)
                        {
                            signature.push_str(text("signature"));
                        }
                    }
                    "input_json_delta" => {
                        if let Some(Block::ToolUse { json, .. }) = self.blocks.get_mut(&index) {
                            json.push_str(text("partial_json"));
                        }
                    }
                    // citations_delta: nothing cairn shows.
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(block) = self.blocks.remove(&index) {
                    out.extend(closed_block(block));
                }
            }
            "message_delta" => {
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_owned());
                }
                // A refusal often comes without any text; this is then all the user learns.
                let explanation = data.pointer("/delta/stop_details/explanation");
                if let Some(explanation) = explanation.and_then(Value::as_str) {
                    let provider = &self.provider;
                    out.push(StreamEvent::Notice(format!(
                        "{provider} said why it stopped: {explanation}"
                    )));
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
                        cache_write_input_tokens: self.cache_creation,
                        // Part of the output; newer models say how much in
                        // `output_tokens_details`, older ones not at all (0).
                        reasoning_tokens: self.thinking_tokens,
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
