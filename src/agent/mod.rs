//! The agent: the loop that talks to a model, runs tools, and records every step.
//!
//! A turn starts from the user's prompt (a `prompt` step), then repeats: flush the user's
//! own edits into a `user-edits` step, call the model, run the tools it asked for, and
//! record the response with its tool calls and results as one step, until the model ends
//! its turn or the step budget runs out. Edit tools name the paths they changed, so their
//! steps take the snapshot fast path; `shell` steps take a full incremental scan.
//!
//! Tools of MCP servers (`<server>__<tool>`, from [`crate::mcp`]) are offered beside the
//! built-in ones and treated like `shell`: they may do anything, so they need the same
//! approval and their steps take a full scan.
//!
//! This file holds the [`Agent`] and what all its parts share (recording a step, the
//! user's edits); a turn is in `turn`, a round of tool calls in `tool_round`, the
//! context's size in `compaction`, the end of a session in `session_end`.

pub mod approval;
mod compaction;
mod conversation;
mod ending;
pub mod events;
pub mod instructions;
pub mod memory_tools;
pub mod prompt;
mod session_end;
mod subject;
pub mod summary;
pub use subject::describe_call;
mod tool_round;
pub mod tools;
mod turn;
pub mod watch;

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::checkpoint::{self, Changes, Session, StepKind, StepRecord, Store};
use crate::llm::{self, Message};
use crate::mcp::McpHub;
use crate::memory::Origin;
use crate::transcript;
pub use memory_tools::{AgentMemory, Settings as MemorySettings};

pub use approval::Policy;
pub use conversation::Restored;
pub use events::Event;

/// The agent's own tool, beside the file and shell tools: back out of a dead end.
const REWIND_TOOL: &str = "rewind";

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnEnd {
    /// The model ended its turn.
    Done,
    /// The step budget (`--max-steps`) ran out first.
    MaxSteps,
    /// The user interrupted; the session stands at its last complete step.
    Cancelled,
    /// The turn stopped before the model finished it; a notice said why.
    Unfinished(Unfinished),
}

/// Why a turn stopped before the model finished it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfinished {
    /// The model declined to answer.
    Refusal,
    /// The response hit the provider's `max_output_tokens`.
    OutputLimit,
    /// The provider's content filter cut the response.
    ContentFilter,
    /// The turn used up `[limits] turn_output_tokens`.
    TurnOutputTokens,
    /// The turn ran past `[limits] turn_seconds`.
    TurnSeconds,
    /// The response held only output cairn left out (each named in a notice).
    Unusable,
}

impl Unfinished {
    /// The `reason` of the `done` event.
    pub fn as_str(self) -> &'static str {
        match self {
            Unfinished::Refusal => "refusal",
            Unfinished::OutputLimit => "output-limit",
            Unfinished::ContentFilter => "content-filter",
            Unfinished::TurnOutputTokens => "turn-output-tokens",
            Unfinished::TurnSeconds => "turn-seconds",
            Unfinished::Unusable => "unusable-response",
        }
    }
}

