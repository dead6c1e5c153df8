//! The memory tools: `note` (tier 1), `remember` (tiers 3 and 4) and `memory_search`.
//! They write no workspace file, so they need no approval; what they change is recorded
//! with the step (`notes.md`) or as commits on the memory refs.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::tools::ToolOutput;
use crate::llm::ToolDefinition;
use crate::memory::{self, Memory, Origin, Source, Tier};

pub const NOTE: &str = "note";
pub const REMEMBER: &str = "remember";
pub const SEARCH: &str = "memory_search";

/// Cap on tier 1; past it `note` refuses until a compaction folds the notes into tier 2.
pub const NOTES_MAX_BYTES: usize = 8 * 1024;
/// Hits `memory_search` returns.
const SEARCH_LIMIT: usize = 8;

/// Settings the memory layer works with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Cap on the memory injected at session start, in estimated tokens.
    pub inject_tokens: usize,
    /// Compact past this percentage of the context window.
    pub compact_at: u64,
    /// The model's context window in tokens.
    pub context_window: u64,
    /// Summarize and promote at session end.
    pub summarize: bool,
}

/// The memory an agent works with: its session's tiers 1 and 2, and tiers 3 and 4.
pub struct AgentMemory {
    pub memory: Memory,
    pub notes: String,
    /// The notes changed since the last recorded step.
    pub notes_changed: bool,
    pub summary: Option<String>,
    /// The `AGENTS.md` chain, searched by `memory_search`.
    pub instructions: Vec<(PathBuf, String)>,
    pub settings: Settings,
}

impl AgentMemory {
    /// The memory of `store`'s repository, with empty tiers 1 and 2 (a resumed session's
    /// come with [`super::Restored`]).
    pub fn open(
        store: &crate::checkpoint::Store,
        settings: Settings,
        instructions: Vec<(PathBuf, String)>,
    ) -> Result<AgentMemory, memory::Error> {
        Ok(AgentMemory {
            memory: Memory::open(store.writing_repo(), store.redacts_secrets())?,
            notes: String::new(),
            notes_changed: false,
            summary: None,
            instructions,
            settings,
        })
    }
}

pub fn is_memory_tool(name: &str) -> bool {
    matches!(name, NOTE | REMEMBER | SEARCH)
}

/// Whether the call adds a fact to the user tier, which every project's sessions read: it
/// needs approval like a write, since it outlives the session and the repository.
pub fn writes_user_tier(name: &str, args: &Value) -> bool {
    name == REMEMBER && args.get("tier").and_then(Value::as_str).map(str::trim) == Some("user")
}

/// The fact a `remember` call would add.
pub fn fact_of(args: &Value) -> &str {
    args.get("fact").and_then(Value::as_str).map_or("", str::trim)
}

pub fn definitions() -> Vec<ToolDefinition> {
    vec![
        ToolDefinition {
            name: NOTE.into(),
            description: "Append to your working notes for this session (.cairn/memory/notes.md). \
                They are shown to you on every turn; use them for plans, findings and things to check. \
                They are folded into the session summary when the conversation is compacted."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {"text": {"type": "string", "description": "What to note"}},
                "required": ["text"]
            }),
        },
        ToolDefinition {
            name: REMEMBER.into(),
            description: "Store a durable fact for future sessions: project memory (default) or, with \
                tier \"user\", a preference that holds across all projects. Only remember what the user \
                stated or what you verified (a command that succeeded), never guesses. One short \
                sentence with exact literals."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "fact": {"type": "string"},
                    "tier": {"type": "string", "enum": ["project", "user"]},
                    "source": {"type": "string", "enum": ["user", "verified", "observed"], "description": "user: the user said it; verified: a check succeeded; observed: seen in output (default)"}
                },
                "required": ["fact"]
            }),
        },
        ToolDefinition {
            name: SEARCH.into(),
            description: "Search remembered facts (project and user memory), this session's summary and \
                the AGENTS.md instructions. Returns ranked snippets with their file and line."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {"query": {"type": "string", "description": "Keywords"}},
                "required": ["query"]
            }),
        },
    ]
}

