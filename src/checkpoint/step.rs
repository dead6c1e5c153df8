//! The on-disk form of a step: the `.cairn/` tree beside the workspace snapshot, and the
//! commit message with its trailers (README.md, "Layout of a step").

use std::fmt;
use std::str::FromStr;

use crate::text::one_line;
use serde::{Deserialize, Serialize};

/// The reserved directory's layout inside a step's tree.
pub const SESSION_FILE: &str = "session.toml";
pub const STEP_FILE: &str = "state/step.json";
pub const MESSAGES_DIR: &str = "state/messages";
/// Tier 1, working notes (paths relative to `.cairn/`).
pub const NOTES_FILE: &str = "memory/notes.md";
/// Tier 2, the session summary.
pub const SUMMARY_FILE: &str = "memory/session.md";
/// Tier 3 as it stood at the step: the tree of `refs/cairn/memory`.
pub const PROJECT_MEMORY_DIR: &str = "memory/project";
/// Where the model's context starts after a compaction: `{"from": <message number>}`.
pub const CONTEXT_FILE: &str = "state/context.json";

/// What kind of step a commit records (the `Cairn-Kind:` trailer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    Prompt,
    Model,
    Tool,
    Compact,
    Rewind,
    Manual,
    UserEdits,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Prompt => "prompt",
            StepKind::Model => "model",
            StepKind::Tool => "tool",
            StepKind::Compact => "compact",
            StepKind::Rewind => "rewind",
            StepKind::Manual => "manual",
            StepKind::UserEdits => "user-edits",
        }
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StepKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "prompt" => StepKind::Prompt,
            "model" => StepKind::Model,
            "tool" => StepKind::Tool,
            "compact" => StepKind::Compact,
            "rewind" => StepKind::Rewind,
            "manual" => StepKind::Manual,
            "user-edits" => StepKind::UserEdits,
            other => return Err(format!("unknown step kind '{other}'")),
        })
    }
}

/// `.cairn/session.toml`: what a session is, written once with its first step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The persisted format its steps hold ([`crate::transcript::SCHEMA_VERSION`] when it
    /// was written); absent in sessions older than the field, which are version 1.
    #[serde(default = "first_schema")]
    pub schema: u32,
    pub id: String,
    pub title: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// The user's `HEAD` commit when the session started; absent on an unborn branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The agent that recorded the session, when it was not cairn itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// That agent's own session id, for sessions recorded by `cairn hook`: the same agent
    /// session always continues the same cairn session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_session: Option<String>,
    pub cairn_version: String,
}

fn first_schema() -> u32 {
    1
}

/// Why a `session.toml` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SessionFileError {
    /// A newer cairn wrote it; reading it as this version's format could misread it.
    #[error("session {session} was written by a newer cairn (schema {schema}); upgrade cairn")]
    Newer { session: String, schema: i64 },
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
}

/// Reads a `session.toml`, refusing one whose `schema` is newer than this cairn knows
/// before reading anything else of it. The one place where the schema is checked: every
/// reader of a session's state (opening, resuming, exporting, listing) goes through it.
pub fn parse_session_info(text: &str) -> Result<SessionInfo, SessionFileError> {
    #[derive(Deserialize)]
    struct Probe {
        schema: Option<i64>,
        id: Option<String>,
    }
    if let Ok(Probe { schema: Some(schema), id }) = toml::from_str::<Probe>(text)
        && schema > i64::from(crate::transcript::SCHEMA_VERSION)
    {
        let session = id.unwrap_or_else(|| "(unnamed)".to_string());
        return Err(SessionFileError::Newer { session, schema });
    }
    Ok(toml::from_str(text)?)
}

/// The trailers cairn reads back from a step's commit message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trailers {
    pub session: String,
    pub step: u64,
    pub kind: StepKind,
    pub tools: Vec<String>,
    pub model: Option<String>,
    /// The agent that did the work, when it was not cairn itself (`Cairn-Agent:`).
    pub agent: Option<String>,
}

/// Composes a step's commit message: subject, body, trailers.
pub fn compose_message(subject: &str, body: &str, trailers: &Trailers) -> String {
    let subject = one_line(subject);
    let mut message = format!("{subject}\n\n");
    let body = body.trim();
    if !body.is_empty() {
        message.push_str(body);
        message.push_str("\n\n");
    }
    message.push_str(&format!("Cairn-Session: {}\n", trailers.session));
    message.push_str(&format!("Cairn-Step: {}\n", trailers.step));
    message.push_str(&format!("Cairn-Kind: {}\n", trailers.kind));
    if !trailers.tools.is_empty() {
        message.push_str(&format!("Cairn-Tools: {}\n", trailers.tools.join(", ")));
    }
    if let Some(model) = &trailers.model {
        message.push_str(&format!("Cairn-Model: {model}\n"));
    }
    if let Some(agent) = &trailers.agent {
        message.push_str(&format!("Cairn-Agent: {agent}\n"));
    }
    message
}

