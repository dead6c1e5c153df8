//! Gemini CLI's hook payloads: one JSON object on stdin with `session_id`,
//! `transcript_path`, `cwd`, `hook_event_name` and `timestamp`, plus each event's fields
//! (`prompt` for `BeforeAgent`; `tool_name`, `tool_input` and `tool_response` — an object
//! with `llmContent`, `returnDisplay` and an optional `error` — for `AfterTool`; `prompt`
//! and `prompt_response` for `AfterAgent`; `trigger` for `PreCompress`).

use serde_json::Value;

use super::{Action, AgentKind, Effect, HookEvent, PayloadError, ToolUse, path, paths_in, text};

/// Reads a Gemini CLI hook payload (already known to be a JSON object).
pub fn parse(payload: &Value) -> Result<HookEvent, PayloadError> {
    let event_name = super::required(payload, "hook_event_name")?;
    let session_id = super::required(payload, "session_id")?;
    let action = match event_name.as_str() {
        "BeforeAgent" => Action::Prompt { text: super::required(payload, "prompt")? },
        "AfterTool" => {
            let name = super::required(payload, "tool_name")?;
            let input = payload.get("tool_input").cloned().unwrap_or(Value::Null);
            let response = payload.get("tool_response").cloned().unwrap_or(Value::Null);
            let is_error = response.get("error").is_some_and(|error| !error.is_null());
            Action::Tool(ToolUse {
                effect: tool_effect(&name, &input),
                id: None,
                name,
                input,
                response,
                is_error,
            })
        }
        "AfterAgent" => Action::TurnEnd {
            prompt: text(payload, "prompt").filter(|p| !p.trim().is_empty()),
            reply: text(payload, "prompt_response"),
        },
        "PreCompress" => Action::Compact { trigger: text(payload, "trigger") },
        _ => Action::Ignored,
    };
    Ok(HookEvent {
        agent: AgentKind::Gemini,
        event_name,
        session_id,
        cwd: path(payload, "cwd"),
        transcript_path: path(payload, "transcript_path"),
        model: None,
        turn_id: None,
        action,
    })
}

/// What Gemini CLI's built-in tools change. `save_memory` writes the user's
/// `~/.gemini/GEMINI.md`, outside the workspace.
fn tool_effect(name: &str, input: &Value) -> Effect {
    match name {
        "write_file" | "replace" => paths_in(input, &["file_path"]),
        "read_file"
        | "read_many_files"
        | "list_directory"
        | "glob"
        | "search_file_content"
        | "google_web_search"
        | "web_fetch"
        | "write_todos"
        | "save_memory" => Effect::ReadOnly,
        _ => Effect::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_error_in_the_response_marks_the_call_failed() {
        let event = parse(&json!({
            "session_id": "g", "cwd": "/w", "hook_event_name": "AfterTool",
            "timestamp": "2026-01-28T10:00:00Z", "tool_name": "run_shell_command",
            "tool_input": {"command": "false"},
            "tool_response": {"llmContent": "", "returnDisplay": "", "error": {"message": "exit 1"}}
        }))
        .unwrap();
        let Action::Tool(tool) = event.action else { panic!("a tool call") };
        assert!(tool.is_error);
        assert_eq!(tool.effect, Effect::Unknown);
        assert_eq!(
            tool_effect("replace", &json!({"file_path": "/w/a.rs"})),
            Effect::Paths(vec!["/w/a.rs".into()])
        );
    }

    #[test]
    fn a_turn_carries_its_prompt_and_answer() {
        let event = parse(&json!({
            "session_id": "g", "hook_event_name": "AfterAgent", "prompt": "add tests",
            "prompt_response": "Added.", "stop_hook_active": false
        }))
        .unwrap();
        assert_eq!(
            event.action,
            Action::TurnEnd { prompt: Some("add tests".into()), reply: Some("Added.".into()) }
        );
        let ignored = parse(&json!({"session_id": "g", "hook_event_name": "BeforeModel"}));
        assert_eq!(ignored.unwrap().action, Action::Ignored);
    }
}
