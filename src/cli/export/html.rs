//! The review page: one self-contained HTML file presenting a [`Review`] the way a pull
//! request is reviewed — totals, a timeline with the archived branches as forks, and each
//! step's prompts, model text, tool calls and diff.
//!
//! The session may be someone else's, so every byte of it is hostile: all of it goes
//! through [`text`] and ends up as text content (never in an attribute: ids, classes and
//! links are made of the page's own words and numbers), and characters that
//! render invisibly or reorder text (controls, bidirectional overrides: "Trojan Source")
//! are shown as visible codes. A Content-Security-Policy forbids every network load and
//! runs only the page's own style and script, which carry a fresh random nonce. The page
//! uses no `<pre>` or `<textarea>` (whose end tags content could try to forge).

mod diff;

use std::fmt::Write as _;

use serde_json::Value;

use crate::agent::tools::output::truncate_middle;
use crate::checkpoint::{StepKind, StepSummary};
use crate::cli::usage::{Prices, Spent};
use crate::history::export::{Fork, ForkParent, Review, ReviewStep};
use crate::transcript::{Message, ToolArguments, ToolCall};
use diff::file_diff;

const STYLE: &str = include_str!("review.css");
const SCRIPT: &str = include_str!("review.js");
/// A tool result's first lines, shown before "show all".
const PREVIEW_LINES: usize = 12;
const PREVIEW_BYTES: usize = 1_500;
/// Tool results and arguments longer than this keep their head and tail.
const MAX_RESULT_BYTES: usize = 64_000;
/// Model and prompt text longer than this keeps its head and tail.
const MAX_TEXT_BYTES: usize = 200_000;

/// The whole page; token costs are estimated with `prices`.
pub fn page(review: &Review, prices: &Prices) -> String {
    let nonce = format!("{:032x}", fastrand::u128(..));
    let title = &review.session.title;
    let mut out = String::with_capacity(64 * 1024);
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; img-src 'none'; \
         font-src 'none'; connect-src 'none'; form-action 'none'; base-uri 'none'\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>cairn review: {}</title>\n<style nonce=\"{nonce}\">\n{STYLE}</style>\n</head>\n<body>",
        text(title)
    );
    header(&mut out, review);
    summary(&mut out, review, prices);
    timeline(&mut out, review, prices);
    out.push_str("<main>\n<div class=\"toolbar\"><button type=\"button\" id=\"expand-all\">Expand all</button> <button type=\"button\" id=\"collapse-all\">Collapse all</button></div>\n");
    line_of_steps(&mut out, review, prices, "main", &review.steps, ForkParent::Main);
    for (reference, why) in &review.unreadable {
        let _ = writeln!(
            out,
            "<p class=\"unreadable\">The archived branch <code>{}</code> could not be read: {}</p>",
            text(reference),
            text(why)
        );
    }
    out.push_str("</main>\n");
    let _ = writeln!(
        out,
        "<footer>Made by cairn {} from <code>refs/cairn/sessions/{}</code>. Everything on this page was read from the session's recorded history and is shown as text.</footer>\n\
         <script nonce=\"{nonce}\">\n{SCRIPT}</script>\n</body>\n</html>",
        env!("CARGO_PKG_VERSION"),
        text(&review.session.id)
    );
    out
}

fn header(out: &mut String, review: &Review) {
    let info = &review.session;
    let _ = write!(
        out,
        "<header>\n<h1>{}</h1>\n<p class=\"meta\">Session <code>{}</code> · created {}",
        text(&info.title),
        text(&info.id),
        text(&info.created)
    );
    if let Some(base) = &info.base {
        let _ = write!(out, " · base <code>{}</code>", text(short(base)));
    }
    if let Some(agent) = &info.agent {
        let _ = write!(out, " · recorded from <strong>{}</strong>", text(agent));
    }
    out.push_str("</p>\n</header>\n");
}

