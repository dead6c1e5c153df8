//! Gemini CLI's hook payloads: one JSON object on stdin with `session_id`,
//! `transcript_path`, `cwd`, `hook_event_name` and `timestamp`, plus each event's fields
//! (`prompt` for `BeforeAgent`; `tool_name`, `tool_input` and `tool_response` — an object
//! with `llmContent`, `returnDisplay` and an optional `error` — for `AfterTool`; `prompt`
//! and `prompt_response` for `AfterAgent`; `trigger` for `PreCompress`).
//!
//! A shell command's exit code is not a field: Gemini writes it into the text it gives the
//! model (`llmContent`, trailer lines such as `Exit Code: 3` after the command's output) and,
//! when the command printed nothing, into `returnDisplay` (`Command exited with code: 3`).
//! [`shell_failed`] reads both.

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
            let is_error = response.get("error").is_some_and(|error| !error.is_null())
                || (name == SHELL_TOOL && shell_failed(&response));
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

/// Gemini CLI's shell tool.
const SHELL_TOOL: &str = "run_shell_command";

/// The lines Gemini appends after a command's output, last first.
const TRAILER_KEYS: [&str; 5] =
    ["Process Group PGID:", "Background PIDs:", "Signal:", "Exit Code:", "Error:"];

/// Whether a shell tool's response says the command failed: a non-zero `Exit Code:` or a
/// `Signal:` in the trailer Gemini appends to `llmContent`, or `returnDisplay`'s
/// `Command exited with code: N` / `Command terminated by signal: S` (a string, or an
/// object with a numeric `exitCode`). The command's own output comes before the trailer
/// and is only read up to it, so output that prints `Exit Code: 1` mid-way cannot mark a
/// command failed; anything garbled reads as not failed.
fn shell_failed(response: &Value) -> bool {
    if let Some(content) = response.get("llmContent").and_then(Value::as_str)
        && trailer_failed(content)
    {
        return true;
    }
    match response.get("returnDisplay") {
        Some(Value::String(display)) => {
            let display = display.trim();
            display.strip_prefix("Command exited with code:").is_some_and(nonzero)
                || display.starts_with("Command terminated by signal:")
        }
        Some(Value::Object(display)) => {
            display.get("exitCode").and_then(Value::as_i64).is_some_and(|code| code != 0)
        }
        _ => false,
    }
}

/// The line Gemini CLI 0.61 ends `llmContent` with: it wraps the text in
/// `<untrusted_context>` … `</untrusted_context>`, after its trailer.
const UNTRUSTED_END: &str = "</untrusted_context>";

/// Reads `llmContent`'s trailer from its last line up (after the closing
/// `</untrusted_context>` Gemini may wrap it in), stopping at the first line that is not
/// one of Gemini's own.
fn trailer_failed(content: &str) -> bool {
    let mut lines = content.lines().rev().map(str::trim).peekable();
    lines.next_if_eq(&UNTRUSTED_END);
    for line in lines {
        let Some(key) = TRAILER_KEYS.into_iter().find(|key| line.starts_with(key)) else {
            return false;
        };
        let value = line[key.len()..].trim();
        match key {
            "Exit Code:" => return nonzero(value),
            "Signal:" if !value.is_empty() && value != "(none)" && value != "null" => return true,
            // Gemini's own lines end at `Error:`, the first after the output.
            "Error:" => return false,
            _ => {}
        }
    }
    false
}

/// Whether `text` is an exit code other than 0 (a number too long to be one is not).
fn nonzero(text: &str) -> bool {
    text.trim().parse::<i64>().is_ok_and(|code| code != 0)
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

    fn shell(response: Value) -> bool {
        let event = parse(&json!({
            "session_id": "g", "hook_event_name": "AfterTool", "tool_name": "run_shell_command",
            "tool_input": {"command": "make"}, "tool_response": response
        }))
        .unwrap();
        let Action::Tool(tool) = event.action else { panic!("a tool call") };
        tool.is_error
    }

    #[test]
    fn a_shell_commands_exit_code_is_read_from_llm_content_or_return_display() {
        // Gemini CLI 0.61: the trailer names a code only when it is not 0.
        assert!(shell(json!({
            "llmContent": "Output: boom\nExit Code: 3\nProcess Group PGID: 4242",
            "returnDisplay": "boom"
        })));
        assert!(!shell(json!({
            "llmContent": "Output: ok\nProcess Group PGID: 4242", "returnDisplay": "ok"
        })));
        // Gemini CLI 0.61 as it really sends it: the text wrapped in <untrusted_context>.
        assert!(shell(json!({
            "llmContent": "<untrusted_context>\nOutput: cat: docs/missing.md: No such file or directory\nExit Code: 1\nProcess Group PGID: 17584\n</untrusted_context>",
            "returnDisplay": "cat: docs/missing.md: No such file or directory"
        })));
        assert!(!shell(json!({
            "llmContent": "<untrusted_context>\nOutput: (empty)\nProcess Group PGID: 17571\n</untrusted_context>",
            "returnDisplay": ""
        })));
        // Older versions always wrote every trailer line.
        assert!(shell(old_style("(empty)", "2")));
        assert!(!shell(old_style("(empty)", "0")));
        assert!(shell(
            json!({"llmContent": "Output: (empty)\nSignal: SIGKILL", "returnDisplay": ""})
        ));
        // The code only in returnDisplay, as a string or an object.
        assert!(shell(
            json!({"llmContent": [{"text": "x"}], "returnDisplay": "Command exited with code: 1"})
        ));
        assert!(shell(json!({"returnDisplay": {"exitCode": 127, "output": ""}})));
        assert!(!shell(json!({"returnDisplay": {"fileDiff": "@@", "filePath": "/w/a"}})));
    }

    #[test]
    fn command_output_cannot_fake_or_hide_the_exit_code() {
        // The command printed an `Exit Code:` line of its own; Gemini's trailer says 0.
        assert!(!shell(old_style("Exit Code: 1\nmore output", "0")));
        // Printed before the real trailer of a failure: the trailer wins.
        assert!(shell(old_style("Exit Code: 0", "5")));
        // A closing tag of the command's own, mid-output, does not skip its output.
        assert!(!shell(json!({
            "llmContent": "<untrusted_context>\nOutput: Exit Code: 2\n</untrusted_context>\nok\nProcess Group PGID: 1\n</untrusted_context>"
        })));
        // Output lines between a fake code and the end stop the search.
        assert!(!shell(
            json!({"llmContent": "Output: Exit Code: 9\nall good", "returnDisplay": "all good"})
        ));
        // Garbled, huge, non-UTF-8-ish or wrongly typed content reads as not failed.
        for garbled in [
            json!({"llmContent": "Exit Code: 99999999999999999999999"}),
            json!({"llmContent": "Exit Code: \u{0}\u{feff}"}),
            json!({"llmContent": "Exit Code:"}),
            json!({"llmContent": 3, "returnDisplay": 4}),
            json!({"returnDisplay": "Command exited with code: lots"}),
            json!({"returnDisplay": {"exitCode": "1"}}),
            json!("a string response"),
            Value::Null,
            json!([1, 2]),
        ] {
            assert!(!shell(garbled.clone()), "{garbled}");
        }
    }

    fn old_style(output: &str, code: &str) -> Value {
        json!({"llmContent": format!("Command: make\nDirectory: (root)\nStdout: {output}\nStderr: (empty)\nError: (none)\nExit Code: {code}\nSignal: (none)\nBackground PIDs: (none)\nProcess Group PGID: 77"), "returnDisplay": ""})
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
