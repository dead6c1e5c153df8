//! Tier 2, the session summary (`.cairn/memory/session.md`), and the promotion of facts
//! from it into project memory.
//!
//! What can be copied exactly is copied by cairn, not retold by the model: the goal in the
//! user's own words (their prompts, verbatim), the files the agent wrote and the commands
//! that exited 0. The model writes the judgment calls: decisions, errors and their fixes,
//! open tasks and the next action. A summary therefore keeps its literals even when the
//! summarizing call fails.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::llm::{Message, ToolArguments};
use crate::memory::Source;

/// The start of the user message that replaces the compacted part of a conversation.
pub const COMPACTED_PREFIX: &str = "[cairn] The earlier part of this conversation was compacted to save context. \
The session summary (.cairn/memory/session.md) follows; the most recent turns come after it verbatim.";

/// The sections the model writes, in order.
const MODEL_SECTIONS: [&str; 4] = ["Decisions", "Errors and fixes", "Open tasks", "Next action"];

pub const SUMMARY_SYSTEM: &str = "\
You summarize a coding session so that work can continue after the conversation is cut.
Write exactly these four Markdown sections, in this order, and nothing else:
## Decisions
## Errors and fixes
## Open tasks
## Next action
Use short bullet points. Copy exact literals (file paths, commands, ports, names, error
messages) character for character; never paraphrase them. Write only what the transcript
shows; if a section has nothing, write `- none`.";