fn summary(out: &mut String, review: &Review, prices: &Prices) {
    let totals = &review.totals;
    let archived: usize = review.forks.iter().map(|fork| fork.steps.len()).sum();
    let duration = match (totals.first_time, totals.last_time) {
        (Some(first), Some(last)) => duration(last - first),
        _ => "-".into(),
    };
    let models = if totals.models.is_empty() {
        "-".to_string()
    } else {
        totals.models.iter().map(|m| text(m)).collect::<Vec<_>>().join(", ")
    };
    out.push_str("<section class=\"summary\">\n");
    let mut card = |label: &str, value: String, note: String| {
        let _ = writeln!(
            out,
            "<div class=\"card\"><div class=\"label\">{label}</div><div class=\"value\">{value}</div><div class=\"note\">{note}</div></div>"
        );
    };
    card(
        "Steps",
        review.steps.len().to_string(),
        match archived {
            0 => "on this line".into(),
            n => format!(
                "+{n} on {} archived branch{}",
                review.forks.len(),
                if review.forks.len() == 1 { "" } else { "es" }
            ),
        },
    );
    card("Files changed", totals.files.len().to_string(), "base → last step".into());
    card(
        "Lines",
        format!(
            "<span class=\"add\">+{}</span> <span class=\"del\">−{}</span>",
            totals.added, totals.removed
        ),
        "added / removed".into(),
    );
    card("Duration", duration, "first step → last".into());
    card("Models", models, String::new());
    // Every step's, the archived branches' too: their tokens were spent all the same.
    let spent = review
        .steps
        .iter()
        .chain(review.forks.iter().flat_map(|fork| &fork.steps))
        .fold(Spent::default(), |total, step| total + spent(step, prices));
    let (tokens, note) = match spent.text() {
        Some(line) => (text(&line), "all steps, archived branches too".into()),
        None => ("-".into(), "no usage reported".into()),
    };
    card("Tokens", tokens, note);
    out.push_str("</section>\n");
    if !totals.files.is_empty() {
        out.push_str("<section class=\"files\">\n<h2>Files changed</h2>\n<table>\n");
        for (path, added, removed) in &totals.files {
            let _ = writeln!(
                out,
                "<tr><td class=\"path\">{}</td><td class=\"add\">+{added}</td><td class=\"del\">−{removed}</td></tr>",
                text(path)
            );
        }
        out.push_str("</table>\n</section>\n");
    }
}

fn timeline(out: &mut String, review: &Review, prices: &Prices) {
    out.push_str("<nav class=\"timeline\">\n<h2>Timeline</h2>\n");
    timeline_line(out, review, prices, "main", &review.steps, ForkParent::Main);
    out.push_str("</nav>\n");
}

/// One line of the timeline, with the forks that leave it after each step.
fn timeline_line(
    out: &mut String,
    review: &Review,
    prices: &Prices,
    line: &str,
    steps: &[ReviewStep],
    parent: ForkParent,
) {
    out.push_str("<ol>\n");
    timeline_forks(out, review, prices, parent, 0);
    for step in steps {
        let s = &step.summary;
        let _ = write!(
            out,
            "<li class=\"{}\"><a href=\"#{}\"><span class=\"num\">{}</span> {} <span class=\"subject\">{}</span></a> <span class=\"when\">{}</span>",
            kind_class(s.kind),
            anchor(line, s.step),
            s.step,
            badge(s.kind),
            text(&s.subject),
            time(s.time),
        );
        if let Some(model) = model_of(s) {
            let _ = write!(out, " <span class=\"model\">{}</span>", text(model));
        }
        if let Some(line) = spent(step, prices).text() {
            let _ = write!(out, " <span class=\"tokens\">{}</span>", text(&line));
        }
        out.push_str("</li>\n");
        timeline_forks(out, review, prices, parent, s.step);
    }
    out.push_str("</ol>\n");
}

