//! Turning one [`HookEvent`] into steps of the agent session's cairn session.
//!
//! Steps look like cairn's own: the prompt is a `user` message, a tool call an `assistant`
//! message with one tool call followed by its `tool_result`, a turn's last answer an
//! `assistant` message, so `cairn export` and `cairn resume` read them as they read
//! cairn's. `step.json` adds `agent` and `hook` (the event, the agent's session and turn
//! ids, its transcript's path), and the tool call and result truncated as the agent does.

use std::path::{Component, Path, PathBuf};

use serde_json::{Value, json};

use crate::agent::tools::output::truncate_middle;
use crate::checkpoint::{self, Changes, RecordedStep, Session, StepKind, StepRecord, Store};
use crate::text::one_line;
use crate::transcript::{Message, ToolArguments, ToolCall};

use super::compression::Pending;
use super::sessions::{Entry, LockError};
use super::{Action, AgentKind, Effect, HookEvent, ToolUse, agent_transcript};

/// How much of each string of a tool's input and of its result the conversation keeps
/// (a `Write` carries the whole file, which the step's snapshot holds anyway).
const MESSAGE_BYTES: usize = 16 * 1024;
/// How much `step.json` keeps, as the agent's own steps do.
const PREVIEW_BYTES: usize = 2000;
/// How much of a turn's answer goes into the commit body.
const BODY_BYTES: usize = 4000;
/// How far back a turn's end looks for the turn's prompt.
const MAX_TURN_STEPS: usize = 1000;
/// Attempts when another process moves the session between reading and writing it.
const ATTEMPTS: usize = 5;

/// How to record.
#[derive(Debug, Clone, Copy, Default)]
pub struct HookOptions {
    /// Store the agent's transcript with each turn's end.
    pub with_transcript: bool,
}

/// What a hook call recorded.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub session: String,
    /// Whether this call started the session.
    pub new_session: bool,
    /// The steps, in order (none for an event cairn does not record).
    pub steps: Vec<RecordedStep>,
    /// What went wrong without stopping the recording (a transcript that was not stored).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::Error),
    #[error("another cairn hook of this agent session held {} for too long; if no hook is running, delete that file", .0.display())]
    Busy(PathBuf),
    #[error("cannot lock {}: {source}", .path.display())]
    Lock { path: PathBuf, source: std::io::Error },
}

impl From<LockError> for HookError {
    fn from(err: LockError) -> Self {
        match err {
            LockError::Busy(path) => HookError::Busy(path),
            LockError::Io(path, source) => HookError::Lock { path, source },
        }
    }
}

/// Records `event` in the cairn session of its agent session (starting one for a new agent
/// session). Events cairn does not record are not passed here.
pub fn record(
    store: &Store,
    event: &HookEvent,
    options: &HookOptions,
) -> Result<Recorded, HookError> {
    let entry = Entry::new(store, event.agent, &event.session_id);
    let _lock = entry.lock()?;
    let (mut session, new_session) = match entry.lookup(store, event.agent, &event.session_id)? {
        Some(session) => (session, false),
        None => (start(store, event)?, true),
    };
    let mut warnings = Vec::new();
    let mut steps = Vec::new();
    // A Gemini `PreCompress` kept by the call before is recorded now if it compressed.
    if let Some(pending) = entry.take_pending()
        && pending.happened()
    {
        let record = confirmed_compact(event, &pending);
        steps.push(with_retries(store, &mut session, |session| {
            store.record_step(session, record.clone())
        })?);
    }
    if event.agent == AgentKind::Gemini
        && let Action::Compact { trigger } = &event.action
    {
        let pending = Pending::now(trigger.clone(), event.transcript_path.clone());
        if let Err(err) = entry.save_pending(&pending) {
            warnings.push(format!(
                "cannot keep Gemini CLI's PreCompress until the next hook call ({err}); a compression it starts is not recorded"
            ));
        }
    }
    let records = plan(store, &session, event, options, &mut warnings)?;
    if matches!(event.action, Action::Prompt { .. }) {
        // The user's own edits since the agent's last step stay theirs.
        if let Some(step) = with_retries(store, &mut session, |session| {
            store.record_user_edits(session, Changes::Scan)
        })? {
            steps.push(step);
        }
    }
    for record in records {
        steps.push(with_retries(store, &mut session, |session| {
            store.record_step(session, record.clone())
        })?);
    }
    if !steps.is_empty() {
        entry.remember(&session.info.id);
        store.set_current_session(&session.info.id)?;
    }
    Ok(Recorded { session: session.info.id, new_session, steps, warnings })
}

