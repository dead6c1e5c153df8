//! Codex's payloads, in its two forms:
//!
//! - `notify = ["cairn", "hook", "codex"]` in `~/.codex/config.toml`: at the end of each
//!   turn Codex runs the program with one more argument, a JSON object with
//!   `"type": "agent-turn-complete"`, `thread-id`, `turn-id`, `cwd`, `input-messages` (the
//!   turn's user messages) and `last-assistant-message`.
//! - Codex hooks (`hooks.json` or `[hooks]` in `config.toml`): Claude Code's format on
//!   stdin (`session_id`, `turn_id`, `cwd`, `hook_event_name`, `model`, …), with the tools
//!   `Bash`, `apply_patch` (its `tool_input.command` is the patch) and MCP tools.

use std::path::PathBuf;

use serde_json::Value;

use super::{Action, AgentKind, Effect, HookEvent, PayloadError, claude_code, path, text};

/// The `type` of the `notify` payload at the end of a turn.
const TURN_COMPLETE: &str = "agent-turn-complete";

/// Reads a Codex payload (already known to be a JSON object): `notify`'s or a hook's.
pub fn parse(payload: &Value) -> Result<HookEvent, PayloadError> {
    if payload.get("hook_event_name").is_some() {
        return claude_code::parse_with(AgentKind::Codex, payload, tool_effect);
    }
    let Some(kind) = text(payload, "type") else {
        return Err(PayloadError::Missing("type"));
    };
    let session_id = super::required(payload, "thread-id")?;
    let action = if kind == TURN_COMPLETE {
        let prompt = payload
            .get("input-messages")
            .and_then(Value::as_array)
            .map(|messages| {
                messages.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n\n")
            })
            .filter(|prompt| !prompt.trim().is_empty());
        Action::TurnEnd { prompt, reply: text(payload, "last-assistant-message") }
    } else {
        Action::Ignored
    };
    Ok(HookEvent {
        agent: AgentKind::Codex,
        event_name: kind,
        session_id,
        cwd: path(payload, "cwd"),
        transcript_path: None,
        model: None,
        turn_id: text(payload, "turn-id"),
        action,
    })
}

/// What Codex's tools change: `apply_patch` the files its patch names.
fn tool_effect(name: &str, input: &Value) -> Effect {
    match name {
        "apply_patch" => {
            let patch = input.get("command").and_then(Value::as_str).unwrap_or_default();
            let paths = patch_paths(patch);
            if paths.is_empty() { Effect::Unknown } else { Effect::Paths(paths) }
        }
        _ => Effect::Unknown,
    }
}

/// The files an `apply_patch` patch adds, updates, deletes or moves to.
fn patch_paths(patch: &str) -> Vec<PathBuf> {
    const MARKERS: [&str; 4] =
        ["*** Add File: ", "*** Update File: ", "*** Delete File: ", "*** Move to: "];
    let mut out: Vec<PathBuf> = Vec::new();
    for line in patch.lines() {
        for marker in MARKERS {
            if let Some(path) = line.strip_prefix(marker).map(str::trim)
                && !path.is_empty()
                && !out.iter().any(|p| p.as_os_str() == path)
            {
                out.push(PathBuf::from(path));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn notify_is_one_turn_with_its_prompt() {
        let event = parse(&json!({
            "type": "agent-turn-complete", "thread-id": "t1", "turn-id": "7", "cwd": "/w",
            "input-messages": ["rename foo", "and bar"], "last-assistant-message": "Done."
        }))
        .unwrap();
        assert_eq!(event.session_id, "t1");
        assert_eq!(event.turn_id.as_deref(), Some("7"));
        assert_eq!(
            event.action,
            Action::TurnEnd {
                prompt: Some("rename foo\n\nand bar".into()),
                reply: Some("Done.".into())
            }
        );
        let other = parse(&json!({"type": "approval-requested", "thread-id": "t1"})).unwrap();
        assert_eq!(other.action, Action::Ignored);
        assert_eq!(parse(&json!({"thread-id": "t1"})), Err(PayloadError::Missing("type")));
    }

    #[test]
    fn hooks_use_claude_codes_format_and_patches_name_their_files() {
        let patch = "*** Begin Patch\n*** Update File: src/a.rs\n@@\n-x\n+y\n*** Add File: b.txt\n+hi\n*** Delete File: c.txt\n*** End Patch\n";
        let event = parse(&json!({
            "session_id": "s", "turn_id": "1", "cwd": "/w", "hook_event_name": "PostToolUse",
            "model": "gpt-5-codex", "tool_name": "apply_patch", "tool_use_id": "call_1",
            "tool_input": {"command": patch}, "tool_response": "Success.", "transcript_path": null,
            "permission_mode": "default"
        }))
        .unwrap();
        assert_eq!(event.agent, AgentKind::Codex);
        assert_eq!(event.model.as_deref(), Some("gpt-5-codex"));
        assert_eq!(event.transcript_path, None);
        let Action::Tool(tool) = event.action else { panic!("a tool call") };
        assert_eq!(
            tool.effect,
            Effect::Paths(vec!["src/a.rs".into(), "b.txt".into(), "c.txt".into()])
        );
        assert_eq!(tool_effect("Bash", &json!({"command": "ls"})), Effect::Unknown);
    }
}
