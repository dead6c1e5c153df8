//! One turn of the agent: the user's prompt, then model calls (the request over the
//! current context, its streamed response) and, per response, the decision: the final
//! reply ends the turn, tool calls run as a round and the loop goes on.

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::json;

use super::ending::{self, TurnBudget};
use super::tool_round::ToolRound;
use super::{Agent, AgentError, Event, TurnEnd, Unfinished, memory_tools, subject, to_json};
use crate::checkpoint::{Changes, StepKind, StepRecord};
use crate::llm::{self, CancellationToken, Message, StreamEvent};

/// Output tokens asked for by a summary or promotion call.
const SUMMARY_OUTPUT_TOKENS: u32 = 4096;

/// What one model call of a turn may use.
#[derive(Debug, Clone, Copy)]
struct CallLimits {
    output_tokens: u32,
    /// The turn's deadline, if it has a time limit.
    deadline: Option<Instant>,
}

impl Agent {
    /// Runs one turn: the user's prompt, then model calls and tools until the model is
    /// done, `max_steps` model calls were made, a response ends it unfinished or the turn's
    /// limits run out, or `cancel` fires.
    pub async fn turn(
        &mut self,
        prompt: &str,
        max_steps: Option<u32>,
        cancel: &CancellationToken,
        emit: &mut dyn FnMut(Event),
    ) -> Result<TurnEnd, AgentError> {
        self.start_turn(prompt, emit)?;
        let mut budget = TurnBudget::start(self.turn_limits);
        let mut calls = 0;
        loop {
            if max_steps.is_some_and(|max| calls >= max) {
                return Ok(TurnEnd::MaxSteps);
            }
            if let Some(why) = budget.exhausted() {
                return Ok(self.end_unfinished(why, &budget, emit));
            }
            if calls > 0 {
                // With no edits of the agent's pending, every change is told apart.
                self.flush_user_edits(&BTreeSet::new(), emit)?;
            }
            calls += 1;
            if self.needs_compaction() {
                self.compact("the conversation passed the compaction threshold", cancel, emit)
                    .await?;
            }
            let started = Instant::now();
            let limits = CallLimits {
                output_tokens: budget.output_tokens_for_call(self.client.max_output_tokens()),
                deadline: budget.deadline(),
            };
            let response = match self.respond(limits, cancel, emit).await {
                Ok(response) => response,
                Err(AgentError::Model(llm::LlmError::Cancelled)) => return Ok(TurnEnd::Cancelled),
                Err(err) => return Err(err),
            };
            let model_ms = started.elapsed().as_millis() as u64;
            budget.spend(&response);
            let unfinished = ending::unfinished(&ending::Outcome {
                response: &response,
                asked_tokens: limits.output_tokens,
                provider_limit: self.client.max_output_tokens(),
            });
            let end = self.decide(response, unfinished, model_ms, cancel, emit).await?;
            if let Some(why) = unfinished {
                return Ok(self.end_unfinished(why, &budget, emit));
            }
            if let Some(end) = end {
                return Ok(end);
            }
        }
    }

    /// Says why the turn stopped before the model finished, and ends it so.
    fn end_unfinished(
        &self,
        why: Unfinished,
        budget: &TurnBudget,
        emit: &mut dyn FnMut(Event),
    ) -> TurnEnd {
        let provider = self.model_label.split_once('/').map_or("", |(provider, _)| provider);
        let message = ending::notice(why, budget, self.client.max_output_tokens(), provider);
        emit(Event::Notice { message });
        TurnEnd::Unfinished(why)
    }

    /// Takes the user's prompt: titles a session that has no step yet, records the user's
    /// edits made before it, and records the prompt as a `prompt` step.
    fn start_turn(&mut self, prompt: &str, emit: &mut dyn FnMut(Event)) -> Result<(), AgentError> {
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
        self.record(record, emit)
    }

    /// One model call; when the provider reports a context overflow, compacts and calls
    /// once more.
    async fn respond(
        &mut self,
        limits: CallLimits,
        cancel: &CancellationToken,
        emit: &mut dyn FnMut(Event),
    ) -> Result<llm::Response, AgentError> {
        match self.call_model(limits, cancel, emit).await {
            Err(llm::LlmError::ContextOverflow { detail }) => {
                self.compact(
                    &format!("the provider reported a context overflow: {detail}"),
                    cancel,
                    emit,
                )
                .await?;
                Ok(self.call_model(limits, cancel, emit).await?)
            }
            other => Ok(other?),
        }
    }