/// Runs `attempt`, reopening the session and trying again when another process (a user's
/// `cairn checkpoint` or `rewind`) moved it in between.
fn with_retries<T>(
    store: &Store,
    session: &mut Session,
    mut attempt: impl FnMut(&mut Session) -> checkpoint::Result<T>,
) -> checkpoint::Result<T> {
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt(session) {
            Err(checkpoint::Error::ConcurrentUpdate { .. }) if tries < ATTEMPTS => {
                *session = store.open_session(&session.info.id)?;
            }
            other => return other,
        }
    }
}

/// A new session for the event's agent session; nothing is written until its first step.
fn start(store: &Store, event: &HookEvent) -> checkpoint::Result<Session> {
    let title = match &event.action {
        Action::Prompt { text } | Action::TurnEnd { prompt: Some(text), .. } => text.clone(),
        _ => format!("{} session {}", event.agent.title(), event.session_id),
    };
    let mut session =
        store.start_session(&title, event.model.clone(), Some(event.agent.name().into()))?;
    session.info.agent_session = Some(event.session_id.clone());
    Ok(session)
}

/// The steps `event` becomes, ready to record.
fn plan(
    store: &Store,
    session: &Session,
    event: &HookEvent,
    options: &HookOptions,
    warnings: &mut Vec<String>,
) -> checkpoint::Result<Vec<StepRecord>> {
    let mut records = match &event.action {
        Action::Prompt { text } => vec![prompt_step(text)],
        Action::Tool(tool) => vec![tool_step(store.root(), event, tool)],
        Action::TurnEnd { prompt, reply } => {
            if let Some(turn) = &event.turn_id
                && turn_ended(store, session, turn)?
            {
                // Codex's `notify` and its `Stop` hook both end each turn, with one turn id.
                return Ok(Vec::new());
            }
            let mut out = Vec::new();
            if let Some(prompt) = prompt
                && !turn_has_prompt(store, session)?
            {
                let mut step = prompt_step(prompt);
                if session.tip.is_none() {
                    // The turn is over: its prompt stands before its work, on the base.
                    step.changes = Changes::Tree(base_tree(store, session)?);
                }
                out.push(step);
            }
            let mut model = model_step(reply.as_deref().unwrap_or_default());
            if options.with_transcript {
                match &event.transcript_path {
                    Some(path) => match agent_transcript::load(path) {
                        Ok(transcript) => model.state_files.extend(transcript.state_files()),
                        Err(err) => {
                            warnings.push(format!("{err}; the step is recorded without it"))
                        }
                    },
                    None => warnings.push(format!(
                        "{}'s {} payload names no transcript; the step is recorded without one",
                        event.agent.title(),
                        event.event_name
                    )),
                }
            }
            out.push(model);
            out
        }
        // Gemini fires PreCompress before every model request: kept, not recorded (above).
        Action::Compact { .. } if event.agent == AgentKind::Gemini => Vec::new(),
        Action::Compact { trigger } => vec![compact_step(trigger.as_deref())],
        Action::Ignored => Vec::new(),
    };
    for record in &mut records {
        record.agent = Some(event.agent.name().to_string());
        record.model = event.model.clone();
        record.details.insert("hook".into(), hook_details(event));
    }
    Ok(records)
}

