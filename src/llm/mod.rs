//! Model providers: one interface over three wire protocols.
//!
//! The agent builds a [`Request`] (system text, a conversation, tool definitions) and gets
//! back a [`ModelStream`] of [`StreamEvent`]s: text and reasoning deltas, complete tool
//! calls, token usage, a finish reason, and retry notices while the request is being
//! retried. [`ModelStream::collect`] assembles a whole [`Response`] for callers that do not
//! render deltas. Which protocol is spoken is a [`ProviderKind`]; everything above this
//! module stays protocol-agnostic.
//!
//! This module knows nothing of git or of cairn's configuration files: `crate::config`
//! turns files and flags into a [`ClientSettings`].

mod anthropic;
mod client;
mod error;
mod openai_chat;
mod openai_responses;
mod retry;
pub mod sse;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use client::{Client, ClientSettings, ModelStream, list_models};
pub use error::LlmError;
pub use retry::{RetryNotice, RetryPolicy};
pub use tokio_util::sync::CancellationToken;

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// OpenAI Chat Completions and the many servers compatible with it.
    OpenaiChat,
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Responses.
    OpenaiResponses,
}

impl ProviderKind {
    /// The name used in configuration files (`openai-chat`, `anthropic`, `openai-responses`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenaiChat => "openai-chat",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenaiResponses => "openai-responses",
        }
    }

    /// The path appended to a provider's `base_url`.
    pub fn endpoint(self) -> &'static str {
        match self {
            ProviderKind::OpenaiChat => "/chat/completions",
            ProviderKind::Anthropic => "/messages",
            ProviderKind::OpenaiResponses => "/responses",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One call to a model: everything it needs to produce its next turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The model's name at its provider (without the `provider/` prefix).
    pub model: String,
    pub system: String,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolDefinition>,
    pub max_output_tokens: u32,
    pub temperature: Option<f32>,
    /// Text that changes from call to call (the agent's working notes). It goes after the
    /// cached prefix, as the conversation's last user text, so that a change to it leaves
    /// the prompt cache's prefix (tools, system text, earlier messages) intact.
    pub volatile_context: Option<String>,
    /// Set on calls whose prefix the next call repeats (an agent's steps), to the session
    /// id: the prompt cache is used for those only, since writing the prefix of a one-off
    /// call (a summary) to Anthropic's cache costs more than sending it plainly.
    pub cache_key: Option<String>,
    /// How hard the model is asked to think; `None` asks nothing and leaves it to the
    /// model's default.
    pub reasoning: Option<Reasoning>,
}

impl Request {
    /// The conversation as sent: the messages, then the volatile context as a user message.
    pub(crate) fn messages_with_volatile_context(&self) -> Vec<Message> {
        let mut messages = self.messages.clone();
        if let Some(text) = &self.volatile_context {
            messages.push(Message::User { text: text.clone() });
        }
        messages
    }
}

/// One entry of the conversation, as the provider clients take it. Deliberately not
/// serializable: the stored form is `crate::transcript::Message`, versioned apart from
/// the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    User {
        text: String,
    },
    Assistant {
        /// What the model reasoned before its text and tool calls, in order; each client
        /// sends back the blocks of its own protocol and leaves out the others.
        reasoning: Vec<ReasoningBlock>,
        text: String,
        tool_calls: Vec<ToolCall>,
    },
    /// The outcome of running one tool call, paired to it by `call_id`.
    ToolResult {
        call_id: String,
        content: String,
        is_error: bool,
    },
}

/// How hard a model is asked to think: an effort level, or (for Anthropic) a budget of
/// thinking tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reasoning {
    Low,
    Medium,
    High,
    /// Anthropic's `budget_tokens`; other protocols take the nearest effort level.
    Budget(u32),
}

impl Reasoning {
    /// The Anthropic thinking budget of each level.
    pub const LOW_BUDGET: u32 = 2048;
    pub const MEDIUM_BUDGET: u32 = 8192;
    pub const HIGH_BUDGET: u32 = 24_576;