    /// Takes a response into the conversation and acts on it: a reply without tool calls
    /// is recorded and ends the turn; tool calls run as a round, recorded as one step, and
    /// the turn goes on unless the user cancelled it. The tool calls of a response that
    /// ends the turn `unfinished` are not run but answered as such, so each keeps a result.
    async fn decide(
        &mut self,
        response: llm::Response,
        unfinished: Option<Unfinished>,
        model_ms: u64,
        cancel: &CancellationToken,
        emit: &mut dyn FnMut(Event),
    ) -> Result<Option<TurnEnd>, AgentError> {
        let assistant = Message::Assistant {
            reasoning: response.reasoning_blocks.clone(),
            text: response.text.clone(),
            tool_calls: response.tool_calls.clone(),
        };
        self.history.push(assistant.clone());
        if let Some(usage) = response.usage.filter(|usage| usage.input_tokens > 0) {
            self.measured = Some((self.history.len(), usage.input_tokens + usage.output_tokens));
        }
        let mut details = response_details(&response);
        if let Some(notice) = ending::unknown_finish_notice(&response) {
            emit(Event::Notice { message: notice });
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
            return Ok(Some(TurnEnd::Done));
        }
        let tools_started = Instant::now();
        let round = match unfinished {
            Some(why) => {
                ToolRound::not_run(&response.tool_calls, &ending::not_run_reason(why), emit)
            }
            None => self.run_tools(&response.tool_calls, cancel, emit).await?,
        };
        self.history.extend(round.results.iter().cloned());
        let tools_ms = tools_started.elapsed().as_millis() as u64;
        details.insert("timings".into(), json!({ "model_ms": model_ms, "tools_ms": tools_ms }));
        let cancelled = round.cancelled;
        self.record_round(&response, &assistant, round, details, emit)?;
        Ok(cancelled.then_some(TurnEnd::Cancelled))
    }

    /// Streams one model call over the current context. At the turn's deadline the call is
    /// dropped and what came so far returned without a finish reason, which only a call
    /// cut so has.
    async fn call_model(
        &mut self,
        limits: CallLimits,
        cancel: &CancellationToken,
        emit: &mut dyn FnMut(Event),
    ) -> Result<llm::Response, llm::LlmError> {
        // The system text stays as the session started it, so the cached prefix holds;
        // the notes, which change within a session, go after it.
        let request = llm::Request {
            model: self.model.clone(),
            system: self.system.clone(),
            messages: self.history[self.context_from..].to_vec(),
            tools: self.tool_definitions(),
            max_output_tokens: limits.output_tokens,
            temperature: None,
            volatile_context: memory_tools::notes_message(&self.memory.notes),
            cache_key: Some(self.session.info.id.clone()),
            reasoning: self.reasoning,
        };
        let mut stream = self.client.stream(&request, cancel.child_token());
        let mut response = llm::Response::default();
        loop {
            let next = match limits.deadline {
                Some(deadline) => {
                    let deadline = tokio::time::Instant::from_std(deadline);
                    match tokio::time::timeout_at(deadline, stream.next()).await {
                        Ok(next) => next,
                        Err(_) => break,
                    }
                }
                None => stream.next().await,
            };
            let Some(event) = next else {
                // A stream ends after its finish, or without one when it was cancelled.
                if response.finish.is_none() {
                    return Err(llm::LlmError::Cancelled);
                }
                break;
            };
            let event = event?;
            emit_stream_event(&event, emit);
            response.apply(event);
        }
        Ok(response)
    }

    /// One tool-less model call (summaries, promotion); its text. Its usage is kept for
    /// the next recorded step (the `compact` or `summarize` step it serves).
    pub(super) async fn complete(
        &mut self,
        system: &str,
        user: String,
        cancel: &CancellationToken,
    ) -> Result<String, llm::LlmError> {
        let request = llm::Request {
            model: self.model.clone(),
            system: system.to_string(),
            messages: vec![Message::User { text: user }],
            tools: Vec::new(),
            max_output_tokens: self.client.max_output_tokens().min(SUMMARY_OUTPUT_TOKENS),
            temperature: None,
            volatile_context: None,
            cache_key: None,
            // A summary needs no deliberation, and thinking tokens would cost more.
            reasoning: None,
        };
        let mut stream = self.client.stream(&request, cancel.child_token());
        let mut response = llm::Response::default();
        while let Some(event) = stream.next().await {
            response.apply(event?);
        }
        if let Some(usage) = response.usage {
            self.unrecorded_usage = Some(self.unrecorded_usage.map_or(usage, |u| u + usage));
        }
        Ok(response.text)
    }
}

/// What `step.json` records of a response besides its messages: usage, why it finished,
/// and its reasoning.
fn response_details(response: &llm::Response) -> serde_json::Map<String, serde_json::Value> {
    let mut details = serde_json::Map::new();
    details.insert("usage".into(), serde_json::to_value(response.usage).unwrap_or_default());
    details.insert("finish".into(), serde_json::to_value(&response.finish).unwrap_or_default());
    if !response.reasoning.is_empty() {
        details.insert("reasoning".into(), response.reasoning.clone().into());
    }
    if !response.notices.is_empty() {
        details.insert("notices".into(), response.notices.clone().into());
    }
    details
}

fn emit_stream_event(event: &StreamEvent, emit: &mut dyn FnMut(Event)) {
    match event {
        StreamEvent::TextDelta(text) => emit(Event::TextDelta { text: text.clone() }),
        StreamEvent::ReasoningDelta(text) => emit(Event::ReasoningDelta { text: text.clone() }),
        StreamEvent::Usage(usage) => emit(Event::Usage {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_input_tokens: usage.cached_input_tokens,
            cache_write_input_tokens: usage.cache_write_input_tokens,
            reasoning_tokens: usage.reasoning_tokens,
        }),
        StreamEvent::Retry(notice) => emit(Event::Retry { message: notice.to_string() }),
        StreamEvent::Notice(message) => emit(Event::Notice { message: message.clone() }),
        StreamEvent::Reasoning(_) | StreamEvent::ToolCall(_) | StreamEvent::Finish(_) => {}
    }
}