/// The workspace tree of a new session's base commit (the empty tree on an unborn branch).
fn base_tree(store: &Store, session: &Session) -> checkpoint::Result<gix::ObjectId> {
    let base =
        session.info.base.as_deref().and_then(|b| gix::ObjectId::from_hex(b.as_bytes()).ok());
    match base {
        Some(commit) => store.step_tree(commit),
        None => Ok(gix::ObjectId::empty_tree(gix::hash::Kind::Sha1)),
    }
}

/// Whether the current turn's prompt is already recorded: a `prompt` step since the last
/// `model` step (a turn's end), as when both a prompt hook and a turn-end payload that
/// repeats the prompt are configured.
fn turn_has_prompt(store: &Store, session: &Session) -> checkpoint::Result<bool> {
    let mut current = session.tip;
    for _ in 0..MAX_TURN_STEPS {
        let Some(commit) = current else { return Ok(false) };
        match store.step_summary(commit)?.kind {
            StepKind::Prompt => return Ok(true),
            StepKind::Model => return Ok(false),
            _ => current = store.parent_step(commit)?,
        }
    }
    Ok(false)
}

/// Whether turn `turn_id` already has its `model` step: the last turn's end recorded is
/// that turn's.
fn turn_ended(store: &Store, session: &Session, turn_id: &str) -> checkpoint::Result<bool> {
    let mut current = session.tip;
    for _ in 0..MAX_TURN_STEPS {
        let Some(commit) = current else { return Ok(false) };
        if store.step_summary(commit)?.kind == StepKind::Model {
            let details = store.step_details(commit)?;
            let recorded = details.as_ref().and_then(|d| d.pointer("/hook/turn_id"));
            return Ok(recorded.and_then(Value::as_str) == Some(turn_id));
        }
        current = store.parent_step(commit)?;
    }
    Ok(false)
}

fn prompt_step(text: &str) -> StepRecord {
    let mut record = StepRecord::new(
        StepKind::Prompt,
        format!("prompt: {}", one_line(text)),
        Changes::Unchanged,
    );
    record.messages = vec![Message::User { text: text.to_string() }.into_json()];
    record
}

/// A turn's end: whatever the workspace holds now, and the agent's last answer.
fn model_step(reply: &str) -> StepRecord {
    let subject = if reply.trim().is_empty() {
        "model: turn done".to_string()
    } else {
        format!("model: {}", one_line(reply))
    };
    let mut record = StepRecord::new(StepKind::Model, subject, Changes::Scan);
    record.body = truncate_middle(reply, BODY_BYTES);
    if !reply.trim().is_empty() {
        let answer = Message::Assistant { text: reply.to_string(), tool_calls: Vec::new() };
        record.messages = vec![answer.into_json()];
    }
    record
}

fn compact_step(trigger: Option<&str>) -> StepRecord {
    let subject = match trigger {
        Some(trigger) => format!("compact ({trigger})"),
        None => "compact".to_string(),
    };
    let mut record = StepRecord::new(StepKind::Compact, subject, Changes::Unchanged);
    if let Some(trigger) = trigger {
        record.details.insert("trigger".into(), trigger.into());
    }
    record
}

/// The `compact` step of a Gemini `PreCompress` the transcript showed was a compression,
/// recorded at the call (`event`) that found it.
fn confirmed_compact(event: &HookEvent, pending: &Pending) -> StepRecord {
    let mut record = compact_step(pending.trigger.as_deref());
    record.agent = Some(event.agent.name().to_string());
    record.model = event.model.clone();
    let mut hook = serde_json::Map::new();
    hook.insert("event".into(), "PreCompress".into());
    hook.insert("agent_session".into(), event.session_id.clone().into());
    if let Some(path) = &pending.transcript {
        hook.insert("transcript_path".into(), path.display().to_string().into());
    }
    hook.insert("confirmed_by".into(), event.event_name.clone().into());
    record.details.insert("hook".into(), hook.into());
    record
}