fn timeline_forks(
    out: &mut String,
    review: &Review,
    prices: &Prices,
    parent: ForkParent,
    after_step: u64,
) {
    for (index, fork) in forks_at(review, parent, after_step) {
        let _ = write!(
            out,
            "<li class=\"fork\"><a href=\"#fork-{index}\">↪ archived branch</a> <span class=\"when\">{}</span>",
            fork.archived_at.map(time).unwrap_or_default()
        );
        let line = format!("fork-{index}");
        timeline_line(out, review, prices, &line, &fork.steps, ForkParent::Fork(index));
        out.push_str("</li>\n");
    }
}

fn forks_at(
    review: &Review,
    parent: ForkParent,
    after_step: u64,
) -> impl Iterator<Item = (usize, &Fork)> {
    review
        .forks
        .iter()
        .enumerate()
        .filter(move |(_, fork)| fork.parent == parent && fork.after_step == after_step)
}

/// The step sections of one line, each followed by the forks that leave after it.
fn line_of_steps(
    out: &mut String,
    review: &Review,
    prices: &Prices,
    line: &str,
    steps: &[ReviewStep],
    parent: ForkParent,
) {
    fork_sections(out, review, prices, parent, 0);
    for step in steps {
        step_section(out, prices, line, step);
        fork_sections(out, review, prices, parent, step.summary.step);
    }
}

fn fork_sections(
    out: &mut String,
    review: &Review,
    prices: &Prices,
    parent: ForkParent,
    after_step: u64,
) {
    for (index, fork) in forks_at(review, parent, after_step) {
        let from = match fork.after_step {
            0 => "from the session's base".to_string(),
            n => format!("after step {n}"),
        };
        let _ = writeln!(
            out,
            "<section class=\"fork\" id=\"fork-{index}\">\n<h2>↪ Archived branch {from}</h2>\n<p class=\"meta\">A rewind moved the session away from these {} step{}; they are kept as <code>{}</code> ({}). <code>cairn resume</code> or <code>cairn rewind</code> can go back to any of them.</p>",
            fork.steps.len(),
            if fork.steps.len() == 1 { "" } else { "s" },
            text(&fork.reference),
            archived(fork),
        );
        let line = format!("fork-{index}");
        line_of_steps(out, review, prices, &line, &fork.steps, ForkParent::Fork(index));
        out.push_str("</section>\n");
    }
}

fn step_section(out: &mut String, prices: &Prices, line: &str, step: &ReviewStep) {
    let s = &step.summary;
    let _ = write!(
        out,
        "<section class=\"step {}\" id=\"{}\">\n<div class=\"step-head\"><span class=\"num\">{}</span> {} <h3>{}</h3><span class=\"when\">{}</span>",
        kind_class(s.kind),
        anchor(line, s.step),
        s.step,
        badge(s.kind),
        text(&s.subject),
        time(s.time),
    );
    if let Some(model) = model_of(s) {
        let _ = write!(out, " <span class=\"model\">{}</span>", text(model));
    }
    if let Some(agent) = &s.agent {
        let _ = write!(out, " <span class=\"model\">via {}</span>", text(agent));
    }
    if let Some(line) = spent(step, prices).text() {
        let _ = write!(out, " <span class=\"tokens\">tokens: {}</span>", text(&line));
    }
    let _ = writeln!(out, " <code class=\"commit\">{}</code></div>", s.commit.to_hex_with_len(12));
    match s.kind {
        StepKind::UserEdits => out.push_str(
            "<p class=\"human-note\">Edits a person made between the agent's steps.</p>\n",
        ),
        StepKind::Rewind => out.push_str(
            "<p class=\"rewind-note\">The agent rewound the workspace to an earlier step.</p>\n",
        ),
        _ => {}
    }
    messages(out, &step.messages);
    if !step.files.is_empty() {
        out.push_str("<div class=\"diff\">\n");
        for file in &step.files {
            file_diff(out, file);
        }
        out.push_str("</div>\n");
    }
    out.push_str("</section>\n");
}

