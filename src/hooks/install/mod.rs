//! The hook configuration cairn recommends for each agent, and the edits that add it to
//! the agent's own settings file, take exactly that out again, and find it there. The
//! README's per-agent blocks are [`snippet`]s, so documentation and installer agree (a
//! test checks it).
//!
//! Edits keep what the user wrote: other hooks, other settings, key order, comments (in
//! Codex's TOML) and indentation. An event that already runs `cairn hook <agent>` (with
//! any path to cairn or extra flags) is left as it is, so installing twice changes
//! nothing. A file whose hooks are not in the shape the agent reads is refused, not
//! rewritten.

mod codex;
mod json;

use std::collections::BTreeSet;
use std::path::Path;

use super::AgentKind;

/// One hook of the recommended configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    pub event: &'static str,
    /// Which tools it fires for (`*`: all), for tool events.
    pub matcher: Option<&'static str>,
    /// Gemini CLI names its hooks.
    pub name: Option<&'static str>,
}

const fn hook(event: &'static str) -> Hook {
    Hook { event, matcher: None, name: None }
}

const fn tool_hook(event: &'static str) -> Hook {
    Hook { event, matcher: Some("*"), name: None }
}

const fn named(hook: Hook, name: &'static str) -> Hook {
    Hook { name: Some(name), ..hook }
}

const CLAUDE_CODE: [Hook; 5] = [
    hook("UserPromptSubmit"),
    tool_hook("PostToolUse"),
    tool_hook("PostToolUseFailure"),
    hook("Stop"),
    hook("PreCompact"),
];

const CODEX: [Hook; 3] = [hook("UserPromptSubmit"), tool_hook("PostToolUse"), hook("Stop")];

const GEMINI: [Hook; 4] = [
    named(hook("BeforeAgent"), "cairn-prompt"),
    named(tool_hook("AfterTool"), "cairn-tool"),
    named(hook("AfterAgent"), "cairn-turn"),
    named(hook("PreCompress"), "cairn-compress"),
];

/// The hooks cairn recommends for `agent`.
pub fn recommended(agent: AgentKind) -> &'static [Hook] {
    match agent {
        AgentKind::ClaudeCode => &CLAUDE_CODE,
        AgentKind::Codex => &CODEX,
        AgentKind::Gemini => &GEMINI,
    }
}

/// The command each hook runs.
pub fn command(agent: AgentKind) -> String {
    format!("cairn hook {}", agent.name())
}

/// What an edit did: the file's new text and the events it added or removed (none: the
/// text is unchanged in meaning and need not be written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub text: String,
    pub events: Vec<&'static str>,
}

/// The hooks in a settings file that run `cairn hook <agent>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Each one's event, matcher group and place in the group.
    pub handlers: Vec<(String, usize, usize)>,
}

impl Found {
    fn add(&mut self, event: &str, group: usize, index: usize) {
        self.handlers.push((event.to_string(), group, index));
    }

    pub fn has(&self, event: &str) -> bool {
        self.handlers.iter().any(|(e, _, _)| e == event)
    }