/// `[limits]`: what one turn may spend before it is stopped; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnLimits {
    /// Output tokens over all of the turn's model calls.
    pub output_tokens: Option<u64>,
    /// Wall time from the prompt on, in seconds.
    pub seconds: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::Error),
    #[error(transparent)]
    Model(#[from] llm::LlmError),
    #[error(transparent)]
    Memory(#[from] crate::memory::Error),
}

/// What an agent needs to start.
pub struct AgentSetup {
    pub store: Store,
    pub session: Session,
    pub client: llm::Client,
    /// The model's name at its provider.
    pub model: String,
    /// `provider/model`, as recorded in commits.
    pub model_label: String,
    /// How hard the model is asked to think; `None` leaves it to the model.
    pub reasoning: Option<llm::Reasoning>,
    pub system: String,
    /// The session's state at its tip (default for a new session).
    pub restored: Restored,
    pub memory: AgentMemory,
    pub policy: Policy,
    pub turn_limits: TurnLimits,
    /// Watch the workspace for the user's edits (else scan before each model call).
    pub watch: bool,
    /// Benchmark-only (`CAIRN_BENCH_NO_SNAPSHOTS=1`, see `benches/agent.rs`): run the same
    /// loop but take no snapshot, record no step and start no watcher, so the benchmark can
    /// tell what checkpointing costs. Not a feature: such a session leaves no history.
    pub bench_no_snapshots: bool,
    /// The session's MCP servers (none: `McpHub::default()`).
    pub mcp: McpHub,
    /// How `shell` commands run.
    pub sandbox: crate::sandbox::Plan,
}

pub struct Agent {
    store: Store,
    session: Session,
    client: llm::Client,
    model: String,
    model_label: String,
    reasoning: Option<llm::Reasoning>,
    system: String,
    /// Every message of the session; the model sees those from `context_from` on.
    history: Vec<Message>,
    context_from: usize,
    /// (history length, tokens) after the last response whose usage the provider reported.
    measured: Option<(usize, u64)>,
    memory: AgentMemory,
    policy: Policy,
    turn_limits: TurnLimits,
    watcher: Option<watch::Watcher>,
    /// See [`AgentSetup::bench_no_snapshots`].
    bench_no_snapshots: bool,
    /// Turns run since the session's end was last summarized.
    turns: usize,
    /// What tool-less calls (summaries, promotion) used since the last recorded step.
    unrecorded_usage: Option<llm::Usage>,
    mcp: McpHub,
    sandbox: crate::sandbox::Plan,
}

impl Agent {
    pub fn new(setup: AgentSetup) -> Agent {
        let mut memory = setup.memory;
        memory.notes = setup.restored.notes;
        memory.summary = setup.restored.summary;
        // With Watchman configured, every snapshot asks it (see `checkpoint::Store::scan`):
        // a second watcher of cairn's own would only cost its set-up. Without snapshots
        // there is nothing to watch for.
        let watcher =
            if setup.watch && !setup.store.watches_with_watchman() && !setup.bench_no_snapshots {
                let store = &setup.store;
                watch::Watcher::start(store.root(), store.private_dir(), store.scanned_dirs()).ok()
            } else {
                None
            };
        Agent {
            store: setup.store,
            session: setup.session,
            client: setup.client,
            model: setup.model,
            model_label: setup.model_label,
            reasoning: setup.reasoning,
            system: setup.system,
            history: setup.restored.history,
            context_from: setup.restored.context_from,
            measured: None,
            memory,
            policy: setup.policy,
            turn_limits: setup.turn_limits,
            watcher,
            bench_no_snapshots: setup.bench_no_snapshots,
            turns: 0,
            unrecorded_usage: None,
            mcp: setup.mcp,
            sandbox: setup.sandbox,
        }
    }

    /// Stops what the agent started: its MCP servers, waiting for their processes.
    pub async fn shutdown(&mut self) {
        self.mcp.shutdown().await;
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The messages the model sees (after the last compaction).
    pub fn conversation(&self) -> &[Message] {
        &self.history[self.context_from..]
    }

    pub fn policy_mut(&mut self) -> &mut Policy {
        &mut self.policy
    }

    /// Whether user edits are found by a file watcher (else by scanning).
    pub fn is_watching(&self) -> bool {
        self.watcher.is_some()
    }

    /// Points the agent at another model for the following calls.
    pub fn set_model(&mut self, client: llm::Client, model: String, model_label: String) {
        self.client = client;
        self.model = model;
        self.model_label = model_label;
    }

    /// How hard the model is asked to think from now on.
    pub fn set_reasoning(&mut self, reasoning: Option<llm::Reasoning>) {
        self.reasoning = reasoning;
    }

    pub fn reasoning(&self) -> Option<llm::Reasoning> {
        self.reasoning
    }

    /// Moves the agent to another point of its session (after a user's rewind), with the
    /// conversation stored there.
    pub fn reset_to(&mut self, session: Session, restored: Restored) {
        self.session = session;
        self.history = restored.history;
        self.context_from = restored.context_from.min(self.history.len());
        self.measured = None;
        self.memory.notes = restored.notes;
        self.memory.notes_changed = false;
        self.memory.summary = restored.summary;
        if let Some(watcher) = &self.watcher {
            // The rewind rewrote files; those are not the user's edits.
            let _ = watcher.take();
        }
    }

    /// The tools offered to the model: the file and shell tools, the memory tools,
    /// `rewind`, and the MCP servers' tools.
    pub fn tool_definitions(&self) -> Vec<llm::ToolDefinition> {
        let mut out: Vec<llm::ToolDefinition> = tools::specs()
            .into_iter()
            .map(|spec| llm::ToolDefinition {
                name: spec.name.to_string(),
                description: spec.description.to_string(),
                parameters: spec.parameters,
            })
            .collect();
        out.push(llm::ToolDefinition {
            name: REWIND_TOOL.to_string(),
            description: "Roll the workspace back to an earlier step of this session to back out of a dead end. \
                The conversation is kept, so you remember what failed. Step numbers appear in tool results."
                .to_string(),
            parameters: json!({
                "type": "object",
                "properties": {"step": {"type": "integer", "minimum": 1, "description": "The step number to go back to"}},
                "required": ["step"]
            }),
        });
        out.extend(memory_tools::definitions());
        out.extend(self.mcp.tools().iter().map(|tool| llm::ToolDefinition {
            name: tool.name.clone(),
            description: tool.description.clone(),
            parameters: tool.input_schema.clone(),
        }));
        out
    }

    /// The session and the step being recorded, for memory commits.
    fn origin(&self) -> Origin {
        Origin { session: Some(self.session.info.id.clone()), step: Some(self.session.steps + 1) }
    }

    /// Records edits the user made since the last step as a `user-edits` step, excluding
    /// `agent_paths` (the agent's own edits of the response in progress). Returns false when
    /// it could not tell them apart (the watcher lost track while the agent had edits of its
    /// own), so the step that records those edits must scan.
    fn flush_user_edits(
        &mut self,
        agent_paths: &BTreeSet<PathBuf>,
        emit: &mut dyn FnMut(Event),
    ) -> Result<bool, AgentError> {
        if self.session.tip.is_none() || self.bench_no_snapshots {
            return Ok(true);
        }
        let changes = match &self.watcher {
            Some(watcher) => match watcher.take() {
                watch::Pending::Paths(paths) => {
                    let paths: Vec<PathBuf> =
                        paths.into_iter().filter(|p| !agent_paths.contains(p)).collect();
                    if paths.is_empty() {
                        return Ok(true);
                    }
                    Changes::Paths(paths)
                }
                // A scan cannot tell the agent's unrecorded edits from the user's.
                watch::Pending::Rescan if !agent_paths.is_empty() => return Ok(false),
                watch::Pending::Rescan => Changes::Scan,
            },
            None if !agent_paths.is_empty() => return Ok(false),
            None => Changes::Scan,
        };
        let scanned = matches!(changes, Changes::Scan);
        let recorded = self.store.record_user_edits(&mut self.session, changes)?;
        if scanned {
            self.after_scan();
        }
        if let Some(step) = recorded {
            emit(Event::StepRecorded {
                step: step.number,
                commit: step.commit.to_string(),
                kind: StepKind::UserEdits.to_string(),
                subject: "user edits".into(),
            });
        }
        Ok(true)
    }

    /// Tells the watcher which directories the scan that just ran entered, so it watches
    /// those and only those.
    fn after_scan(&self) {
        if let Some(watcher) = &self.watcher {
            watcher.scanned(self.store.scanned_dirs());
        }
    }

    fn record(
        &mut self,
        mut record: StepRecord,
        emit: &mut dyn FnMut(Event),
    ) -> Result<(), AgentError> {
        if self.memory.notes_changed {
            let notes = self.memory.notes.clone().into_bytes();
            record.state_files.push((checkpoint::NOTES_FILE.into(), Some(notes)));
            self.memory.notes_changed = false;
        }
        if let Some(usage) = self.unrecorded_usage.take() {
            self.add_usage(&mut record, usage);
        }
        if self.bench_no_snapshots {
            return Ok(());
        }
        let kind = record.kind;
        let subject = crate::text::one_line(&record.subject);
        let scanned = matches!(record.changes, Changes::Scan);
        let step = self.store.record_step(&mut self.session, record)?;
        if scanned {
            self.after_scan();
        }
        self.store.set_current_session(&self.session.info.id)?;
        emit(Event::StepRecorded {
            step: step.number,
            commit: step.commit.to_string(),
            kind: kind.to_string(),
            subject,
        });
        Ok(())
    }
}

impl Agent {
    /// Adds `usage` to what `record` says its model calls used, naming the model, so the
    /// tokens of summaries count and are priced like any other call's.
    fn add_usage(&self, record: &mut StepRecord, usage: llm::Usage) {
        let recorded = record
            .details
            .get("usage")
            .and_then(|value| serde_json::from_value::<llm::Usage>(value.clone()).ok());
        let total = recorded.map_or(usage, |recorded| recorded + usage);
        record.details.insert("usage".into(), serde_json::to_value(total).unwrap_or_default());
        record.model.get_or_insert_with(|| self.model_label.clone());
    }
}

fn to_json(message: &Message) -> Value {
    transcript::encode(message)
}
