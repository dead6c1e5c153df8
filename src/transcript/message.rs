//! One persisted message and its tool calls, as JSON: reading through serde, writing by
//! hand so that writing cannot fail and no serde setting (derive attributes, features such
//! as `serde_json/preserve_order`) can change the bytes. Keys are inserted in sorted
//! order, which is also the order `serde_json` keeps them in by default: the bytes are the
//! same either way.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::llm;

/// One entry of a stored conversation, tagged by `role`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    /// `{"role": "user", "text": …}`
    User { text: String },
    /// `{"role": "assistant", "text": …, "tool_calls": […]}`, each field left out when
    /// empty.
    Assistant {
        #[serde(default)]
        text: String,
        #[serde(default)]
        tool_calls: Vec<ToolCall>,
    },
    /// `{"role": "tool_result", "call_id": …, "content": …, "is_error": true}`, paired to
    /// its call by `call_id`; `is_error` is left out when false.
    ToolResult {
        call_id: String,
        content: String,
        #[serde(default)]
        is_error: bool,
    },
}

/// One piece of what a model reasoned before an assistant message, listed in order under
/// that message's `reasoning` key and tagged by `kind`. It is kept beside [`Message`]
/// rather than in it, so an assistant message without reasoning is built, read and
/// written exactly as before. Signatures and encrypted content are the provider's opaque
/// tokens, stored as they came so they can be sent back.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reasoning {
    /// `{"kind": "text", "text": …}`: text only, never sent back.
    Text { text: String },
    /// `{"kind": "thinking", "signature": …, "text": …}`: Anthropic's, signed.
    Thinking { text: String, signature: String },
    /// `{"data": …, "kind": "redacted_thinking"}`: Anthropic's, encrypted.
    RedactedThinking { data: String },
    /// `{"item": {…}, "kind": "responses_item", "summary": …}`: an OpenAI Responses
    /// reasoning item, verbatim (with its `encrypted_content`), and its summary's text.
    ResponsesItem { item: Value, summary: String },
}

/// A tool call the model made: `{"arguments": …, "id": …, "name": …}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: ToolArguments,
}

/// A tool call's arguments: `{"json": <the arguments>}`, or `{"invalid": {"error": …,
/// "raw": …}}` when the model sent text that is not JSON.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolArguments {
    Json(Value),
    Invalid { raw: String, error: String },
}

impl Message {
    /// Reads one stored message.
    pub fn from_json(value: &Value) -> Result<Message, serde_json::Error> {
        Message::deserialize(value)
    }

    /// The message as it is stored.
    pub fn into_json(self) -> Value {
        let mut object = Map::new();
        match self {
            Message::User { text } => {
                object.insert("role".into(), "user".into());
                object.insert("text".into(), text.into());
            }
            Message::Assistant { text, tool_calls } => {
                object.insert("role".into(), "assistant".into());
                if !text.is_empty() {
                    object.insert("text".into(), text.into());
                }
                if !tool_calls.is_empty() {
                    let calls = tool_calls.into_iter().map(ToolCall::into_json).collect();
                    object.insert("tool_calls".into(), Value::Array(calls));
                }
            }
            Message::ToolResult { call_id, content, is_error } => {
                object.insert("call_id".into(), call_id.into());
                object.insert("content".into(), content.into());
                if is_error {
                    object.insert("is_error".into(), true.into());
                }
                object.insert("role".into(), "tool_result".into());
            }
        }
        Value::Object(object)
    }

    /// The message as the provider clients take it, without reasoning (which is stored
    /// beside it: see [`Reasoning::list_in`]).
    pub fn into_wire(self) -> llm::Message {
        match self {
            Message::User { text } => llm::Message::User { text },
            Message::Assistant { text, tool_calls } => llm::Message::Assistant {
                reasoning: Vec::new(),
                text,
                tool_calls: tool_calls.into_iter().map(ToolCall::into_wire).collect(),
            },
            Message::ToolResult { call_id, content, is_error } => {
                llm::Message::ToolResult { call_id, content, is_error }
            }
        }
    }
}

impl Reasoning {
    /// The reasoning stored with a message: its `reasoning` list, empty when it has none.
    pub fn list_in(message: &Value) -> Result<Vec<Reasoning>, serde_json::Error> {
        match message.get("reasoning") {
            Some(list) => Vec::<Reasoning>::deserialize(list),
            None => Ok(Vec::new()),
        }
    }