    /// The effort level OpenAI's `reasoning_effort` and `reasoning.effort` name.
    pub fn effort(self) -> &'static str {
        match self {
            Reasoning::Low => "low",
            Reasoning::Medium => "medium",
            Reasoning::High => "high",
            Reasoning::Budget(tokens) if tokens <= Self::LOW_BUDGET => "low",
            Reasoning::Budget(tokens) if tokens <= Self::MEDIUM_BUDGET => "medium",
            Reasoning::Budget(_) => "high",
        }
    }

    /// Anthropic's thinking budget in tokens.
    pub fn thinking_budget(self) -> u32 {
        match self {
            Reasoning::Low => Self::LOW_BUDGET,
            Reasoning::Medium => Self::MEDIUM_BUDGET,
            Reasoning::High => Self::HIGH_BUDGET,
            Reasoning::Budget(tokens) => tokens,
        }
    }
}

/// One piece of a model's reasoning, as its protocol needs it sent back. The text is for
/// people; signatures and encrypted content are opaque and go back byte for byte.
#[derive(Debug, Clone, PartialEq)]
pub enum ReasoningBlock {
    /// Reasoning text only (Chat Completions' `reasoning_content`), never sent back.
    Text { text: String },
    /// An Anthropic `thinking` block with its signature.
    Thinking { text: String, signature: String },
    /// An Anthropic `redacted_thinking` block: encrypted, with no text to show.
    RedactedThinking { data: String },
    /// An OpenAI Responses `reasoning` output item, verbatim, and its summary text.
    ResponsesItem { item: Value, summary: String },
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    pub name: String,
    pub description: String,
    /// A JSON schema for the arguments object.
    pub parameters: Value,
}

/// A complete tool call, as the model made it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: ToolArguments,
}

/// A tool call's arguments. Models do send invalid JSON now and then; that is kept as
/// [`ToolArguments::Invalid`] so the agent can tell the model instead of failing the turn.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolArguments {
    Json(Value),
    Invalid { raw: String, error: String },
}

impl ToolArguments {
    /// Parses the arguments text a model streamed. Empty text means "no arguments", which
    /// several servers send for tools without parameters.
    pub fn parse(raw: &str) -> Self {
        if raw.trim().is_empty() {
            return ToolArguments::Json(Value::Object(serde_json::Map::new()));
        }
        match serde_json::from_str(raw) {
            Ok(value) => ToolArguments::Json(value),
            Err(err) => ToolArguments::Invalid {
                raw: raw.to_owned(),
                error: format!("the arguments are not valid JSON: {err}"),
            },
        }
    }

    /// The arguments as sent back to a model in the conversation history. Invalid ones
    /// become an empty object: several servers (llama.cpp among them) refuse a history
    /// holding invalid JSON, and the paired tool result already tells the model what was
    /// wrong.
    pub fn to_wire_value(&self) -> Value {
        match self {
            ToolArguments::Json(value) => value.clone(),
            ToolArguments::Invalid { .. } => Value::Object(serde_json::Map::new()),
        }
    }
}

/// What arrives from a model, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The request failed in a way worth retrying; cairn waits and tries again. Only
    /// happens before any other event.
    Retry(RetryNotice),
    TextDelta(String),
    ReasoningDelta(String),
    /// A complete reasoning block, to keep with the answer and send back; its text came as
    /// [`StreamEvent::ReasoningDelta`]s before.
    Reasoning(ReasoningBlock),
    ToolCall(ToolCall),
    /// Something about the response the user should know that is not part of it: an
    /// output item cairn cannot use, a tool call that could not be parsed.
    Notice(String),
    /// Token usage for the whole response; at most once, just before [`StreamEvent::Finish`].
    Usage(Usage),
    /// Always the last event of a successful stream.
    Finish(FinishReason),
}

/// Tokens a response cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Every input token, including those read from or written to the prompt cache.
    pub input_tokens: u64,
    /// Every output token, reasoning included.
    pub output_tokens: u64,
    /// The part of `input_tokens` read from the prompt cache.
    pub cached_input_tokens: u64,
    /// The part of `input_tokens` written to the prompt cache, which Anthropic bills above
    /// the input price. OpenAI caches without saying so: 0 there.
    #[serde(default)]
    pub cache_write_input_tokens: u64,
    /// The part of `output_tokens` spent reasoning, where the provider reports it.
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Input tokens neither read from nor written to the cache, billed at the plain price.
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_sub(self.cached_input_tokens)
            .saturating_sub(self.cache_write_input_tokens)
    }
}

/// Field by field, saturating: the usage of several responses.
impl std::ops::Add for Usage {
    type Output = Usage;

