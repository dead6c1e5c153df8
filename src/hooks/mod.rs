//! Checkpoints for other agents: `cairn hook claude-code|codex|gemini` turns one hook call
//! of Claude Code, Codex or Gemini CLI into steps of a cairn session, so `cairn log`,
//! `diff`, `rewind`, `blame`, `export` and `push` work on their work as on cairn's own.
//!
//! Each agent module reads its payload format into one [`HookEvent`]; [`record`] turns that
//! into steps. Which step kind each event becomes:
//!
//! | event | step |
//! |---|---|
//! | a prompt (`UserPromptSubmit`, `BeforeAgent`) | `user-edits` when the workspace changed since the last step, then `prompt` |
//! | a tool call done (`PostToolUse`, `PostToolUseFailure`, `AfterTool`) | `tool` |
//! | a turn done (`Stop`, `AfterAgent`, Codex `notify`) | `prompt` if the turn's prompt is not recorded yet, then `model` |
//! | a compaction (`PreCompact`) | `compact` |
//! | Gemini's `PreCompress` | `compact` at the next hook call, if the transcript shows the history compressed (see [`compression`]) |
//!
//! A turn's end whose turn id ends the turn already recorded (Codex's `notify` and `Stop`
//! hook both configured) records nothing. An agent session's first prompt records the
//! user's edits not recorded yet as a `user-edits` step first, authored by the user.
//!
//! Other events are not recorded. The agent's session id maps to a cairn session (see
//! [`sessions`]): the same agent session always continues the same cairn session.

pub mod agent_transcript;
pub mod claude_code;
pub mod codex;
mod compression;
pub mod gemini;
pub mod install;
mod record;
mod sessions;

use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

pub use record::{HookError, HookOptions, Recorded, record};
pub use sessions::last_recorded;

/// The agents whose hooks cairn reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentKind {
    ClaudeCode,
    Codex,
    Gemini,
}

impl AgentKind {
    pub const ALL: [AgentKind; 3] = [AgentKind::ClaudeCode, AgentKind::Codex, AgentKind::Gemini];

    /// The agent named on the command line (`claude-code`, `codex`, `gemini`).
    pub fn from_name(name: &str) -> Option<AgentKind> {
        match name {
            "claude-code" | "claude" => Some(AgentKind::ClaudeCode),
            "codex" => Some(AgentKind::Codex),
            "gemini" | "gemini-cli" => Some(AgentKind::Gemini),
            _ => None,
        }
    }

    /// The name recorded in commits and `session.toml`.
    pub fn name(self) -> &'static str {
        match self {
            AgentKind::ClaudeCode => "claude-code",
            AgentKind::Codex => "codex",
            AgentKind::Gemini => "gemini",
        }
    }

    /// The product's name, for messages.
    pub fn title(self) -> &'static str {
        match self {
            AgentKind::ClaudeCode => "Claude Code",
            AgentKind::Codex => "Codex",
            AgentKind::Gemini => "Gemini CLI",
        }
    }

    /// The hook events this agent sends that cairn records.
    pub fn recorded_events(self) -> &'static str {
        match self {
            AgentKind::ClaudeCode => {
                "UserPromptSubmit, PostToolUse, PostToolUseFailure, Stop, PreCompact"
            }
            AgentKind::Codex => {
                "notify's agent-turn-complete, and the hooks UserPromptSubmit, PostToolUse, Stop, PreCompact"
            }
            AgentKind::Gemini => "BeforeAgent, AfterTool, AfterAgent, PreCompress",
        }
    }
}

/// One hook call, as cairn understands it.
#[derive(Debug, Clone, PartialEq)]
pub struct HookEvent {
    pub agent: AgentKind,
    /// The event as the agent named it (`PostToolUse`, `agent-turn-complete`, …).
    pub event_name: String,
    /// The agent's own session (or thread) id.
    pub session_id: String,
    /// The directory the agent works in; cairn records the repository that holds it.
    pub cwd: Option<PathBuf>,
    pub transcript_path: Option<PathBuf>,
    /// The agent's model, when the payload names it.
    pub model: Option<String>,
    pub turn_id: Option<String>,
    pub action: Action,
}