fn tool_step(root: &Path, event: &HookEvent, tool: &ToolUse) -> StepRecord {
    let cwd = event.cwd.as_deref().unwrap_or(root);
    let changes = match &tool.effect {
        Effect::ReadOnly => Changes::Unchanged,
        Effect::Paths(paths) => paths
            .iter()
            .map(|path| workspace_path(root, cwd, path))
            .collect::<Option<Vec<_>>>()
            .map_or(Changes::Scan, Changes::Paths),
        Effect::Unknown => Changes::Scan,
    };
    let id = tool.id.clone().unwrap_or_else(|| {
        let suffix: String = (0..12).map(|_| fastrand::alphanumeric()).collect();
        format!("{}_{suffix}", event.agent.name())
    });
    let content = response_text(&tool.response);
    let call = ToolCall {
        id: id.clone(),
        name: tool.name.clone(),
        arguments: ToolArguments::Json(truncate_strings(&tool.input, MESSAGE_BYTES)),
    };
    let result = Message::ToolResult {
        call_id: id.clone(),
        content: truncate_middle(&content, MESSAGE_BYTES),
        is_error: tool.is_error,
    };
    let mut record =
        StepRecord::new(StepKind::Tool, tool_subject(root, cwd, tool, &changes), changes);
    record.messages = vec![
        Message::Assistant { text: String::new(), tool_calls: vec![call] }.into_json(),
        result.into_json(),
    ];
    record.details.insert(
        "tool_calls".into(),
        json!([{"id": id, "name": tool.name, "arguments": truncate_strings(&tool.input, PREVIEW_BYTES)}]),
    );
    record.details.insert(
        "tool_results".into(),
        json!([{"id": id, "name": tool.name, "is_error": tool.is_error, "content": truncate_middle(&content, PREVIEW_BYTES)}]),
    );
    record.tools = vec![tool.name.clone()];
    record
}

/// `Edit src/lib.rs`, `Bash: cargo test`, `Grep TODO`, `(failed)` when it did.
fn tool_subject(root: &Path, cwd: &Path, tool: &ToolUse, changes: &Changes) -> String {
    let field = |key: &str| tool.input.get(key).and_then(Value::as_str).filter(|v| !v.is_empty());
    let shown = |path: &Path| -> String {
        workspace_path(root, cwd, path).unwrap_or_else(|| path.to_path_buf()).display().to_string()
    };
    let mut subject = if let Changes::Paths(paths) = changes {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        format!("{} {}", tool.name, names.join(", "))
    } else if let Some(command) = field("command").filter(|_| tool.name != "apply_patch") {
        format!("{}: {}", tool.name, one_line(command))
    } else if let Some(path) =
        ["file_path", "notebook_path", "absolute_path", "path"].into_iter().find_map(field)
    {
        format!("{} {}", tool.name, shown(Path::new(path)))
    } else if let Some(value) =
        ["pattern", "url", "query", "description"].into_iter().find_map(field)
    {
        format!("{} {}", tool.name, one_line(value))
    } else {
        tool.name.clone()
    };
    if tool.is_error {
        subject.push_str(" (failed)");
    }
    subject
}

/// `path` (as the agent named it: absolute, or relative to its `cwd`) as a plain path
/// relative to the workspace root, for the snapshot's fast path; `None` when it is outside
/// the workspace, inside `.git` or `.cairn`, or below a symlinked directory or a nested
/// repository, which a full scan handles correctly.
fn workspace_path(root: &Path, cwd: &Path, path: &Path) -> Option<PathBuf> {
    let absolute = if path.is_absolute() { path.to_path_buf() } else { cwd.join(path) };
    let relative = match absolute.strip_prefix(root) {
        Ok(relative) => relative.to_path_buf(),
        // The agent may name the workspace through another spelling (a symlinked /tmp).
        Err(_) => {
            let root = root.canonicalize().ok()?;
            let parent = absolute.parent()?.canonicalize().ok()?;
            parent.strip_prefix(&root).ok()?.join(absolute.file_name()?)
        }
    };
    let parts: Vec<Component> = relative.components().collect();
    let mut dir = root.to_path_buf();
    for (index, part) in parts.iter().enumerate() {
        let Component::Normal(name) = part else { return None };
        if *name == ".git" || (index == 0 && *name == ".cairn") {
            return None;
        }
        if index + 1 < parts.len() {
            dir.push(name);
            if let Ok(meta) = std::fs::symlink_metadata(&dir)
                && (meta.file_type().is_symlink() || dir.join(".git").exists())
            {
                return None;
            }
        }
    }
    (!parts.is_empty()).then_some(relative)
}