    fn add(self, other: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.saturating_add(other.input_tokens),
            output_tokens: self.output_tokens.saturating_add(other.output_tokens),
            cached_input_tokens: self.cached_input_tokens.saturating_add(other.cached_input_tokens),
            cache_write_input_tokens: self
                .cache_write_input_tokens
                .saturating_add(other.cache_write_input_tokens),
            reasoning_tokens: self.reasoning_tokens.saturating_add(other.reasoning_tokens),
        }
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    ToolCalls,
    /// The output hit `max_output_tokens`.
    Length,
    /// The provider's content filter cut the output.
    ContentFilter,
    /// The model declined to answer; its words, if any, are the response's text.
    Refusal,
    /// A reason this client does not know, as the provider named it.
    Other(String),
}

/// A whole response, assembled from a stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    pub text: String,
    pub reasoning: String,
    pub reasoning_blocks: Vec<ReasoningBlock>,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Option<Usage>,
    pub finish: Option<FinishReason>,
    pub retries: Vec<RetryNotice>,
    pub notices: Vec<String>,
}

impl Response {
    /// Folds one event into the response.
    pub fn apply(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::Retry(notice) => self.retries.push(notice),
            StreamEvent::TextDelta(text) => self.text.push_str(&text),
            StreamEvent::ReasoningDelta(text) => self.reasoning.push_str(&text),
            StreamEvent::Reasoning(block) => self.reasoning_blocks.push(block),
            StreamEvent::ToolCall(call) => self.tool_calls.push(call),
            StreamEvent::Notice(notice) => self.notices.push(notice),
            StreamEvent::Usage(usage) => self.usage = Some(usage),
            StreamEvent::Finish(reason) => self.finish = Some(reason),
        }
    }
}

/// The default for [`ClientSettings::max_response_bytes`]: one response's stream, SSE
/// framing included. A 128k-token answer streamed token by token is about 30 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// The default for [`ClientSettings::max_output_tokens`].
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 16_384;

/// Which field of a Chat Completions request carries the output limit. OpenAI's reasoning
/// models (o1, o3, o4, gpt-5) refuse `max_tokens` and take `max_completion_tokens`; most
/// other compatible servers only know `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensField {
    MaxTokens,
    MaxCompletionTokens,
}

impl MaxTokensField {
    /// The field's name in a request.
    pub fn as_str(self) -> &'static str {
        match self {
            MaxTokensField::MaxTokens => "max_tokens",
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
        }
    }
}

/// The default for [`ClientSettings::idle_timeout`]: long enough for a slow local model to
/// process a large prompt before its first token.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Turns one protocol's SSE events into [`StreamEvent`]s.
pub(crate) trait Decode: Send {
    fn event(&mut self, event: sse::SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), LlmError>;
    /// Whether the protocol's end marker has been seen; the stream is complete.
    fn done(&self) -> bool;
}

/// Parses one event's JSON payload, naming the provider and quoting the start of the
/// payload when it is not JSON.
pub(crate) fn parse_json(provider: &str, data: &str) -> Result<Value, LlmError> {
    serde_json::from_str(data).map_err(|err| LlmError::Malformed {
        provider: provider.to_owned(),
        detail: format!("{err} in `{}`", error::shorten(data)),
    })
}

/// Reads a token count that may be absent or null.
pub(crate) fn count(value: &Value, pointer: &str) -> u64 {
    value.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// A mid-stream error object, classified: an overflow is its own kind everywhere.
pub(crate) fn stream_error(provider: &str, error: &Value) -> LlmError {
    if error::is_overflow_json(error) {
        return LlmError::ContextOverflow {
            detail: error::error_message(error).unwrap_or_else(|| error.to_string()),
        };
    }
    let error_obj = error.get("error").unwrap_or(error);
    let code = ["code", "type"].iter().find_map(|key| match error_obj.get(*key) {
        Some(Value::String(code)) => Some(code.clone()),
        Some(Value::Number(code)) => Some(code.to_string()),
        _ => None,
    });
    let message = error_obj
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| error.to_string());
    let message = match &code {
        Some(code) if !message.contains(code.as_str()) => format!("{message} ({code})"),
        _ => message,
    };
    LlmError::Provider { provider: provider.to_owned(), code, message }
}
