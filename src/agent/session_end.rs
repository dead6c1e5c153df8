//! The end of a session: the tier-2 summary and the promotion pass, which moves facts the
//! user stated or that were verified into project memory, recorded as one step.

use serde_json::json;

use super::{Agent, AgentError, Event, summary};
use crate::checkpoint::{self, Changes, StepKind, StepRecord};
use crate::llm::CancellationToken;
use crate::memory::Tier;

impl Agent {
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
        let prompt = self.promotion_prompt(&summary_text)?;
        let promotions = match self.complete(summary::PROMOTION_SYSTEM, prompt, cancel).await {
            Ok(answer) => summary::parse_promotions(&answer),
            Err(err) => {
                emit(Event::Notice { message: format!("no facts were promoted: {err}") });
                Vec::new()
            }
        };
        let applied = self.promote(promotions, emit);
        let mut record = StepRecord::new(
            StepKind::Model,
            format!("summarize: session summary, {} memory changes", applied.len()),
            Changes::Unchanged,
        );
        record.body = summary_text.clone();
        record.state_files =
            vec![(checkpoint::SUMMARY_FILE.into(), Some(summary_text.clone().into_bytes()))];
        record.details.insert("promotion".into(), json!(applied));
        record.model = Some(self.model_label.clone());
        self.memory.summary = Some(summary_text);
        self.turns = 0;
        self.record(record, emit)
    }

    /// What the promotion pass is asked: the session's summary and the project's facts.
    fn promotion_prompt(&self, summary_text: &str) -> Result<String, AgentError> {
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
        Ok(format!(
            "SESSION SUMMARY:\n{summary_text}\n\nEXISTING FACTS (slug: text):\n{}",
            if facts.is_empty() { "(none)\n" } else { &facts }
        ))
    }

    /// Applies the promotion pass's changes to project memory, each on its own: one that
    /// fails is reported and skipped. Returns what was done, for the step's details.
    fn promote(
        &mut self,
        promotions: Vec<summary::Promotion>,
        emit: &mut dyn FnMut(Event),
    ) -> Vec<String> {
        let origin = self.origin();
        let mut applied = Vec::new();
        for promotion in promotions {
            let memory = &mut self.memory.memory;
            let outcome = match &promotion {
                summary::Promotion::Add { fact, source } => memory
                    .remember(Tier::Project, fact, source.clone(), &origin)
                    .map(|done| format!("{} {}", done.outcome, done.slug)),
                summary::Promotion::Update { slug, fact, source } => {
                    let source = source.clone();
                    memory.update(slug, fact, source, &origin).map(|()| format!("updated {slug}"))
                }
                summary::Promotion::Delete { slug } => {
                    memory.forget(Tier::Project, slug, &origin).map(|()| format!("deleted {slug}"))
                }
            };
            match outcome {
                Ok(done) => applied.push(done),
                Err(err) => emit(Event::Notice { message: format!("promotion skipped: {err}") }),
            }
        }
        applied
    }
}
