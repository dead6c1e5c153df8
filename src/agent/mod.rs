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

pub mod approval;
mod conversation;
pub mod events;
pub mod instructions;
pub mod memory_tools;
pub mod prompt;
mod subject;
pub mod summary;
pub use subject::describe_call;
pub mod tools;
pub mod watch;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Value, json};

use crate::checkpoint::{self, Changes, Session, StepKind, StepRecord, Store};
use crate::llm::{self, CancellationToken, Message, StreamEvent, ToolArguments, ToolCall};
use crate::mcp::McpHub;
use crate::memory::Origin;
use crate::transcript;
pub use memory_tools::{AgentMemory, Settings as MemorySettings};

pub use approval::Policy;
pub use conversation::Restored;
pub use events::Event;

/// The agent's own tool, beside the file and shell tools: back out of a dead end.
const REWIND_TOOL: &str = "rewind";

/// Output tokens asked for by a summary or promotion call.
const SUMMARY_OUTPUT_TOKENS: u32 = 4096;

/// How much of a tool result `step.json` keeps; the whole result is in the messages.
const RESULT_PREVIEW_BYTES: usize = 2000;

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnEnd {
    /// The model ended its turn.
    Done,
    /// The step budget (`--max-steps`) ran out first.
    MaxSteps,
    /// The user interrupted; the session stands at its last complete step.
    Cancelled,
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
    pub system: String,
    /// The session's state at its tip (default for a new session).
    pub restored: Restored,
    pub memory: AgentMemory,
    pub policy: Policy,
    pub max_output_tokens: u32,
    /// Environment variables hidden from `shell` (the providers' API keys).
    pub hidden_env: Vec<String>,
    /// Watch the workspace for the user's edits (else scan before each model call).
    pub watch: bool,
    /// The session's MCP servers (none: `McpHub::default()`).
    pub mcp: McpHub,
}

pub struct Agent {
    store: Store,
    session: Session,
    client: llm::Client,
    model: String,
    model_label: String,
    system: String,
    /// Every message of the session; the model sees those from `context_from` on.
    history: Vec<Message>,
    context_from: usize,
    /// (history length, tokens) after the last response whose usage the provider reported.
    measured: Option<(usize, u64)>,
    memory: AgentMemory,
    policy: Policy,
    max_output_tokens: u32,
    hidden_env: Vec<String>,
    watcher: Option<watch::Watcher>,
    /// Turns run since the session's end was last summarized.
    turns: usize,
    mcp: McpHub,
}

/// The tools of one model response, after they ran.
#[derive(Default)]
struct ToolRound {
    results: Vec<Message>,
    /// (call, output summary) for the step message.
    outcomes: Vec<subject::Outcome>,
    changed: BTreeSet<PathBuf>,
    scan: bool,
    rewound: bool,
    cancelled: bool,
}