/// Runs a memory tool call; `origin` is the session and the step being recorded.
pub fn run(name: &str, args: &Value, memory: &mut AgentMemory, origin: &Origin) -> ToolOutput {
    let text = |key: &str| args.get(key).and_then(Value::as_str).map(str::trim).unwrap_or("");
    let error = |content: String| ToolOutput { content, is_error: true, ..ToolOutput::default() };
    let ok = |content: String| ToolOutput { content, ..ToolOutput::default() };
    match name {
        NOTE => {
            let note = text("text");
            if note.is_empty() {
                return error("`note` needs `text`".into());
            }
            let added = format!("- {}\n", note.replace('\n', "\n  "));
            if memory.notes.len() + added.len() > NOTES_MAX_BYTES {
                return error(format!(
                    "the working notes are full ({} of {NOTES_MAX_BYTES} bytes); keep notes short, or `remember` what must last",
                    memory.notes.len()
                ));
            }
            memory.notes.push_str(&added);
            memory.notes_changed = true;
            ok(format!("Noted ({} of {NOTES_MAX_BYTES} bytes used).", memory.notes.len()))
        }
        REMEMBER => {
            let fact = text("fact");
            let tier = match text("tier") {
                "" | "project" => Tier::Project,
                "user" => Tier::User,
                other => return error(format!("`tier` is \"project\" or \"user\", not {other:?}")),
            };
            let source = match text("source") {
                "" => Source::Observed,
                other => match Source::parse(other) {
                    Some(source) => source,
                    None => {
                        return error(format!(
                            "`source` is \"user\", \"verified\" or \"observed\", not {other:?}"
                        ));
                    }
                },
            };
            match memory.memory.remember(tier, fact, source, origin) {
                Ok(done) => {
                    let store = memory
                        .memory
                        .tier(tier)
                        .map(|s| s.location().to_string())
                        .unwrap_or_default();
                    let mut content =
                        format!("Remembered ({}) as {store}:facts/{}.md", done.outcome, done.slug);
                    if done.redacted > 0 {
                        content.push_str(" (secret-looking text was replaced with a marker)");
                    }
                    ok(content)
                }
                Err(err) => error(format!("could not remember that: {err}")),
            }
        }
        SEARCH => {
            let query = text("query");
            if query.is_empty() {
                return error("`memory_search` needs `query`".into());
            }
            match memory.memory.search(
                query,
                SEARCH_LIMIT,
                memory.summary.as_deref(),
                &memory.instructions,
            ) {
                Ok(hits) if hits.is_empty() => ok(format!("No memory matches {query:?}.")),
                Ok(hits) => ok(hits
                    .iter()
                    .map(memory::search::Hit::display_line)
                    .collect::<Vec<_>>()
                    .join("\n")),
                Err(err) => error(format!("memory search failed: {err}")),
            }
        }
        _ => error(format!("`{name}` is not a memory tool")),
    }
}

/// The working notes as the text cairn adds after the conversation of each model call. Not
/// in the system prompt: the notes change within a session, and the system prompt must not,
/// or every change would miss the prompt cache for the whole conversation.
pub fn notes_message(notes: &str) -> Option<String> {
    (!notes.trim().is_empty()).then(|| {
        format!(
            "# Working notes (.cairn/memory/notes.md, written by you with `note`)\n\
             (cairn adds these to every request; the user did not write them.)\n{notes}"
        )
    })
}

/// Whether a context of `tokens` has passed the compaction threshold.
pub fn over_threshold(tokens: u64, settings: &Settings) -> bool {
    tokens * 100 > settings.context_window * settings.compact_at
}

/// The `memory` module's estimate, for whole messages.
pub fn estimate(text: &str) -> u64 {
    memory::estimate_tokens(text) as u64
}