fn messages(out: &mut String, messages: &[Value]) {
    let parsed: Vec<Result<Message, &Value>> =
        messages.iter().map(|value| Message::from_json(value).map_err(|_| value)).collect();
    // Results are shown under the calls they answer.
    let result_of = |id: &str| {
        parsed.iter().find_map(|message| match message {
            Ok(Message::ToolResult { call_id, content, is_error }) if call_id == id => {
                Some((content.as_str(), *is_error))
            }
            _ => None,
        })
    };
    let answered: Vec<&str> = parsed
        .iter()
        .filter_map(|m| match m {
            Ok(Message::Assistant { tool_calls, .. }) => {
                Some(tool_calls.iter().map(|c| c.id.as_str()))
            }
            _ => None,
        })
        .flatten()
        .collect();
    for (message, raw) in parsed.iter().zip(messages) {
        match message {
            Ok(Message::User { text: prompt }) => {
                let _ = writeln!(
                    out,
                    "<div class=\"msg user\"><div class=\"who\">Prompt</div><div class=\"text\">{}</div></div>",
                    text(&truncate_middle(prompt, MAX_TEXT_BYTES))
                );
            }
            Ok(Message::Assistant { text: said, tool_calls }) => {
                let reasoning = crate::transcript::readable_reasoning(raw);
                if !reasoning.is_empty() {
                    let _ = writeln!(
                        out,
                        "<div class=\"msg assistant\"><div class=\"who\">Reasoning</div><div class=\"text\">{}</div></div>",
                        text(&truncate_middle(&reasoning, MAX_TEXT_BYTES))
                    );
                }
                if !said.is_empty() {
                    let _ = writeln!(
                        out,
                        "<div class=\"msg assistant\"><div class=\"who\">Model</div><div class=\"text\">{}</div></div>",
                        text(&truncate_middle(said, MAX_TEXT_BYTES))
                    );
                }
                for call in tool_calls {
                    tool_call(out, call, result_of(&call.id));
                }
            }
            Ok(Message::ToolResult { call_id, content, is_error })
                if !answered.contains(&call_id.as_str()) =>
            {
                let _ = write!(
                    out,
                    "<div class=\"msg tool\"><div class=\"who\">Result of <code>{}</code></div>",
                    text(call_id)
                );
                tool_result(out, content, *is_error);
                out.push_str("</div>\n");
            }
            Ok(Message::ToolResult { .. }) => {}
            Err(raw) => {
                let raw = serde_json::to_string_pretty(raw).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "<div class=\"msg other\"><div class=\"who\">Message</div><div class=\"pre\">{}</div></div>",
                    text(&truncate_middle(&raw, MAX_RESULT_BYTES))
                );
            }
        }
    }
}

fn tool_call(out: &mut String, call: &ToolCall, result: Option<(&str, bool)>) {
    let (arguments, one_line) = match &call.arguments {
        ToolArguments::Json(value) => (
            serde_json::to_string_pretty(value).unwrap_or_default(),
            serde_json::to_string(value).unwrap_or_default(),
        ),
        ToolArguments::Invalid { raw, error } => {
            (format!("{raw}\n(invalid: {error})"), raw.clone())
        }
    };
    let status = match result {
        Some((_, true)) => "<span class=\"status err\">error</span>",
        Some((_, false)) => "<span class=\"status ok\">ok</span>",
        None => "<span class=\"status\">no result</span>",
    };
    // A failed call is worth reading: it starts open.
    let open = if matches!(result, Some((_, true))) { " open" } else { "" };
    let _ = writeln!(
        out,
        "<details class=\"msg call\"{open}><summary><span class=\"tool-name\">{}</span> <code class=\"args\">{}</code> {status}</summary>\n<div class=\"pre arguments\">{}</div>",
        text(&call.name),
        text(&preview_line(&one_line, 120)),
        text(&truncate_middle(&arguments, MAX_RESULT_BYTES)),
    );
    if let Some((content, is_error)) = result {
        tool_result(out, content, is_error);
    }
    out.push_str("</details>\n");
}

