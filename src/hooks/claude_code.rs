//! Claude Code's hook payloads: one JSON object on stdin with `session_id`,
//! `transcript_path`, `cwd` and `hook_event_name`, plus each event's fields (`prompt` for
//! `UserPromptSubmit`; `tool_name`, `tool_input`, `tool_response`, `tool_use_id` for
//! `PostToolUse`; `error` for `PostToolUseFailure`; `last_assistant_message` for `Stop`,
//! when the version sends it; `trigger` for `PreCompact`).
//!
//! Codex's hooks use the same format, so [`parse_with`] serves both, with each agent's own
//! idea of which tools change which files.

use serde_json::Value;

use super::{Action, AgentKind, Effect, HookEvent, PayloadError, ToolUse, path, paths_in, text};

/// Reads a Claude Code hook payload (already known to be a JSON object).
pub fn parse(payload: &Value) -> Result<HookEvent, PayloadError> {
    parse_with(AgentKind::ClaudeCode, payload, tool_effect)
}

/// Reads a payload in Claude Code's hook format for `agent`, with `effect` saying what
/// each of its tools may change.
pub(super) fn parse_with(
    agent: AgentKind,
    payload: &Value,
    effect: fn(&str, &Value) -> Effect,
) -> Result<HookEvent, PayloadError> {
    let event_name = super::required(payload, "hook_event_name")?;
    let session_id = super::required(payload, "session_id")?;
    let action = match event_name.as_str() {
        "UserPromptSubmit" => Action::Prompt { text: super::required(payload, "prompt")? },
        "PostToolUse" | "PostToolUseFailure" => {
            let name = super::required(payload, "tool_name")?;
            let input = payload.get("tool_input").cloned().unwrap_or(Value::Null);
            let failed = event_name == "PostToolUseFailure";
            let response = if failed {
                payload.get("error").cloned().unwrap_or(Value::Null)
            } else {
                payload.get("tool_response").cloned().unwrap_or(Value::Null)
            };
            let effect = effect(&name, &input);
            Action::Tool(ToolUse {
                id: text(payload, "tool_use_id"),
                is_error: failed || response.get("is_error").and_then(Value::as_bool) == Some(true),
                name,
                input,
                response,
                effect,
            })
        }
        "Stop" => Action::TurnEnd { prompt: None, reply: text(payload, "last_assistant_message") },
        "PreCompact" => Action::Compact { trigger: text(payload, "trigger") },
        _ => Action::Ignored,
    };
    Ok(HookEvent {
        agent,
        event_name,
        session_id,
        cwd: path(payload, "cwd"),
        transcript_path: path(payload, "transcript_path"),
        model: text(payload, "model").filter(|m| !m.is_empty()),
        turn_id: text(payload, "turn_id"),
        action,
    })
}

/// What Claude Code's built-in tools change.
fn tool_effect(name: &str, input: &Value) -> Effect {
    match name {
        "Write" | "Edit" | "MultiEdit" => paths_in(input, &["file_path"]),
        "NotebookEdit" => paths_in(input, &["notebook_path"]),
        "Read" | "Glob" | "Grep" | "LS" | "WebFetch" | "WebSearch" | "TodoWrite"
        | "NotebookRead" | "ExitPlanMode" | "BashOutput" => Effect::ReadOnly,
        _ => Effect::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;

    #[test]
    fn a_write_names_its_file_and_a_command_may_change_anything() {
        let event = parse(&json!({
            "session_id": "abc", "cwd": "/w", "hook_event_name": "PostToolUse",
            "tool_name": "Write", "tool_input": {"file_path": "/w/a.txt", "content": "x"},
            "tool_response": {"filePath": "/w/a.txt", "success": true}, "tool_use_id": "toolu_1"
        }))
        .unwrap();
        let Action::Tool(tool) = event.action else { panic!("a tool call") };
        assert_eq!(tool.effect, Effect::Paths(vec![PathBuf::from("/w/a.txt")]));
        assert_eq!(tool.id.as_deref(), Some("toolu_1"));
        assert!(!tool.is_error);
        assert_eq!(tool_effect("Bash", &json!({"command": "make"})), Effect::Unknown);
        assert_eq!(tool_effect("Read", &json!({"file_path": "/w/a"})), Effect::ReadOnly);
        assert_eq!(tool_effect("Edit", &json!({})), Effect::Unknown, "no path: scan");
    }

    #[test]
    fn events_map_to_actions() {
        let base = |event: &str| json!({"session_id": "s", "hook_event_name": event});
        let mut prompt = base("UserPromptSubmit");
        prompt["prompt"] = json!("fix it");
        assert_eq!(parse(&prompt).unwrap().action, Action::Prompt { text: "fix it".into() });
        assert_eq!(
            parse(&base("Stop")).unwrap().action,
            Action::TurnEnd { prompt: None, reply: None }
        );
        assert_eq!(parse(&base("SessionStart")).unwrap().action, Action::Ignored);
        assert_eq!(parse(&base("UserPromptSubmit")), Err(PayloadError::Missing("prompt")));
        assert_eq!(
            parse(&json!({"hook_event_name": "Stop"})),
            Err(PayloadError::Missing("session_id"))
        );
        let mut failure = base("PostToolUseFailure");
        failure["tool_name"] = json!("Bash");
        failure["error"] = json!("exit 1");
        let Action::Tool(tool) = parse(&failure).unwrap().action else { panic!("a tool call") };
        assert!(tool.is_error);
        assert_eq!(tool.response, json!("exit 1"));
    }
}
