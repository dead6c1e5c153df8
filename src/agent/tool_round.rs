//! A round of tool calls: the calls of one model response run (read-only ones together,
//! the others one at a time after their approval), and the round recorded as one step
//! with the response, its calls and their results.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::{
    Agent, AgentError, Event, REWIND_TOOL, approval, memory_tools, subject, to_json, tools, watch,
};
use crate::checkpoint::{Changes, StepKind, StepRecord};
use crate::config::Approval;
use crate::llm::{self, CancellationToken, Message, ToolArguments, ToolCall};
use crate::sandbox;
use crate::transcript;

const SHELL_TOOL: &str = "shell";

/// How much of a tool result `step.json` keeps; the whole result is in the messages.
const RESULT_PREVIEW_BYTES: usize = 2000;

/// The tools of one model response, after they ran.
#[derive(Default)]
pub(super) struct ToolRound {
    pub(super) results: Vec<Message>,
    /// (call, output summary) for the step message.
    outcomes: Vec<subject::Outcome>,
    changed: BTreeSet<PathBuf>,
    scan: bool,
    /// Edits before the round's first command could not be told from the user's: the step
    /// must scan to hold them.
    untold: bool,
    rewound: bool,
    pub(super) cancelled: bool,
}

impl Agent {
    /// Runs a response's tool calls: consecutive read-only calls together, writes and
    /// commands one at a time in order.
    pub(super) async fn run_tools(
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
                round.cancel(&calls[index..], emit);
                break;
            }
            let call = &calls[index];
            emit_call(call, emit);
            if is_read_only(call, &specs) {
                // Gather the run of read-only calls starting here and run them together.
                let mut batch = vec![call];
                while let Some(next) = calls.get(index + batch.len()) {
                    if !is_read_only(next, &specs) {
                        break;
                    }
                    emit_call(next, emit);
                    batch.push(next);
                }
                self.run_read_only(&batch, &mut round, cancel, emit).await;
                index += batch.len();
                continue;
            }
            let output =
                self.run_one(call, self.access_of(&call.name), &mut round, cancel, emit).await?;
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

    /// Runs read-only calls concurrently; they need no approval and change nothing.
    async fn run_read_only(
        &self,
        batch: &[&ToolCall],
        round: &mut ToolRound,
        cancel: &CancellationToken,
        emit: &mut dyn FnMut(Event),
    ) {
        let ctx = tools::ToolContext { root: self.store.root(), sandbox: None, cancel };
        let ctx = &ctx;
        let outputs = futures_util::future::join_all(batch.iter().map(|call| {
            let args = call.arguments.to_wire_value();
            async move { tools::run(&call.name, &args, ctx).await }
        }))
        .await;
        for (call, output) in batch.iter().zip(outputs) {
            round.push(call, output, emit);
        }
    }

    /// What a tool may do, for approval: an MCP tool may do anything, like `shell`.
    fn access_of(&self, name: &str) -> tools::Access {
        if self.mcp.has_tool(name) {
            return tools::Access::Shell;
        }
        tools::specs().iter().find(|s| s.name == name).map_or(tools::Access::Write, |s| s.access)
    }