impl Agent {
    pub fn new(setup: AgentSetup) -> Agent {
        let mut memory = setup.memory;
        memory.notes = setup.restored.notes;
        memory.summary = setup.restored.summary;
        let watcher =
            if setup.watch { watch::Watcher::start(setup.store.root()).ok() } else { None };
        Agent {
            store: setup.store,
            session: setup.session,
            client: setup.client,
            model: setup.model,
            model_label: setup.model_label,
            system: setup.system,
            history: setup.restored.history,
            context_from: setup.restored.context_from,
            measured: None,
            memory,
            policy: setup.policy,
            max_output_tokens: setup.max_output_tokens,
            hidden_env: setup.hidden_env,
            watcher,
            turns: 0,
            mcp: setup.mcp,
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

    /// What a tool may do, for approval: an MCP tool may do anything, like `shell`.
    fn access_of(&self, name: &str) -> tools::Access {
        if self.mcp.has_tool(name) {
            return tools::Access::Shell;
        }
        tools::specs().iter().find(|s| s.name == name).map_or(tools::Access::Write, |s| s.access)
    }

    /// Runs one turn: the user's prompt, then model calls and tools until the model is
    /// done, `max_steps` model calls were made, or `cancel` fires.
    pub async fn turn(
        &mut self,
        prompt: &str,
        max_steps: Option<u32>,
        cancel: &CancellationToken,
        emit: &mut dyn FnMut(Event),
    ) -> Result<TurnEnd, AgentError> {
        if self.session.tip.is_none() {
            // `session.toml` is written with the first step, so until then the session
            // can still take its title from the prompt that starts it (an interactive
            // session opened without one has only a placeholder).
            // Redacted before it is cut to a title, or a cut key would no longer match.
            let prompt = if self.store.redacts_secrets() {
                crate::secrets::redact(prompt).0
            } else {
                prompt.to_string()
            };
            self.session.info.title = crate::title::session_title(&prompt);
        }
        self.flush_user_edits(&BTreeSet::new(), emit)?;
        self.turns += 1;
        let user = Message::User { text: prompt.to_string() };
        self.history.push(user.clone());
        let mut record = StepRecord::new(
            StepKind::Prompt,
            format!("prompt: {}", crate::text::one_line(prompt)),
            Changes::Unchanged,
        );
        record.messages = vec![to_json(&user)];
        self.record(record, emit)?;

        let mut calls = 0;
        loop {
            if max_steps.is_some_and(|max| calls >= max) {
                return Ok(TurnEnd::MaxSteps);
            }
            if calls > 0 {
                self.flush_user_edits(&BTreeSet::new(), emit)?;
            }
            calls += 1;
            if self.needs_compaction() {
                self.compact("the conversation passed the compaction threshold", cancel, emit)
                    .await?;
            }
            let started = Instant::now();
            let response = match self.call_model(cancel, emit).await {
                Err(llm::LlmError::ContextOverflow { detail }) => {
                    self.compact(
                        &format!("the provider reported a context overflow: {detail}"),
                        cancel,
                        emit,
                    )
                    .await?;
                    self.call_model(cancel, emit).await
                }
                other => other,
            };
            let response = match response {
                Ok(response) => response,
                Err(llm::LlmError::Cancelled) => return Ok(TurnEnd::Cancelled),
                Err(err) => return Err(err.into()),
            };
            let model_ms = started.elapsed().as_millis() as u64;
            let assistant = Message::Assistant {
                text: response.text.clone(),
                tool_calls: response.tool_calls.clone(),
            };
            self.history.push(assistant.clone());
            if let Some(usage) = response.usage.filter(|usage| usage.input_tokens > 0) {
                self.measured =
                    Some((self.history.len(), usage.input_tokens + usage.output_tokens));
            }
            let mut details = serde_json::Map::new();
            details
                .insert("usage".into(), serde_json::to_value(response.usage).unwrap_or_default());
            details.insert(
                "finish".into(),
                serde_json::to_value(&response.finish).unwrap_or_default(),
            );
            if !response.reasoning.is_empty() {
                details.insert("reasoning".into(), response.reasoning.clone().into());
            }

            if response.tool_calls.is_empty() {
                details.insert("timings".into(), json!({ "model_ms": model_ms }));
                let mut record = StepRecord::new(
                    StepKind::Model,
                    subject::for_reply(&response.text),
                    Changes::Unchanged,
                );
                record.body = response.text.clone();
                record.messages = vec![to_json(&assistant)];
                record.details = details;
                record.model = Some(self.model_label.clone());
                self.record(record, emit)?;
                return Ok(TurnEnd::Done);
            }

            let tools_started = Instant::now();
            let round = self.run_tools(&response.tool_calls, cancel, emit).await?;
            self.history.extend(round.results.iter().cloned());
            details.insert("timings".into(), json!({ "model_ms": model_ms, "tools_ms": tools_started.elapsed().as_millis() as u64 }));
            details.insert(
                "tool_calls".into(),
                Value::Array(response.tool_calls.iter().map(call_json).collect()),
            );
            details.insert(
                "tool_results".into(),
                Value::Array(
                    round
                        .outcomes
                        .iter()
                        .map(|o| json!({"id": o.id, "name": o.name, "is_error": o.is_error, "content": preview(&o.content)}))
                        .collect(),
                ),
            );
            let changes = if round.scan || round.rewound {
                Changes::Scan
            } else if round.changed.is_empty() {
                Changes::Unchanged
            } else {
                Changes::Paths(round.changed.iter().cloned().collect())
            };
            let kind = if round.rewound { StepKind::Rewind } else { StepKind::Tool };
            let mut record = StepRecord::new(
                kind,
                subject::for_tools(&self.store, &self.session, &round.outcomes),
                changes,
            );
            record.body = response.text.clone();
            record.messages =
                std::iter::once(&assistant).chain(round.results.iter()).map(to_json).collect();
            record.details = details;
            record.model = Some(self.model_label.clone());
            let mut names: Vec<String> = Vec::new();
            for call in &response.tool_calls {
                if !names.contains(&call.name) {
                    names.push(call.name.clone());
                }
            }
            record.tools = names;
            if matches!(record.changes, Changes::Scan)
                && let Some(watcher) = &self.watcher
            {
                // The scan about to run sees everything changed so far (user edits were
                // flushed before the command); what the watcher holds would only be
                // re-checked, or after a big build, rescanned.
                let _ = watcher.take();
            }
            self.record(record, emit)?;
            if round.cancelled {
                return Ok(TurnEnd::Cancelled);
            }
        }
    }

    /// Streams one model call over the current context.
    async fn call_model(
        &mut self,
        cancel: &CancellationToken,
        emit: &mut dyn FnMut(Event),
    ) -> Result<llm::Response, llm::LlmError> {
        let mut system = self.system.clone();
        if let Some(notes) = memory_tools::notes_section(&self.memory.notes) {
            system.push_str(&notes);
        }
        let request = llm::Request {
            model: self.model.clone(),
            system,
            messages: self.history[self.context_from..].to_vec(),
            tools: self.tool_definitions(),
            max_output_tokens: self.max_output_tokens,
            temperature: None,
        };
        let mut stream = self.client.stream(&request, cancel.child_token());
        let mut response = llm::Response::default();
        while let Some(event) = stream.next().await {
            let event = event?;
            emit_stream_event(&event, emit);
            response.apply(event);
        }
        Ok(response)
    }

    /// One tool-less model call (summaries, promotion); its text.
    async fn complete(
        &self,
        system: &str,
        user: String,
        cancel: &CancellationToken,
    ) -> Result<String, llm::LlmError> {
        let request = llm::Request {
            model: self.model.clone(),
            system: system.to_string(),
            messages: vec![Message::User { text: user }],
            tools: Vec::new(),
            max_output_tokens: self.max_output_tokens.min(SUMMARY_OUTPUT_TOKENS),
            temperature: None,
        };
        let mut stream = self.client.stream(&request, cancel.child_token());
        let mut response = llm::Response::default();
        while let Some(event) = stream.next().await {
            response.apply(event?);
        }
        Ok(response.text)
    }

    /// The context's size in tokens: the provider's count for the last request plus an
    /// estimate for what came after it, else an estimate of everything.
    pub fn context_tokens(&self) -> u64 {
        let (from, base) = match self.measured {
            Some((len, tokens)) if len > self.context_from && len <= self.history.len() => {
                (len, tokens)
            }
            _ => (
                self.context_from,
                memory_tools::estimate(&self.system) + memory_tools::estimate(&self.memory.notes),
            ),
        };
        base + self.history[from..]
            .iter()
            .map(|message| memory_tools::estimate(&to_json(message).to_string()))
            .sum::<u64>()
    }

    fn needs_compaction(&self) -> bool {
        self.history.len() > self.context_from + 1
            && memory_tools::over_threshold(self.context_tokens(), &self.memory.settings)
    }

    /// The session and the step being recorded, for memory commits.
    fn origin(&self) -> Origin {
        Origin { session: Some(self.session.info.id.clone()), step: Some(self.session.steps + 1) }
    }

    /// Writes tier 2 from the whole session: cairn's exact ledger plus the model's
    /// summary of the current context (or a note that the call failed).
    async fn summarize(&self, cancel: &CancellationToken, emit: &mut dyn FnMut(Event)) -> String {
        let ledger = summary::Ledger::of(&self.history);
        // Half the window for the transcript, at four bytes a token.
        let max_bytes = (self.memory.settings.context_window * 2).min(2_000_000) as usize;
        let transcript = summary::transcript(
            self.memory.summary.as_deref(),
            &self.memory.notes,
            &self.history[self.context_from..],
            max_bytes,
        );
        let answer = self.complete(summary::SUMMARY_SYSTEM, transcript, cancel).await;
        if let Err(err) = &answer {
            emit(Event::Notice {
                message: format!("the session summary has no model part: {err}"),
            });
        }
        let failure = answer.as_ref().map_err(ToString::to_string);
        summary::render(
            &self.session.info.id,
            &ledger,
            failure.as_deref().map(String::as_str).map_err(String::as_str),
        )
    }

    /// Compacts the context: writes tier 2, then continues with the summary and the most
    /// recent turns verbatim, recorded as a `compact` step. Older messages stay in the
    /// earlier commits.
    async fn compact(
        &mut self,
        reason: &str,
        cancel: &CancellationToken,
        emit: &mut dyn FnMut(Event),
    ) -> Result<(), AgentError> {
        let tokens_before = self.context_tokens();
        let summary_text = self.summarize(cancel, emit).await;
        let context = &self.history[self.context_from..];
        // Keep the newest turns that fit a quarter of the window, starting at a response
        // (so no tool result loses its call); else only a trailing prompt.
        let budget = self.memory.settings.context_window / 4;
        let mut used = 0;
        let mut cut = context.len();
        for (i, message) in context.iter().enumerate().rev() {
            used += memory_tools::estimate(&to_json(message).to_string());
            if used > budget {
                break;
            }
            if matches!(message, Message::Assistant { .. }) {
                cut = i;
            }
        }
        if cut == context.len() && matches!(context.last(), Some(Message::User { .. })) {
            cut = context.len() - 1;
        }
        let kept: Vec<Message> = context[cut..].to_vec();
        let dropped = cut;
        let summary_message =
            Message::User { text: format!("{}\n\n{summary_text}", summary::COMPACTED_PREFIX) };
        let first = self.session.message_count() + 1;
        let mut record = StepRecord::new(
            StepKind::Compact,
            format!("compact: {dropped} messages summarized, {} kept", kept.len()),
            Changes::Unchanged,
        );
        record.body = reason.to_string();
        record.messages = std::iter::once(&summary_message).chain(&kept).map(to_json).collect();
        record.state_files = vec![
            (checkpoint::step::SUMMARY_FILE.into(), Some(summary_text.clone().into_bytes())),
            (checkpoint::step::NOTES_FILE.into(), None),
            (
                checkpoint::step::CONTEXT_FILE.into(),
                Some(json!({ "from": first }).to_string().into_bytes()),
            ),
        ];
        record.details.insert(
            "compaction".into(),
            json!({"reason": reason, "tokens_before": tokens_before, "summarized_messages": dropped, "kept_messages": kept.len()}),
        );
        self.memory.notes.clear();
        self.memory.notes_changed = false;
        self.memory.summary = Some(summary_text);
        let from = self.history.len();
        self.history.push(summary_message);
        self.history.extend(kept);
        self.context_from = from;
        self.measured = None;
        self.record(record, emit)
    }

    /// Ends a session that ran at least one turn: writes tier 2 and runs the promotion
    /// pass (facts the user stated or that were verified go to project memory), recorded
    /// as one step. Failures are reported and never lose the session.
    pub async fn end_session(
        &mut self,
        cancel: &CancellationToken,
        emit: &mut dyn FnMut(Event),
    ) -> Result<(), AgentError> {
        if !self.memory.settings.summarize || self.turns == 0 || cancel.is_cancelled() {
            return Ok(());
        }
        let summary_text = self.summarize(cancel, emit).await;
        let contents = self.memory.memory.project().load()?;
        // Facts merged from a remote stay out: they are another clone's data, and must
        // neither be promoted nor steer what this pass proposes.
        let facts: String = contents
            .facts
            .iter()
            .filter(|fact| fact.meta.source.remote().is_none())
            .take(crate::memory::store::INDEX_MAX_LINES)
            .map(|fact| format!("- {}: {}\n", fact.slug, fact.headline()))
            .collect();
        let prompt = format!(
            "SESSION SUMMARY:\n{summary_text}\n\nEXISTING FACTS (slug: text):\n{}",
            if facts.is_empty() { "(none)\n" } else { &facts }
        );
        let promotions = match self.complete(summary::PROMOTION_SYSTEM, prompt, cancel).await {
            Ok(answer) => summary::parse_promotions(&answer),
            Err(err) => {
                emit(Event::Notice { message: format!("no facts were promoted: {err}") });
                Vec::new()
            }
        };
        let origin = self.origin();
        let mut applied = Vec::new();
        for promotion in promotions {
            let memory = &mut self.memory.memory;
            let outcome = match &promotion {
                summary::Promotion::Add { fact, source } => memory
                    .remember(crate::memory::Tier::Project, fact, source.clone(), &origin)
                    .map(|done| format!("{} {}", done.outcome, done.slug)),
                summary::Promotion::Update { slug, fact, source } => {
                    let source = source.clone();
                    memory.update(slug, fact, source, &origin).map(|()| format!("updated {slug}"))
                }
                summary::Promotion::Delete { slug } => memory
                    .forget(crate::memory::Tier::Project, slug, &origin)
                    .map(|()| format!("deleted {slug}")),
            };
            match outcome {
                Ok(done) => applied.push(done),
                Err(err) => emit(Event::Notice { message: format!("promotion skipped: {err}") }),
            }
        }
        let mut record = StepRecord::new(
            StepKind::Model,
            format!("summarize: session summary, {} memory changes", applied.len()),
            Changes::Unchanged,
        );
        record.body = summary_text.clone();
        record.state_files =
            vec![(checkpoint::step::SUMMARY_FILE.into(), Some(summary_text.clone().into_bytes()))];
        record.details.insert("promotion".into(), json!(applied));
        record.model = Some(self.model_label.clone());
        self.memory.summary = Some(summary_text);
        self.turns = 0;
        self.record(record, emit)
    }

    /// Runs a response's tool calls: consecutive read-only calls together, writes and
    /// commands one at a time in order.
    async fn run_tools(
        &mut self,
        calls: &[ToolCall],
        cancel: &CancellationToken,
        emit: &mut dyn FnMut(Event),
    ) -> Result<ToolRound, AgentError> {
        let specs = tools::specs();
        let mut round = ToolRound::default();
        let mut index = 0;
        while index < calls.len() {
            if cancel.is_cancelled() {
                for call in &calls[index..] {
                    round.push(
                        call,
                        tools::ToolOutput {
                            content: "cancelled by the user".into(),
                            is_error: true,
                            ..Default::default()
                        },
                        emit,
                    );
                }
                round.cancelled = true;
                break;
            }
            let call = &calls[index];
            emit(Event::ToolCall {
                id: call.id.clone(),
                name: call.name.clone(),
                arguments: call.arguments.to_wire_value(),
            });
            let is_read = matches!(call.arguments, ToolArguments::Json(_))
                && call.name != REWIND_TOOL
                && specs.iter().any(|s| s.name == call.name && s.access == tools::Access::Read);
            if is_read {
                // Gather the run of read-only calls starting here and run them together.
                let mut batch = vec![call];
                while let Some(next) = calls.get(index + batch.len()) {
                    let next_is_read = matches!(next.arguments, ToolArguments::Json(_))
                        && specs
                            .iter()
                            .any(|s| s.name == next.name && s.access == tools::Access::Read);
                    if !next_is_read {
                        break;
                    }
                    emit(Event::ToolCall {
                        id: next.id.clone(),
                        name: next.name.clone(),
                        arguments: next.arguments.to_wire_value(),
                    });
                    batch.push(next);
                }
                let ctx = tools::ToolContext {
                    root: self.store.root(),
                    cancel,
                    hidden_env: &self.hidden_env,
                };
                let ctx = &ctx;
                let outputs = futures_util::future::join_all(batch.iter().map(|call| {
                    let args = call.arguments.to_wire_value();
                    async move { tools::run(&call.name, &args, ctx).await }
                }))
                .await;
                for (call, output) in batch.iter().zip(outputs) {
                    round.push(call, output, emit);
                }
                index += batch.len();
                continue;
            }
            let output =
                self.run_one(call, self.access_of(&call.name), &round, cancel, emit).await?;
            if call.name == REWIND_TOOL && !output.is_error {
                round.rewound = true;
            }
            round.scan |= output.may_change_anything;
            round.changed.extend(output.changed_paths.iter().cloned());
            round.push(call, output, emit);
            index += 1;
        }
        Ok(round)
    }

    async fn run_one(
        &mut self,
        call: &ToolCall,
        access: tools::Access,
        round: &ToolRound,
        cancel: &CancellationToken,
        emit: &mut dyn FnMut(Event),
    ) -> Result<tools::ToolOutput, AgentError> {
        let error =
            |content: String| tools::ToolOutput { content, is_error: true, ..Default::default() };
        let arguments = match &call.arguments {
            ToolArguments::Json(value) => value.clone(),
            ToolArguments::Invalid { error: reason, .. } => {
                return Ok(error(format!(
                    "the arguments for `{}` are not valid JSON ({reason}); send a JSON object",
                    call.name
                )));
            }
        };
        if memory_tools::is_memory_tool(&call.name) {
            let origin = self.origin();
            return Ok(memory_tools::run(&call.name, &arguments, &mut self.memory, &origin));
        }
        let known = call.name == REWIND_TOOL
            || self.mcp.has_tool(&call.name)
            || tools::specs().iter().any(|s| s.name == call.name);
        if !known {
            let names: Vec<String> = self.tool_definitions().into_iter().map(|d| d.name).collect();
            return Ok(error(format!(
                "unknown tool `{}`; the tools are: {}",
                call.name,
                names.join(", ")
            )));
        }
        let summary = subject::describe_call(&call.name, &arguments);
        let decision =
            self.policy.decide(&approval::Request { tool: &call.name, access, summary: &summary });
        if let approval::Decision::Deny(reason) = decision {
            return Ok(error(reason));
        }
        if call.name == REWIND_TOOL {
            return self.rewind_tool(&arguments);
        }
        if access == tools::Access::Shell && !round.scan {
            // The command may read the user's latest edits; record them as theirs first.
            self.flush_user_edits(&round.changed, emit)?;
        }
        if self.mcp.has_tool(&call.name) {
            let outcome = self.mcp.call(&call.name, &arguments, cancel).await;
            return Ok(tools::ToolOutput {
                content: tools::output::truncate_middle(&outcome.content, tools::MAX_CONTENT_BYTES),
                is_error: outcome.is_error,
                changed_paths: Vec::new(),
                // The server may have changed any file.
                may_change_anything: true,
            });
        }
        let ctx =
            tools::ToolContext { root: self.store.root(), cancel, hidden_env: &self.hidden_env };
        Ok(tools::run(&call.name, &arguments, &ctx).await)
    }

    fn rewind_tool(&mut self, arguments: &Value) -> Result<tools::ToolOutput, AgentError> {
        let error = |content: String| {
            Ok(tools::ToolOutput { content, is_error: true, ..Default::default() })
        };
        let Some(step) = arguments.get("step").and_then(Value::as_u64) else {
            return error("`rewind` needs `step`, a step number of this session".into());
        };
        if step == 0 || step > self.session.steps {
            return error(format!(
                "there is no step {step}; this session has steps 1 to {}",
                self.session.steps
            ));
        }
        let target = self.store.resolve(&format!("{}@{step}", self.session.info.id))?;
        let applied = self.store.restore_workspace(target.commit)?;
        let mut content = format!(
            "Restored the workspace to step {step} ({} files written, {} deleted). The conversation is kept.",
            applied.written, applied.deleted
        );
        for (path, reason) in &applied.kept {
            content.push_str(&format!("\nLeft {path} as it is: {reason}"));
        }
        Ok(tools::ToolOutput {
            content,
            is_error: false,
            changed_paths: Vec::new(),
            may_change_anything: true,
        })
    }

    /// Records edits the user made since the last step as a `user-edits` step, excluding
    /// `agent_paths` (the agent's own edits of the response in progress).
    fn flush_user_edits(
        &mut self,
        agent_paths: &BTreeSet<PathBuf>,
        emit: &mut dyn FnMut(Event),
    ) -> Result<(), AgentError> {
        if self.session.tip.is_none() {
            return Ok(());
        }
        let changes = match &self.watcher {
            Some(watcher) => match watcher.take() {
                watch::Pending::Paths(paths) => {
                    let paths: Vec<PathBuf> =
                        paths.into_iter().filter(|p| !agent_paths.contains(p)).collect();
                    if paths.is_empty() {
                        return Ok(());
                    }
                    Changes::Paths(paths)
                }
                // A scan cannot tell the agent's unrecorded edits from the user's.
                watch::Pending::Rescan if !agent_paths.is_empty() => return Ok(()),
                watch::Pending::Rescan => Changes::Scan,
            },
            None if !agent_paths.is_empty() => return Ok(()),
            None => Changes::Scan,
        };
        if let Some(step) = self.store.record_user_edits(&mut self.session, changes)? {
            emit(Event::StepRecorded {
                step: step.number,
                commit: step.commit.to_string(),
                kind: StepKind::UserEdits.to_string(),
                subject: "user edits".into(),
            });
        }
        Ok(())
    }

    fn record(
        &mut self,
        mut record: StepRecord,
        emit: &mut dyn FnMut(Event),
    ) -> Result<(), AgentError> {
        if self.memory.notes_changed {
            let notes = self.memory.notes.clone().into_bytes();
            record.state_files.push((checkpoint::step::NOTES_FILE.into(), Some(notes)));
            self.memory.notes_changed = false;
        }
        let kind = record.kind;
        let subject = crate::text::one_line(&record.subject);
        let step = self.store.record_step(&mut self.session, record)?;
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

impl ToolRound {
    fn push(&mut self, call: &ToolCall, output: tools::ToolOutput, emit: &mut dyn FnMut(Event)) {
        emit(Event::ToolResult {
            id: call.id.clone(),
            name: call.name.clone(),
            is_error: output.is_error,
            content: output.content.clone(),
        });
        self.results.push(Message::ToolResult {
            call_id: call.id.clone(),
            content: output.content.clone(),
            is_error: output.is_error,
        });
        self.outcomes.push(subject::Outcome {
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.to_wire_value(),
            is_error: output.is_error,
            content: output.content,
            changed: output.changed_paths,
        });
    }
}

fn emit_stream_event(event: &StreamEvent, emit: &mut dyn FnMut(Event)) {
    match event {
        StreamEvent::TextDelta(text) => emit(Event::TextDelta { text: text.clone() }),
        StreamEvent::ReasoningDelta(text) => emit(Event::ReasoningDelta { text: text.clone() }),
        StreamEvent::Usage(usage) => emit(Event::Usage {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_input_tokens: usage.cached_input_tokens,
        }),
        StreamEvent::Retry(notice) => emit(Event::Retry { message: notice.to_string() }),
        StreamEvent::ToolCall(_) | StreamEvent::Finish(_) => {}
    }
}

fn to_json(message: &Message) -> Value {
    transcript::encode(message)
}

fn call_json(call: &ToolCall) -> Value {
    transcript::step_tool_call(call)
}

fn preview(content: &str) -> String {
    tools::output::truncate_middle(content, RESULT_PREVIEW_BYTES)
}