pub const PROMOTION_SYSTEM: &str = "\
You maintain a project's durable memory: short facts that help future sessions in this
repository. You get a session summary and the existing facts. Propose changes as a JSON
array and output nothing else. Each element is one of:
{\"op\": \"add\", \"fact\": \"...\", \"source\": \"user\" | \"verified\"}
{\"op\": \"update\", \"slug\": \"...\", \"fact\": \"...\", \"source\": \"user\" | \"verified\"}
{\"op\": \"delete\", \"slug\": \"...\"}
{\"op\": \"noop\"}
Only promote what the user stated (source \"user\") or what was verified by a command that
succeeded (source \"verified\"); never guesses, plans or hypotheses. Prefer updating an
existing fact over adding a near-duplicate. Delete a fact only when the session proved it
wrong. Each fact is one sentence with exact literals. Output [] when nothing qualifies.";

/// What cairn copies into the summary itself.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    /// The user's prompts, verbatim, in order.
    pub prompts: Vec<String>,
    pub files: BTreeSet<String>,
    /// Shell commands that exited 0, verbatim, first occurrence order.
    pub commands: Vec<String>,
}

impl Ledger {
    pub fn of(history: &[Message]) -> Ledger {
        let mut ledger = Ledger::default();
        let mut calls: Vec<(&str, &str, &Value)> = Vec::new();
        for message in history {
            match message {
                Message::User { text } if !text.starts_with(COMPACTED_PREFIX) => {
                    ledger.prompts.push(text.clone())
                }
                Message::Assistant { tool_calls, .. } => {
                    for call in tool_calls {
                        if let ToolArguments::Json(args) = &call.arguments {
                            calls.push((call.id.as_str(), call.name.as_str(), args));
                        }
                    }
                }
                Message::ToolResult { call_id, content, is_error } if !is_error => {
                    let Some((_, name, args)) = calls.iter().find(|(id, _, _)| id == call_id)
                    else {
                        continue;
                    };
                    let text =
                        |key: &str| args.get(key).and_then(Value::as_str).map(str::to_string);
                    match *name {
                        "write_file" | "edit_file" => ledger.files.extend(text("path")),
                        "shell" if content.starts_with("exit code: 0\n") => {
                            if let Some(command) = text("command")
                                && !ledger.commands.contains(&command)
                            {
                                ledger.commands.push(command);
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        ledger
    }
}

/// The transcript the summarizer reads: the previous summary, then the messages, with
/// long tool results cut in the middle, within `max_bytes` (the oldest messages go first).
pub fn transcript(
    previous: Option<&str>,
    notes: &str,
    messages: &[Message],
    max_bytes: usize,
) -> String {
    const RESULT_BYTES: usize = 1500;
    let mut parts: Vec<String> = Vec::new();
    for message in messages {
        let part = match message {
            Message::User { text } => format!("USER:\n{text}"),
            Message::Assistant { text, tool_calls, .. } => {
                let mut part = format!("ASSISTANT:\n{text}");
                for call in tool_calls {
                    part.push_str(&format!(
                        "\nTOOL CALL {}: {}",
                        call.name,
                        call.arguments.to_wire_value()
                    ));
                }
                part
            }
            Message::ToolResult { content, is_error, .. } => {
                let label = if *is_error { "TOOL ERROR" } else { "TOOL RESULT" };
                format!(
                    "{label}:\n{}",
                    super::tools::output::truncate_middle(content, RESULT_BYTES)
                )
            }
        };
        parts.push(part);
    }
    let mut head = String::new();
    if let Some(previous) = previous {
        head.push_str(&format!("PREVIOUS SUMMARY:\n{previous}\n\n"));
    }
    if !notes.trim().is_empty() {
        head.push_str(&format!("WORKING NOTES:\n{notes}\n\n"));
    }
    let mut total = head.len() + parts.iter().map(|p| p.len() + 2).sum::<usize>();
    let mut skip = 0;
    while total > max_bytes && skip < parts.len() {
        total -= parts[skip].len() + 2;
        skip += 1;
    }
    let mut out = head;
    if skip > 0 {
        out.push_str(&format!("({skip} older messages left out)\n\n"));
    }
    out.push_str(&parts[skip..].join("\n\n"));
    out
}

/// Writes `session.md` from the ledger and the model's sections (or, when the model call
/// failed, a note saying so in their place).
pub fn render(session: &str, ledger: &Ledger, model: Result<&str, &str>) -> String {
    let mut out = format!("# Session {session}\n\n## Goal\n");
    if ledger.prompts.is_empty() {
        out.push_str("- none\n");
    }
    for prompt in &ledger.prompts {
        for line in prompt.lines() {
            out.push_str(&format!("> {line}\n"));
        }
        out.push('\n');
    }
    out.push_str("\n## Files touched\n");
    list(&mut out, ledger.files.iter().map(|f| format!("`{f}`")));
    out.push_str("\n## Commands that worked\n");
    list(&mut out, ledger.commands.iter().map(|c| format!("`{}`", c.replace('\n', " "))));
    let sections = match model {
        Ok(text) => model_sections(text),
        Err(reason) => {
            MODEL_SECTIONS.iter().map(|_| format!("- (not summarized: {reason})\n")).collect()
        }
    };
    for (title, body) in MODEL_SECTIONS.iter().zip(sections) {
        out.push_str(&format!("\n## {title}\n{body}"));
    }
    out
}

fn list(out: &mut String, items: impl Iterator<Item = String>) {
    let mut any = false;
    for item in items {
        out.push_str(&format!("- {item}\n"));
        any = true;
    }
    if !any {
        out.push_str("- none\n");
    }
}

/// The bodies of the four model sections in `text`, by heading; a missing one is `- none`.
fn model_sections(text: &str) -> Vec<String> {
    let mut bodies = vec![String::new(); MODEL_SECTIONS.len()];
    let mut current: Option<usize> = None;
    for line in text.lines() {
        if let Some(heading) = line.trim_start().strip_prefix('#') {
            let heading = heading.trim_start_matches('#').trim().to_lowercase();
            current = MODEL_SECTIONS.iter().position(|s| s.to_lowercase() == heading);
            continue;
        }
        if let Some(i) = current {
            bodies[i].push_str(line);
            bodies[i].push('\n');
        }
    }
    bodies
        .into_iter()
        .map(|body| {
            let body = body.trim();
            if body.is_empty() { "- none\n".to_string() } else { format!("{body}\n") }
        })
        .collect()
}

/// One change the promotion pass proposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Promotion {
    Add { fact: String, source: Source },
    Update { slug: String, fact: String, source: Source },
    Delete { slug: String },
}

/// Reads the promotion pass's answer: the JSON array in it. Ops whose source is not the
/// user's word or a verified outcome are dropped, as are malformed ones.
pub fn parse_promotions(text: &str) -> Vec<Promotion> {
    let (Some(start), Some(end)) = (text.find('['), text.rfind(']')) else { return Vec::new() };
    let Ok(Value::Array(ops)) = serde_json::from_str::<Value>(&text[start..=end.max(start)]) else {
        return Vec::new();
    };
    let field = |op: &Value, key: &str| op.get(key).and_then(Value::as_str).map(str::to_string);
    let trusted = |op: &Value| match field(op, "source").as_deref().and_then(Source::parse) {
        Some(source @ (Source::User | Source::Verified)) => Some(source),
        _ => None,
    };
    ops.iter()
        .filter_map(|op| match field(op, "op")?.as_str() {
            "add" => Some(Promotion::Add { fact: field(op, "fact")?, source: trusted(op)? }),
            "update" => Some(Promotion::Update {
                slug: field(op, "slug")?,
                fact: field(op, "fact")?,
                source: trusted(op)?,
            }),
            "delete" => Some(Promotion::Delete { slug: field(op, "slug")? }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::llm::ToolCall;

    fn call(id: &str, name: &str, args: Value) -> ToolCall {
        ToolCall { id: id.into(), name: name.into(), arguments: ToolArguments::Json(args) }
    }

    fn result(id: &str, content: &str, is_error: bool) -> Message {
        Message::ToolResult { call_id: id.into(), content: content.into(), is_error }
    }

    #[test]
    fn the_ledger_copies_prompts_files_and_working_commands_exactly() {
        let history = vec![
            Message::User { text: "fix the test on port 5433".into() },
            Message::Assistant {
                reasoning: Vec::new(),
                text: String::new(),
                tool_calls: vec![
                    call("1", "shell", json!({"command": "cargo test --locked -p db"})),
                    call("2", "shell", json!({"command": "make broken"})),
                    call("3", "edit_file", json!({"path": "src/db.rs"})),
                    call("4", "write_file", json!({"path": "src/refused.rs"})),
                ],
            },
            result("1", "exit code: 0\nstdout:\nok\n", false),
            result("2", "exit code: 2\nstdout:\n", false),
            result("3", "edited", false),
            result("4", "refused", true),
            Message::User { text: format!("{COMPACTED_PREFIX}\n...") },
        ];
        let ledger = Ledger::of(&history);
        assert_eq!(ledger.prompts, ["fix the test on port 5433"]);
        assert_eq!(ledger.commands, ["cargo test --locked -p db"]);
        assert_eq!(ledger.files.iter().collect::<Vec<_>>(), ["src/db.rs"]);
        let summary =
            render("s1", &ledger, Ok("## Decisions\n- use port 5433\n## Next action\n- run it\n"));
        assert!(summary.contains("## Goal\n> fix the test on port 5433\n"), "{summary}");
        assert!(summary.contains("## Commands that worked\n- `cargo test --locked -p db`\n"));
        assert!(summary.contains("## Decisions\n- use port 5433\n"));
        assert!(summary.contains("## Open tasks\n- none\n"));
        let failed = render("s1", &ledger, Err("HTTP 500"));
        assert!(failed.contains("## Decisions\n- (not summarized: HTTP 500)"));
    }

    #[test]
    fn promotions_keep_only_trusted_well_formed_ops() {
        let text = r#"Here you go:
[{"op":"add","fact":"Tests need --locked","source":"verified"},
 {"op":"add","fact":"Maybe the cache is stale","source":"guess"},
 {"op":"add","fact":"no source"},
 {"op":"update","slug":"db-port","fact":"The dev db listens on 5433","source":"user"},
 {"op":"delete","slug":"old"},
 {"op":"noop"}]"#;
        assert_eq!(
            parse_promotions(text),
            [
                Promotion::Add { fact: "Tests need --locked".into(), source: Source::Verified },
                Promotion::Update {
                    slug: "db-port".into(),
                    fact: "The dev db listens on 5433".into(),
                    source: Source::User
                },
                Promotion::Delete { slug: "old".into() },
            ]
        );
        assert!(parse_promotions("no json here").is_empty());
        assert!(parse_promotions("[not json]").is_empty());
    }

    #[test]
    fn the_transcript_drops_the_oldest_messages_to_fit() {
        let messages: Vec<Message> = (0..50)
            .map(|n| Message::User { text: format!("message {n} {}", "x".repeat(100)) })
            .collect();
        let text = transcript(Some("old summary"), "a note", &messages, 2000);
        assert!(text.len() <= 2100, "{}", text.len());
        assert!(text.starts_with("PREVIOUS SUMMARY:\nold summary"));
        assert!(text.contains("WORKING NOTES:\na note"));
        assert!(text.contains("message 49"));
        assert!(!text.contains("message 0 "));
        assert!(text.contains("older messages left out"));
    }
}