    /// Runs one call that may change something: checks its arguments and name, asks the
    /// approval policy, then runs it (a memory tool, `rewind`, an MCP tool or a built-in).
    async fn run_one(
        &mut self,
        call: &ToolCall,
        access: tools::Access,
        round: &mut ToolRound,
        cancel: &CancellationToken,
        emit: &mut dyn FnMut(Event),
    ) -> Result<tools::ToolOutput, AgentError> {
        if call.name.trim().is_empty() {
            return Ok(failed(
                "this tool call could not be parsed: it came without a tool name; call the tool \
                 again, naming it"
                    .into(),
            ));
        }
        let arguments = match &call.arguments {
            ToolArguments::Json(value) => value.clone(),
            ToolArguments::Invalid { error: reason, .. } => {
                return Ok(failed(format!(
                    "the arguments for `{}` are not valid JSON ({reason}); send a JSON object",
                    call.name
                )));
            }
        };
        if memory_tools::is_memory_tool(&call.name) {
            return Ok(self.run_memory_tool(&call.name, &arguments));
        }
        let known = call.name == REWIND_TOOL
            || self.mcp.has_tool(&call.name)
            || tools::specs().iter().any(|s| s.name == call.name);
        if !known {
            let names: Vec<String> = self.tool_definitions().into_iter().map(|d| d.name).collect();
            return Ok(failed(format!(
                "unknown tool `{}`; the tools are: {}",
                call.name,
                names.join(", ")
            )));
        }
        let summary = subject::describe_call(&call.name, &arguments);
        let diff = match tools::preview(&call.name, &arguments, self.store.root()) {
            // The call would fail without writing anything: no question to ask.
            Some(Err(error)) => return Ok(failed(error)),
            Some(Ok(diff)) => Some(diff),
            None => None,
        };
        let command = arguments.get("command").and_then(Value::as_str).unwrap_or_default();
        let confinement =
            if access == tools::Access::Shell { self.sandbox.describe() } else { String::new() };
        let action = match access {
            _ if self.mcp.has_tool(&call.name) => approval::Action::Mcp {
                server: call
                    .name
                    .split_once(crate::mcp::SEPARATOR)
                    .map_or("", |(server, _)| server),
            },
            // The sandbox the user asked for cannot run: each command is a choice to make.
            tools::Access::Shell
                if matches!(self.sandbox, sandbox::Plan::Unavailable { explicit: true, .. }) =>
            {
                approval::Action::Unconfined { command, why: &confinement }
            }
            tools::Access::Shell => approval::Action::Shell { command, sandbox: &confinement },
            tools::Access::Write | tools::Access::Read => {
                approval::Action::Write { diff: diff.as_deref() }
            }
        };
        let request = approval::Request { tool: &call.name, action, summary: &summary };
        if let approval::Decision::Deny(reason) = self.policy.decide(&request) {
            if let approval::Action::Unconfined { why, .. } = action {
                return Ok(failed(format!(
                    "{reason} ({why}); the user can pass `--sandbox off` to run commands unconfined"
                )));
            }
            return Ok(failed(reason));
        }
        if call.name == REWIND_TOOL {
            return self.rewind_tool(&arguments);
        }
        if access == tools::Access::Shell && !round.scan {
            // The command may read the user's latest edits; record them as theirs first.
            round.untold = !self.flush_user_edits(&round.changed, emit)?;
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
        if call.name == SHELL_TOOL {
            return Ok(self.run_command(&arguments, cancel).await);
        }
        let ctx = tools::ToolContext { root: self.store.root(), sandbox: None, cancel };
        Ok(tools::run(&call.name, &arguments, &ctx).await)
    }

    /// Runs an approved `shell` call in the session's sandbox. When the sandbox blocked
    /// it, in `ask` mode the user may allow that one command to run again outside.
    async fn run_command(
        &mut self,
        arguments: &Value,
        cancel: &CancellationToken,
    ) -> tools::ToolOutput {
        let confinement = self.sandbox.confinement().cloned();
        let root = self.store.root().to_path_buf();
        let ctx = tools::ToolContext { root: &root, sandbox: confinement.as_ref(), cancel };
        let output = tools::run(SHELL_TOOL, arguments, &ctx).await;
        if confinement.is_none() || !output.is_error || self.policy.mode() != Approval::Ask {
            return output;
        }
        let Some(blocked) = sandbox::refusals(&output.content).first().map(|l| l.to_string())
        else {
            return output;
        };
        let command = arguments.get("command").and_then(Value::as_str).unwrap_or_default();
        let why = format!("the sandbox blocked it: {}", blocked.trim());
        let request = approval::Request {
            tool: SHELL_TOOL,
            action: approval::Action::Unconfined { command, why: &why },
            summary: &format!("re-run `{command}` outside the sandbox"),
        };
        if self.policy.decide(&request) != approval::Decision::Allow {
            return output;
        }
        let ctx = tools::ToolContext { root: &root, sandbox: None, cancel };
        let rerun = tools::run(SHELL_TOOL, arguments, &ctx).await;
        tools::ToolOutput {
            content: format!(
                "{}--- the user allowed a re-run outside the sandbox ---\n{}",
                output.content, rerun.content
            ),
            ..rerun
        }
    }

    fn rewind_tool(&mut self, arguments: &Value) -> Result<tools::ToolOutput, AgentError> {
        let Some(step) = arguments.get("step").and_then(Value::as_u64) else {
            return Ok(failed("`rewind` needs `step`, a step number of this session".into()));
        };
        if step == 0 || step > self.session.steps {
            return Ok(failed(format!(
                "there is no step {step}; this session has steps 1 to {}",
                self.session.steps
            )));
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

    /// Records a response with tool calls and the round they ran as one step: a `tool`
    /// step, or a `rewind` step when the model rewound.
    pub(super) fn record_round(
        &mut self,
        response: &llm::Response,
        assistant: &Message,
        round: ToolRound,
        mut details: serde_json::Map<String, Value>,
        emit: &mut dyn FnMut(Event),
    ) -> Result<(), AgentError> {
        if self.bench_no_snapshots {
            // The step's subject, changes and record exist only to be committed.
            return Ok(());
        }
        details.insert(
            "tool_calls".into(),
            Value::Array(response.tool_calls.iter().map(transcript::step_tool_call).collect()),
        );
        details.insert("tool_results".into(), Value::Array(round.outcomes.iter().map(|o| json!({"id": o.id, "name": o.name, "is_error": o.is_error, "content": preview(&o.content)})).collect()));
        let changes = self.round_changes(&round);
        let kind = if round.rewound { StepKind::Rewind } else { StepKind::Tool };
        let subject = subject::for_tools(&self.store, &self.session, &round.outcomes);
        let mut record = StepRecord::new(kind, subject, changes);
        record.body = response.text.clone();
        record.messages =
            std::iter::once(assistant).chain(round.results.iter()).map(to_json).collect();
        record.details = details;
        record.model = Some(self.model_label.clone());
        let mut names: Vec<String> = Vec::new();
        for call in &response.tool_calls {
            if !names.contains(&call.name) {
                names.push(call.name.clone());
            }
        }
        record.tools = names;
        self.record(record, emit)
    }

    /// Runs a memory tool; a fact for the user tier, which every project reads, needs
    /// approval first.
    fn run_memory_tool(&mut self, name: &str, arguments: &Value) -> tools::ToolOutput {
        if memory_tools::writes_user_tier(name, arguments) {
            let fact = memory_tools::fact_of(arguments);
            let request = approval::Request {
                tool: name,
                action: approval::Action::RememberUser,
                summary: &format!("remember in the user tier (every project): {fact}"),
            };
            if let approval::Decision::Deny(reason) = self.policy.decide(&request) {
                return failed(reason);
            }
        }
        let origin = self.origin();
        memory_tools::run(name, arguments, &mut self.memory, &origin)
    }

    /// What a round changed: the files its tools name and, after a command or MCP call
    /// (which may touch anything), what the watcher saw meanwhile. A scan when there is no
    /// watcher or it lost track, and after a rewind. User edits were flushed before the
    /// round, so what the watcher holds is the round's.
    fn round_changes(&self, round: &ToolRound) -> Changes {
        let mut paths = round.changed.clone();
        if round.scan || round.rewound {
            match self.watcher.as_ref().map(watch::Watcher::take) {
                Some(watch::Pending::Paths(seen)) if !round.rewound && !round.untold => {
                    paths.extend(seen);
                }
                // The scan about to run sees everything the watcher holds.
                _ => return Changes::Scan,
            }
        }
        if paths.is_empty() {
            Changes::Unchanged
        } else {
            Changes::Paths(paths.into_iter().collect())
        }
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

    /// A round that runs none of `calls`, answering each with `reason`.
    pub(super) fn not_run(calls: &[ToolCall], reason: &str, emit: &mut dyn FnMut(Event)) -> Self {
        let mut round = ToolRound::default();
        round.answer_unrun(calls, reason, emit);
        round
    }

    /// Answers the calls the user's cancel left unrun, so each call keeps its result.
    fn cancel(&mut self, calls: &[ToolCall], emit: &mut dyn FnMut(Event)) {
        self.answer_unrun(calls, "cancelled by the user", emit);
        self.cancelled = true;
    }

    fn answer_unrun(&mut self, calls: &[ToolCall], reason: &str, emit: &mut dyn FnMut(Event)) {
        for call in calls {
            self.push(call, failed(reason.to_owned()), emit);
        }
    }
}

/// Whether a call only reads (a built-in read tool with JSON arguments), so it may run
/// beside others.
fn is_read_only(call: &ToolCall, specs: &[tools::ToolSpec]) -> bool {
    matches!(call.arguments, ToolArguments::Json(_))
        && call.name != REWIND_TOOL
        && specs.iter().any(|s| s.name == call.name && s.access == tools::Access::Read)
}

fn emit_call(call: &ToolCall, emit: &mut dyn FnMut(Event)) {
    emit(Event::ToolCall {
        id: call.id.clone(),
        name: call.name.clone(),
        arguments: call.arguments.to_wire_value(),
    });
}

/// A tool's output that reports a failure to the model.
fn failed(content: String) -> tools::ToolOutput {
    tools::ToolOutput { content, is_error: true, ..Default::default() }
}

fn preview(content: &str) -> String {
    tools::output::truncate_middle(content, RESULT_PREVIEW_BYTES)
}