    pub(super) fn into_json(self) -> Value {
        let mut object = Map::new();
        match self {
            Reasoning::Text { text } => {
                object.insert("kind".into(), "text".into());
                object.insert("text".into(), text.into());
            }
            Reasoning::Thinking { text, signature } => {
                object.insert("kind".into(), "thinking".into());
                object.insert("signature".into(), signature.into());
                object.insert("text".into(), text.into());
            }
            Reasoning::RedactedThinking { data } => {
                object.insert("data".into(), data.into());
                object.insert("kind".into(), "redacted_thinking".into());
            }
            Reasoning::ResponsesItem { item, summary } => {
                object.insert("item".into(), item);
                object.insert("kind".into(), "responses_item".into());
                object.insert("summary".into(), summary.into());
            }
        }
        Value::Object(object)
    }

    /// The reasoning as the provider clients take it.
    pub fn into_wire(self) -> llm::ReasoningBlock {
        match self {
            Reasoning::Text { text } => llm::ReasoningBlock::Text { text },
            Reasoning::Thinking { text, signature } => {
                llm::ReasoningBlock::Thinking { text, signature }
            }
            Reasoning::RedactedThinking { data } => llm::ReasoningBlock::RedactedThinking { data },
            Reasoning::ResponsesItem { item, summary } => {
                llm::ReasoningBlock::ResponsesItem { item, summary }
            }
        }
    }
}

impl From<&llm::ReasoningBlock> for Reasoning {
    fn from(block: &llm::ReasoningBlock) -> Reasoning {
        match block.clone() {
            llm::ReasoningBlock::Text { text } => Reasoning::Text { text },
            llm::ReasoningBlock::Thinking { text, signature } => {
                Reasoning::Thinking { text, signature }
            }
            llm::ReasoningBlock::RedactedThinking { data } => Reasoning::RedactedThinking { data },
            llm::ReasoningBlock::ResponsesItem { item, summary } => {
                Reasoning::ResponsesItem { item, summary }
            }
        }
    }
}

impl ToolCall {
    fn into_json(self) -> Value {
        let mut object = Map::new();
        object.insert("arguments".into(), self.arguments.into_json());
        object.insert("id".into(), self.id.into());
        object.insert("name".into(), self.name.into());
        Value::Object(object)
    }

    /// The call as the provider clients take it.
    pub fn into_wire(self) -> llm::ToolCall {
        llm::ToolCall { id: self.id, name: self.name, arguments: self.arguments.into_wire() }
    }
}

impl ToolArguments {
    fn into_json(self) -> Value {
        let mut object = Map::new();
        match self {
            ToolArguments::Json(value) => {
                object.insert("json".into(), value);
            }
            ToolArguments::Invalid { raw, error } => {
                let mut invalid = Map::new();
                invalid.insert("error".into(), error.into());
                invalid.insert("raw".into(), raw.into());
                object.insert("invalid".into(), Value::Object(invalid));
            }
        }
        Value::Object(object)
    }

    /// The arguments as the provider clients take them.
    pub fn into_wire(self) -> llm::ToolArguments {
        match self {
            ToolArguments::Json(value) => llm::ToolArguments::Json(value),
            ToolArguments::Invalid { raw, error } => llm::ToolArguments::Invalid { raw, error },
        }
    }
}

impl From<&llm::Message> for Message {
    fn from(message: &llm::Message) -> Message {
        match message {
            llm::Message::User { text } => Message::User { text: text.clone() },
            llm::Message::Assistant { text, tool_calls, .. } => Message::Assistant {
                text: text.clone(),
                tool_calls: tool_calls.iter().map(ToolCall::from).collect(),
            },
            llm::Message::ToolResult { call_id, content, is_error } => Message::ToolResult {
                call_id: call_id.clone(),
                content: content.clone(),
                is_error: *is_error,
            },
        }
    }
}

impl From<&llm::ToolCall> for ToolCall {
    fn from(call: &llm::ToolCall) -> ToolCall {
        ToolCall {
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: ToolArguments::from(&call.arguments),
        }
    }
}

impl From<&llm::ToolArguments> for ToolArguments {
    fn from(arguments: &llm::ToolArguments) -> ToolArguments {
        match arguments {
            llm::ToolArguments::Json(value) => ToolArguments::Json(value.clone()),
            llm::ToolArguments::Invalid { raw, error } => {
                ToolArguments::Invalid { raw: raw.clone(), error: error.clone() }
            }
        }
    }
}

impl From<Message> for llm::Message {
    fn from(message: Message) -> llm::Message {
        message.into_wire()
    }
}