/// A tool's response as text: a string as it is, a command's output, Gemini's
/// `llmContent`, anything else as JSON.
fn response_text(response: &Value) -> String {
    match response {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Object(map) => {
            if let Some(Value::String(text)) = map.get("llmContent") {
                return text.clone();
            }
            let streams: Vec<&str> = ["stdout", "stderr"]
                .into_iter()
                .filter_map(|key| map.get(key).and_then(Value::as_str))
                .filter(|text| !text.is_empty())
                .collect();
            if map.contains_key("stdout") || map.contains_key("stderr") {
                return streams.join("\n");
            }
            serde_json::to_string_pretty(response).unwrap_or_default()
        }
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// `value` with every string longer than `max_bytes` cut in the middle.
fn truncate_strings(value: &Value, max_bytes: usize) -> Value {
    match value {
        Value::String(text) => Value::String(truncate_middle(text, max_bytes)),
        Value::Array(items) => items.iter().map(|item| truncate_strings(item, max_bytes)).collect(),
        Value::Object(map) => map
            .iter()
            .map(|(key, item)| (key.clone(), truncate_strings(item, max_bytes)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        other => other.clone(),
    }
}

/// What `step.json` says about the hook call.
fn hook_details(event: &HookEvent) -> Value {
    let mut hook = serde_json::Map::new();
    hook.insert("event".into(), event.event_name.clone().into());
    hook.insert("agent_session".into(), event.session_id.clone().into());
    if let Some(turn) = &event.turn_id {
        hook.insert("turn_id".into(), turn.clone().into());
    }
    if let Some(path) = &event.transcript_path {
        hook.insert("transcript_path".into(), path.display().to_string().into());
    }
    hook.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_the_workspace_take_the_fast_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join("vendor/lib/.git")).unwrap();
        std::os::unix::fs::symlink("/tmp", root.join("link")).unwrap();
        let at = |p: &str| workspace_path(root, &root.join("src"), Path::new(p));
        assert_eq!(at(&root.join("src/a.rs").display().to_string()), Some("src/a.rs".into()));
        assert_eq!(at("b.rs"), Some("src/b.rs".into()), "relative to the agent's cwd");
        assert_eq!(at("/etc/passwd"), None);
        assert_eq!(at("../../outside"), None);
        assert_eq!(at(&root.join(".git/config").display().to_string()), None);
        assert_eq!(at(&root.join(".cairn/x").display().to_string()), None);
        assert_eq!(at(&root.join("link/x").display().to_string()), None);
        assert_eq!(at(&root.join("vendor/lib/x").display().to_string()), None);
    }

    #[test]
    fn responses_read_as_text() {
        assert_eq!(response_text(&json!("ok")), "ok");
        assert_eq!(
            response_text(&json!({"stdout": "out", "stderr": "err", "interrupted": false})),
            "out\nerr"
        );
        assert_eq!(response_text(&json!({"llmContent": "file", "returnDisplay": "x"})), "file");
        assert_eq!(response_text(&json!({"success": true})), "{\n  \"success\": true\n}");
        let long = json!({"content": "x".repeat(5000), "n": 1});
        let cut = truncate_strings(&long, 100);
        assert!(cut["content"].as_str().unwrap().len() < 200);
        assert_eq!(cut["n"], 1);
    }
}