    /// The recommended events of `agent` that no cairn hook covers.
    pub fn missing(&self, agent: AgentKind) -> Vec<&'static str> {
        recommended(agent).iter().map(|hook| hook.event).filter(|e| !self.has(e)).collect()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InstallError {
    #[error("it does not parse: {reason}")]
    Parse { reason: String },
    #[error("its `{path}` is not in the shape the agent reads")]
    Shape { path: String },
    #[error("cannot write it back: {reason}")]
    Write { reason: String },
}

/// Whether `command` runs `cairn hook <agent>`: the program named `cairn` (any path),
/// then `hook` and the agent's name.
fn is_cairn_command(command: &str, agent_name: &str) -> bool {
    let mut words = command.split_whitespace();
    let program = words.next().unwrap_or("");
    let is_cairn = Path::new(program).file_name().is_some_and(|name| name == "cairn");
    is_cairn && words.next() == Some("hook") && words.next() == Some(agent_name)
}

/// `text` (the settings file, `None` when there is none) with the recommended hooks
/// that are missing added.
pub fn install(agent: AgentKind, text: Option<&str>) -> Result<Change, InstallError> {
    let hooks = recommended(agent);
    let present = match text {
        Some(text) => find(agent, text)?,
        None => Found::default(),
    };
    match agent {
        AgentKind::Codex => codex::install(text, hooks, &present, &command(agent)),
        _ => json::install(text, hooks, &present, &command(agent)),
    }
}

/// `text` without the hooks [`install`] adds (handlers running exactly its command, and
/// the groups and events they leave empty).
pub fn uninstall(agent: AgentKind, text: &str) -> Result<Change, InstallError> {
    let hooks = recommended(agent);
    match agent {
        AgentKind::Codex => codex::uninstall(text, hooks, &command(agent)),
        _ => json::uninstall(text, hooks, &command(agent)),
    }
}

/// The hooks of `text` that run `cairn hook <agent>`.
pub fn find(agent: AgentKind, text: &str) -> Result<Found, InstallError> {
    match agent {
        AgentKind::Codex => codex::find(text, agent.name()),
        _ => json::find(text, agent.name()),
    }
}

/// The configuration to add by hand, as the README shows it.
pub fn snippet(agent: AgentKind) -> String {
    match agent {
        AgentKind::Codex => codex::snippet(recommended(agent), &command(agent)),
        _ => json_snippet(agent),
    }
}

/// The JSON settings with one line per event, more readable than the file cairn writes.
fn json_snippet(agent: AgentKind) -> String {
    let command = command(agent);
    let lines: Vec<String> = recommended(agent)
        .iter()
        .map(|hook| {
            let mut handler = Vec::new();
            if let Some(name) = hook.name {
                handler.push(format!("\"name\": \"{name}\""));
            }
            handler.push("\"type\": \"command\"".into());
            handler.push(format!("\"command\": \"{command}\""));
            let matcher = hook
                .matcher
                .map(|matcher| format!("\"matcher\": \"{matcher}\", "))
                .unwrap_or_default();
            format!(
                "    \"{}\": [{{ {matcher}\"hooks\": [{{ {} }}] }}]",
                hook.event,
                handler.join(", ")
            )
        })
        .collect();
    format!("{{\n  \"hooks\": {{\n{}\n  }}\n}}\n", lines.join(",\n"))
}

/// The hooks the user reviewed in Codex, from the user's `config.toml` (see
/// [`codex_review_key`]).
pub fn codex_reviewed(user_config: &str) -> BTreeSet<String> {
    codex::reviewed(user_config)
}

/// The key under which Codex records the review of the handler at (`event`, `group`,
/// `index`) of the config file `source`.
pub fn codex_review_key(source: &Path, event: &str, group: usize, index: usize) -> String {
    format!("{}:{}:{group}:{index}", source.display(), snake_case(event))
}

fn snake_case(event: &str) -> String {
    let mut out = String::new();
    for (i, c) in event.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Whether Gemini CLI trusts the folder `root`, by its `trustedFolders.json` (a map from
/// path to `TRUST_FOLDER`, `TRUST_PARENT` or `DO_NOT_TRUST`): a folder is trusted inside
/// a trusted folder or the parent of a `TRUST_PARENT` one, unless it is itself marked
/// `DO_NOT_TRUST`. `None` when the file does not say (unreadable, or no rule applies).
pub fn gemini_trusts(trusted_folders: &str, root: &Path) -> Option<bool> {
    let rules: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(trusted_folders).ok()?;
    let mut trusted = None;
    for (path, level) in &rules {
        let path = Path::new(path);
        match level.as_str() {
            Some("DO_NOT_TRUST") if path == root => return Some(false),
            Some("TRUST_FOLDER") if root.starts_with(path) => trusted = Some(true),
            Some("TRUST_PARENT")
                if path.parent().is_some_and(|parent| root.starts_with(parent)) =>
            {
                trusted = Some(true);
            }
            _ => {}
        }
    }
    trusted
}

#[cfg(test)]
mod tests;