/// A result's first lines, and all of it behind "show all" when it is longer.
fn tool_result(out: &mut String, content: &str, is_error: bool) {
    let class = if is_error { "result err" } else { "result" };
    let total = content.lines().count();
    let mut preview: String = content.lines().take(PREVIEW_LINES).collect::<Vec<_>>().join("\n");
    if preview.len() > PREVIEW_BYTES {
        preview = format!("{}…", cut(&preview, PREVIEW_BYTES));
    }
    let _ = writeln!(out, "<div class=\"pre {class}\">{}</div>", text(&preview));
    if preview.len() < content.trim_end().len() {
        let _ = writeln!(
            out,
            "<details class=\"more\"><summary>Show all ({total} lines, {} bytes)</summary><div class=\"pre {class}\">{}</div></details>",
            content.len(),
            text(&truncate_middle(content, MAX_RESULT_BYTES))
        );
    }
}

/// `text` safe as HTML text: markup characters escaped, invisible and reordering
/// characters shown as visible codes.
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if is_hidden(c) => {
                let _ = write!(out, "<span class=\"ctl\">U+{:04X}</span>", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Characters that draw nothing or reorder what follows: C0/C1 controls (but newline
/// and tab), bidirectional embeddings, overrides and isolates, zero-width characters and
/// the byte-order mark.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// The model that did a step; a person's edits carry the session's model in their
/// trailer, but no model made them.
fn model_of(step: &StepSummary) -> Option<&str> {
    match step.kind {
        StepKind::UserEdits => None,
        _ => step.model.as_deref(),
    }
}

fn badge(kind: StepKind) -> String {
    let label = match kind {
        StepKind::UserEdits => "human",
        other => other.as_str(),
    };
    format!("<span class=\"badge {}\">{label}</span>", kind_class(kind))
}

fn kind_class(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Prompt => "kind-prompt",
        StepKind::Model => "kind-model",
        StepKind::Tool => "kind-tool",
        StepKind::Compact => "kind-compact",
        StepKind::Rewind => "kind-rewind",
        StepKind::Manual => "kind-manual",
        StepKind::UserEdits => "kind-human",
    }
}

/// An element id made only of `line` (`main` or `fork-<n>`) and a number.
fn anchor(line: &str, step: u64) -> String {
    format!("{line}-step-{step}")
}

fn archived(fork: &Fork) -> String {
    fork.archived_at.map_or_else(|| "archived".into(), |secs| format!("archived {}", time(secs)))
}

fn time(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| "-".into())
}

fn duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

/// A step's tokens and their estimated cost, shown with [`Spent::text`] as `cairn log`
/// shows them.
fn spent(step: &ReviewStep, prices: &Prices) -> Spent {
    Spent::priced(step.usage, step.summary.model.as_deref(), prices)
}

fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

/// The start of `text` on one line, at most `max` bytes, cut at a character boundary.
fn preview_line(text: &str, max: usize) -> String {
    let flat: String = text.chars().map(|c| if c == '\n' { ' ' } else { c }).collect();
    if flat.len() <= max { flat } else { format!("{}…", cut(&flat, max)) }
}

/// The longest start of `text` of at most `max` bytes.
fn cut(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_markup_and_shows_what_would_hide() {
        assert_eq!(
            text("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(text("a\tb\nc"), "a\tb\nc");
        let codes = text("\u{202E}x\u{0}\u{200B}\u{2066}\u{FEFF}\u{1b}");
        assert_eq!(
            codes,
            [0x202E, 0, 0x200B, 0x2066, 0xFEFF, 0x1B]
                .iter()
                .enumerate()
                .map(|(i, c)| format!(
                    "<span class=\"ctl\">U+{c:04X}</span>{}",
                    if i == 0 { "x" } else { "" }
                ))
                .collect::<String>()
        );
    }
}