/// Reads the trailers of a commit message; `None` if it is not a cairn step's message.
pub fn parse_trailers(message: &str) -> Option<Trailers> {
    let mut session = None;
    let mut step = None;
    let mut kind = None;
    let mut tools = Vec::new();
    let mut model = None;
    let mut agent = None;
    let paragraph = message.trim_end().rsplit("\n\n").next()?;
    for line in paragraph.lines() {
        let Some((key, value)) = line.split_once(": ") else { continue };
        let value = value.trim();
        match key {
            "Cairn-Session" => session = Some(value.to_string()),
            "Cairn-Step" => step = value.parse().ok(),
            "Cairn-Kind" => kind = value.parse().ok(),
            "Cairn-Tools" => {
                tools = value
                    .split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect()
            }
            "Cairn-Model" => model = Some(value.to_string()),
            "Cairn-Agent" => agent = Some(value.to_string()),
            _ => {}
        }
    }
    Some(Trailers { session: session?, step: step?, kind: kind?, tools, model, agent })
}

/// A new, unique, time-sortable session id such as `20261124-1530-k3f9`.
pub fn new_session_id(now: jiff::Timestamp) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let suffix: String =
        (0..4).map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char).collect();
    format!("{}-{suffix}", now.strftime("%Y%m%d-%H%M"))
}

/// The file name of the `n`th message (from 1), zero-padded so names sort in order.
pub fn message_file_name(n: usize, role: &str) -> String {
    let role: String = role.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    let role = if role.is_empty() { "message".to_string() } else { role };
    format!("{n:06}-{role}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trailers() -> Trailers {
        Trailers {
            session: "20261124-1530-k3f9".into(),
            step: 12,
            kind: StepKind::UserEdits,
            tools: vec!["edit_file".into(), "shell".into()],
            model: Some("openai/gpt-5".into()),
            agent: None,
        }
    }

    #[test]
    fn trailers_round_trip_through_a_message() {
        let message = compose_message(
            "edit src/lib.rs (+3 -1)",
            "Fixed the parser.\n\nSecond paragraph.",
            &trailers(),
        );
        assert!(message.starts_with("edit src/lib.rs (+3 -1)\n\nFixed the parser."));
        assert_eq!(parse_trailers(&message), Some(trailers()));
    }

    #[test]
    fn the_agent_trailer_round_trips() {
        let trailers = Trailers { agent: Some("claude-code".into()), ..trailers() };
        let message = compose_message("prompt: fix it", "", &trailers);
        assert!(message.contains("Cairn-Agent: claude-code\n"), "{message}");
        assert_eq!(parse_trailers(&message), Some(trailers));
    }

    #[test]
    fn a_message_without_trailers_is_not_a_step() {
        assert_eq!(parse_trailers("fix: a bug\n\nCo-authored-by: someone"), None);
        assert_eq!(
            parse_trailers("Cairn-Session: x\nCairn-Kind: prompt\n"),
            None,
            "no step number"
        );
    }

    #[test]
    fn session_ids_sort_by_time() {
        let early = new_session_id("2026-11-24T15:30:00Z".parse().unwrap());
        let late = new_session_id("2026-11-24T15:31:00Z".parse().unwrap());
        assert!(early.starts_with("20261124-1530-"), "{early}");
        assert_eq!(early.len(), "20261124-1530-k3f9".len());
        assert!(early < late);
    }

    const V1: &str = "id = \"20261124-1530-k3f9\"\ntitle = \"t\"\ncreated = \"2026-11-24T15:30:00Z\"\ncairn_version = \"0.1.0\"\n";

    #[test]
    fn a_session_file_without_a_schema_is_version_1() {
        assert_eq!(parse_session_info(V1).unwrap().schema, 1);
    }

    #[test]
    fn a_session_file_names_its_schema_first() {
        let mut info = parse_session_info(V1).unwrap();
        info.schema = crate::transcript::SCHEMA_VERSION;
        let text = toml::to_string(&info).unwrap();
        assert!(text.starts_with(&format!("schema = {}\n", info.schema)), "{text}");
        assert_eq!(parse_session_info(&text).unwrap(), info);
    }

    #[test]
    fn a_newer_schema_is_refused_before_anything_else_is_read() {
        let newer = crate::transcript::SCHEMA_VERSION + 1;
        // A newer format may not even have the fields this one needs.
        let text = format!("schema = {newer}\nid = \"20261124-1530-k3f9\"\n");
        let err = parse_session_info(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "session 20261124-1530-k3f9 was written by a newer cairn (schema {newer}); \
                 upgrade cairn"
            )
        );
    }

    #[test]
    fn message_names_sort_numerically() {
        assert_eq!(message_file_name(7, "user"), "000007-user.json");
        assert!(message_file_name(9, "tool") < message_file_name(10, "assistant"));
        assert_eq!(message_file_name(1, "../x"), "000001-x.json");
    }
}
