//! `cairn export [SESSION] [--format md|json|html]`: a session as a review document — each
//! step's prompts, model text, tool calls with their (truncated) results, and the step's
//! diff of the workspace (`.cairn/` hidden), and the tokens each step and the whole
//! session used with their estimated cost, as `cairn log` shows them. `html` is a
//! self-contained review page (`crate::history::export` reads the session, `html.rs`
//! presents it).

mod html;

use std::fmt::Write as _;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::Value;

use super::common::{format_time, open_store, print_json};
use super::usage::{Prices, Spent};
use super::{CommandError, log, render};
use crate::agent::tools::output::truncate_middle;
use crate::checkpoint::{Error, SessionInfo, StepSummary, Store};
use crate::history::{self, export::StepMessages};
use crate::llm::Usage;
use crate::transcript::{Message, ToolArguments};

/// Tool results longer than this keep their head and tail.
const MAX_RESULT_BYTES: usize = 4_000;
/// Diffs longer than this keep their head and tail (the full diff is in git).
const MAX_DIFF_BYTES: usize = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Md,
    Json,
    Html,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A session (its steps up to the tip), or any checkpoint (its session's steps up to
    /// it, archived ones included); the current session by default.
    checkpoint: Option<String>,
    /// Markdown, JSON for tools, or a self-contained HTML review page (with the branches
    /// rewinds archived).
    #[arg(long, value_enum, default_value = "md")]
    format: Format,
}

#[derive(Serialize)]
struct Export {
    session: SessionInfo,
    /// The tokens the exported steps used; `null` when none reported usage.
    usage: Option<Usage>,
    /// Their estimated cost in dollars; `null` unless every step that used tokens has a
    /// price table.
    cost: Option<f64>,
    steps: Vec<ExportedStep>,
}