/// What a hook call asks cairn to record.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The user submitted a prompt.
    Prompt { text: String },
    /// A tool call finished.
    Tool(ToolUse),
    /// The agent finished its turn.
    TurnEnd {
        /// The turn's prompt, when the payload carries it (Codex `notify`, Gemini).
        prompt: Option<String>,
        /// The agent's last message.
        reply: Option<String>,
    },
    /// The agent is about to compact its context.
    Compact { trigger: Option<String> },
    /// An event cairn does not record.
    Ignored,
}

/// One finished tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolUse {
    pub name: String,
    pub id: Option<String>,
    pub input: Value,
    pub response: Value,
    pub is_error: bool,
    pub effect: Effect,
}

/// What a tool call may have changed in the workspace.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Nothing (it only reads).
    ReadOnly,
    /// Exactly these files, as the agent named them (absolute, or relative to its cwd).
    Paths(Vec<PathBuf>),
    /// Anything (a shell command, an unknown tool): the workspace is scanned.
    Unknown,
}

/// Why a payload cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    Empty,
    NotJson(String),
    NotAnObject,
    Missing(&'static str),
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadError::Empty => f.write_str("the hook payload is empty"),
            PayloadError::NotJson(reason) => write!(f, "the hook payload is not JSON ({reason})"),
            PayloadError::NotAnObject => f.write_str("the hook payload is not a JSON object"),
            PayloadError::Missing(field) => {
                write!(f, "the hook payload has no `{field}` (a string)")
            }
        }
    }
}

/// Reads one hook payload of `agent`.
pub fn parse(agent: AgentKind, text: &str) -> Result<HookEvent, PayloadError> {
    if text.trim().is_empty() {
        return Err(PayloadError::Empty);
    }
    let value: Value =
        serde_json::from_str(text).map_err(|err| PayloadError::NotJson(err.to_string()))?;
    if !value.is_object() {
        return Err(PayloadError::NotAnObject);
    }
    match agent {
        AgentKind::ClaudeCode => claude_code::parse(&value),
        AgentKind::Codex => codex::parse(&value),
        AgentKind::Gemini => gemini::parse(&value),
    }
}

/// A string field of a payload.
fn text(payload: &Value, field: &str) -> Option<String> {
    payload.get(field).and_then(Value::as_str).map(str::to_string)
}

/// A required string field of a payload.
fn required(payload: &Value, field: &'static str) -> Result<String, PayloadError> {
    text(payload, field).filter(|s| !s.is_empty()).ok_or(PayloadError::Missing(field))
}

/// A path field of a payload (empty strings count as absent).
fn path(payload: &Value, field: &str) -> Option<PathBuf> {
    text(payload, field).filter(|s| !s.is_empty()).map(PathBuf::from)
}

/// The paths named by the string `fields` of a tool's input, or `Unknown` when none is.
fn paths_in(input: &Value, fields: &[&str]) -> Effect {
    let paths: Vec<PathBuf> = fields
        .iter()
        .filter_map(|field| input.get(*field).and_then(Value::as_str))
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();
    if paths.is_empty() { Effect::Unknown } else { Effect::Paths(paths) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_payloads_say_why() {
        for agent in AgentKind::ALL {
            assert_eq!(parse(agent, "  \n"), Err(PayloadError::Empty));
            assert!(matches!(parse(agent, "{\"session_id\": "), Err(PayloadError::NotJson(_))));
            assert_eq!(parse(agent, "[1, 2]"), Err(PayloadError::NotAnObject));
        }
        assert_eq!(
            PayloadError::Missing("session_id").to_string(),
            "the hook payload has no `session_id` (a string)"
        );
    }

    #[test]
    fn agents_are_named_as_on_the_command_line() {
        for agent in AgentKind::ALL {
            assert_eq!(AgentKind::from_name(agent.name()), Some(agent));
        }
        assert_eq!(AgentKind::from_name("claude"), Some(AgentKind::ClaudeCode));
        assert_eq!(AgentKind::from_name("cursor"), None);
    }
}
