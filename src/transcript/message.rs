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

    /// The message as the provider clients take it.
    pub fn into_wire(self) -> llm::Message {
        match self {
            Message::User { text } => llm::Message::User { text },
            Message::Assistant { text, tool_calls } => llm::Message::Assistant {
                text,
                tool_calls: tool_calls.into_iter().map(ToolCall::into_wire).collect(),
            },
            Message::ToolResult { call_id, content, is_error } => {
                llm::Message::ToolResult { call_id, content, is_error }
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
            llm::Message::Assistant { text, tool_calls } => Message::Assistant {
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
