//! One-line subjects for step commits, saying what the step did:
//! `edit src/lib.rs (+3 -1)`, `shell: cargo test (exit 101)`, `model: Done, all green`.

use std::path::PathBuf;

use gix::bstr::ByteSlice;
use serde_json::Value;

use crate::checkpoint::{Session, Store};
use crate::text::one_line;

/// A tool call after it ran.
pub struct Outcome {
    pub id: String,
    pub name: String,
    pub arguments: Value,
    pub is_error: bool,
    pub content: String,
    pub changed: Vec<PathBuf>,
}

/// The subject of a response without tool calls.
pub fn for_reply(text: &str) -> String {
    if text.trim().is_empty() {
        "model: (empty response)".to_string()
    } else {
        format!("model: {}", one_line(text))
    }
}

/// What a call would do, for approval prompts and subjects: `shell: cargo test`.
pub fn describe_call(name: &str, arguments: &Value) -> String {
    let field = |key: &str| arguments.get(key).and_then(Value::as_str).unwrap_or("?").to_string();
    match name {
        "shell" => format!("shell: {}", field("command")),
        "write_file" | "edit_file" | "read_file" => format!("{name} {}", field("path")),
        "glob" | "grep" => format!("{name} {}", field("pattern")),
        "rewind" => {
            format!("rewind to step {}", arguments.get("step").and_then(Value::as_u64).unwrap_or(0))
        }
        // An MCP tool (`<server>__<tool>`): its arguments say what it would do.
        mcp if mcp.contains(crate::mcp::SEPARATOR) => match arguments {
            Value::Object(map) if !map.is_empty() => {
                let arguments: String = arguments.to_string().chars().take(100).collect();
                format!("{mcp} {arguments}")
            }
            _ => mcp.to_string(),
        },
        other => other.to_string(),
    }
}

/// The subject of a response with tool calls: each call, most telling first.
pub fn for_tools(store: &Store, session: &Session, outcomes: &[Outcome]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for outcome in outcomes {
        let part = match outcome.name.as_str() {
            _ if outcome.is_error && outcome.name != "shell" => {
                format!("{} (failed)", describe_call(&outcome.name, &outcome.arguments))
            }
            "edit_file" | "write_file" => {
                let verb = if outcome.name == "edit_file" { "edit" } else { "write" };
                let path = outcome.changed.first().cloned().unwrap_or_default();
                match line_delta(store, session, &path) {
                    Some((added, removed)) => {
                        format!("{verb} {} (+{added} -{removed})", path.display())
                    }
                    None => format!("{verb} {}", path.display()),
                }
            }
            "shell" => {
                let status = outcome.content.lines().next().unwrap_or_default();
                let status = status
                    .strip_prefix("exit code: ")
                    .map(|code| format!("exit {code}"))
                    .unwrap_or_else(|| status.to_string());
                let command: String =
                    describe_call("shell", &outcome.arguments).chars().take(70).collect();
                format!("{command} ({status})")
            }
            _ => describe_call(&outcome.name, &outcome.arguments),
        };
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    one_line(&parts.join("; "))
}

/// Lines added and removed in `path` since the session's tip.
fn line_delta(store: &Store, session: &Session, path: &std::path::Path) -> Option<(usize, usize)> {
    let new = std::fs::read(store.root().join(path)).ok()?;
    let old = match session.tip {
        Some(tip) => {
            let tree = store.repo().find_tree(store.step_tree(tip).ok()?).ok()?;
            match tree.lookup_entry_by_path(path).ok()? {
                Some(entry) => store.repo().find_blob(entry.oid()).ok()?.data.clone(),
                None => Vec::new(),
            }
        }
        None => Vec::new(),
    };
    Some(crate::text::line_counts(&old.to_str_lossy(), &new.to_str_lossy()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_are_described_briefly() {
        assert_eq!(describe_call("shell", &json!({"command": "cargo test"})), "shell: cargo test");
        assert_eq!(describe_call("read_file", &json!({"path": "src/a.rs"})), "read_file src/a.rs");
        assert_eq!(describe_call("rewind", &json!({"step": 3})), "rewind to step 3");
        assert_eq!(describe_call("write_file", &json!({})), "write_file ?");
        assert_eq!(
            describe_call("echo__say", &json!({"text": "hi"})),
            "echo__say {\"text\":\"hi\"}"
        );
        assert_eq!(describe_call("echo__ping", &json!({})), "echo__ping");
        assert_eq!(for_reply("  \n"), "model: (empty response)");
        assert_eq!(for_reply("All done.\nDetails follow."), "model: All done.");
    }
}