#[derive(Serialize)]
struct ExportedStep {
    #[serde(flatten)]
    summary: StepSummary,
    /// The messages this step added to the conversation.
    messages: Vec<Value>,
    /// The unified diff of the workspace against the previous step.
    diff: String,
    /// The tokens the step's model calls used; `null` for steps without one.
    usage: Option<Usage>,
    /// Their estimated cost in dollars; `null` without a price table.
    cost: Option<f64>,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let store = open_store()?;
    let last = match args.checkpoint {
        Some(name) => store.resolve(&name)?.commit,
        None => {
            let session = store.current_session()?.ok_or(Error::NoCurrentSession)?;
            store.resolve(&session)?.commit
        }
    };
    let prices = Prices::configured();
    match args.format {
        Format::Json => print_json(&collect(&store, last, &prices)?)?,
        Format::Md => print!("{}", markdown(&collect(&store, last, &prices)?)),
        Format::Html => {
            print!("{}", html::page(&history::export::collect(&store, last)?, &prices))
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn collect(store: &Store, last: gix::ObjectId, prices: &Prices) -> Result<Export, CommandError> {
    let (session, walked) = history::export::session_steps(store, last)?;
    let mut steps = Vec::with_capacity(walked.len());
    let mut total = Spent::default();
    for StepMessages { summary, messages } in walked {
        let (from, to) = log::step_trees(store, summary.commit)?;
        let diff = render::render(store.repo(), from, Some(to), false, false)?;
        let messages = messages.into_iter().map(crate::transcript::presentable).collect();
        let spent = Spent::of_step(store, &summary, prices)?;
        total = total + spent;
        steps.push(ExportedStep { summary, messages, diff, usage: spent.usage, cost: spent.cost });
    }
    Ok(Export { session, usage: total.usage, cost: total.cost, steps })
}

/// What a step or the session used, as [`Spent::text`] shows it.
fn spent_text(usage: Option<Usage>, cost: Option<f64>) -> Option<String> {
    Spent { usage, cost }.text()
}

fn markdown(export: &Export) -> String {
    let info = &export.session;
    let mut out = String::new();
    let _ = writeln!(out, "# cairn session `{}`: {}\n", info.id, info.title);
    let _ = writeln!(out, "- created: {}", info.created);
    if let Some(base) = &info.base {
        let _ = writeln!(out, "- base commit: `{base}`");
    }
    if let Some(model) = &info.model {
        let _ = writeln!(out, "- model: {model}");
    }
    if let Some(agent) = &info.agent {
        let _ = match &info.agent_session {
            Some(id) => writeln!(out, "- agent: {agent} (its session `{id}`)"),
            None => writeln!(out, "- agent: {agent}"),
        };
    }
    let _ = writeln!(out, "- steps: {}", export.steps.len());
    if let Some(line) = spent_text(export.usage, export.cost) {
        let _ = writeln!(out, "- tokens: {line}");
    }
    for step in &export.steps {
        let s = &step.summary;
        let _ = writeln!(out, "\n## Step {} · {} · {}\n", s.step, s.kind, s.subject);
        let _ = write!(out, "`{}` · {}", s.commit.to_hex_with_len(12), format_time(s.time));
        let _ = match spent_text(step.usage, step.cost) {
            Some(line) => writeln!(out, " · tokens: {line}\n"),
            None => writeln!(out, "\n"),
        };
        for message in &step.messages {
            write_message(&mut out, message);
        }
        if !step.diff.is_empty() {
            let _ = writeln!(out, "<details><summary>Diff</summary>\n");
            let diff = truncate_middle(&step.diff, MAX_DIFF_BYTES);
            let _ = writeln!(out, "{}\n\n</details>", fenced("diff", &diff));
        }
    }
    out
}

fn write_message(out: &mut String, message: &Value) {
    match Message::from_json(message) {
        Ok(Message::User { text }) => {
            let _ = writeln!(out, "**User**\n\n{}\n", quoted(&text));
        }
        Ok(Message::Assistant { text, tool_calls }) => {
            let reasoning = crate::transcript::readable_reasoning(message);
            if !reasoning.is_empty() {
                let _ = writeln!(out, "**Reasoning**\n\n{}\n", quoted(&reasoning));
            }
            if !text.is_empty() {
                let _ = writeln!(out, "**Assistant**\n\n{text}\n");
            }
            for call in tool_calls {
                let arguments = match &call.arguments {
                    ToolArguments::Json(value) => {
                        serde_json::to_string_pretty(value).unwrap_or_default()
                    }
                    ToolArguments::Invalid { raw, error } => format!("{raw}\n(invalid: {error})"),
                };
                let _ = writeln!(
                    out,
                    "**Tool call** `{}` (`{}`)\n\n{}\n",
                    call.name,
                    call.id,
                    fenced("json", &arguments)
                );
            }
        }
        Ok(Message::ToolResult { call_id, content, is_error }) => {
            let label = if is_error { "Tool error" } else { "Tool result" };
            let content = truncate_middle(&content, MAX_RESULT_BYTES);
            let _ = writeln!(out, "**{label}** (`{call_id}`)\n\n{}\n", fenced("", &content));
        }
        Err(_) => {
            let raw = serde_json::to_string_pretty(message).unwrap_or_default();
            let _ = writeln!(out, "**Message**\n\n{}\n", fenced("json", &raw));
        }
    }
}

/// `text` as a Markdown block quote.
fn quoted(text: &str) -> String {
    text.lines().map(|line| format!("> {line}")).collect::<Vec<_>>().join("\n")
}

/// `text` in a code fence longer than any run of backticks inside it, so no content can
/// close the fence early.
fn fenced(language: &str, text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{language}\n{}\n{fence}", text.trim_end_matches('\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_outlasts_the_backticks_it_holds() {
        assert_eq!(fenced("", "plain"), "```\nplain\n```");
        assert_eq!(fenced("md", "a ``` b"), "````md\na ``` b\n````");
        assert_eq!(fenced("", "`````"), "``````\n`````\n``````");
    }

    #[test]
    fn quotes_every_line() {
        assert_eq!(quoted("fix it\n\nplease"), "> fix it\n> \n> please");
    }
}
