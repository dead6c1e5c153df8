//! Keeping the context within the model's window: measuring it, writing the tier-2
//! summary of the session, and compacting the conversation to that summary plus the
//! newest turns, recorded as a `compact` step.

use serde_json::json;

use super::{Agent, AgentError, Event, memory_tools, summary, to_json};
use crate::checkpoint::{self, Changes, StepKind, StepRecord};
use crate::llm::{CancellationToken, Message};

impl Agent {
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

    pub(super) fn needs_compaction(&self) -> bool {
        self.history.len() > self.context_from + 1
            && memory_tools::over_threshold(self.context_tokens(), &self.memory.settings)
    }

    /// Writes tier 2 from the whole session: cairn's exact ledger plus the model's
    /// summary of the current context (or a note that the call failed).
    pub(super) async fn summarize(
        &mut self,
        cancel: &CancellationToken,
        emit: &mut dyn FnMut(Event),
    ) -> String {
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
    pub(super) async fn compact(
        &mut self,
        reason: &str,
        cancel: &CancellationToken,
        emit: &mut dyn FnMut(Event),
    ) -> Result<(), AgentError> {
        let tokens_before = self.context_tokens();
        let summary_text = self.summarize(cancel, emit).await;
        let context = &self.history[self.context_from..];
        let cut = kept_from(context, self.memory.settings.context_window / 4);
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
            (checkpoint::SUMMARY_FILE.into(), Some(summary_text.clone().into_bytes())),
            (checkpoint::NOTES_FILE.into(), None),
            (
                checkpoint::CONTEXT_FILE.into(),
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
}

/// Where the verbatim part of a compacted context starts: the newest turns that fit
/// `budget` tokens, starting at a response (so no tool result loses its call); else only
/// a trailing prompt; else nothing.
fn kept_from(context: &[Message], budget: u64) -> usize {
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
    cut
}
