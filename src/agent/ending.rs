//! How a model call ended, seen from the turn: whether the model finished what it was
//! doing, and if not, the notice that says why. Also the turn's budget (`[limits]`), which
//! stops a rambling model between calls and, through the output limit and a deadline,
//! within one.

use std::time::{Duration, Instant};

use super::{TurnLimits, Unfinished};
use crate::llm::{self, FinishReason};

/// What is left of one turn's limits.
pub(super) struct TurnBudget {
    limits: TurnLimits,
    started: Instant,
    output_tokens: u64,
}

impl TurnBudget {
    pub(super) fn start(limits: TurnLimits) -> Self {
        Self { limits, started: Instant::now(), output_tokens: 0 }
    }

    /// When the turn's time is up, if it has a time limit.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.limits.seconds.map(|seconds| self.started + Duration::from_secs(seconds))
    }

    /// Output tokens to ask of the next call: the provider's limit, or what is left of the
    /// turn's when that is less.
    pub(super) fn output_tokens_for_call(&self, provider_limit: u32) -> u32 {
        match self.limits.output_tokens {
            Some(limit) => {
                let left = limit.saturating_sub(self.output_tokens);
                u32::try_from(left).unwrap_or(u32::MAX).min(provider_limit)
            }
            None => provider_limit,
        }
    }

    /// Counts a response's output: as the provider reported it, else estimated.
    pub(super) fn spend(&mut self, response: &llm::Response) {
        let tokens = match response.usage {
            Some(usage) => usage.output_tokens,
            None => {
                super::memory_tools::estimate(&format!("{}{}", response.reasoning, response.text))
            }
        };
        self.output_tokens += tokens;
    }

    /// Why the turn may not make another call, if it may not.
    pub(super) fn exhausted(&self) -> Option<Unfinished> {
        if self.limits.output_tokens.is_some_and(|limit| self.output_tokens >= limit) {
            return Some(Unfinished::TurnOutputTokens);
        }
        if self.deadline().is_some_and(|deadline| Instant::now() >= deadline) {
            return Some(Unfinished::TurnSeconds);
        }
        None
    }
}

/// One model call as the turn sees it: the response and what was asked of it.
pub(super) struct Outcome<'a> {
    pub response: &'a llm::Response,
    /// Output tokens the request allowed.
    pub asked_tokens: u32,
    /// The provider's own `max_output_tokens`.
    pub provider_limit: u32,
}

/// Why the turn cannot go on after this response, if it cannot.
pub(super) fn unfinished(outcome: &Outcome<'_>) -> Option<Unfinished> {
    let response = outcome.response;
    match &response.finish {
        // The stream was cut at the turn's deadline.
        None => Some(Unfinished::TurnSeconds),
        Some(FinishReason::Refusal) => Some(Unfinished::Refusal),
        Some(FinishReason::ContentFilter) => Some(Unfinished::ContentFilter),
        Some(FinishReason::Length) if outcome.asked_tokens < outcome.provider_limit => {
            Some(Unfinished::TurnOutputTokens)
        }
        Some(FinishReason::Length) => Some(Unfinished::OutputLimit),
        Some(FinishReason::Stop | FinishReason::ToolCalls | FinishReason::Other(_)) => {
            let empty = response.text.trim().is_empty() && response.tool_calls.is_empty();
            (empty && !response.notices.is_empty()).then_some(Unfinished::Unusable)
        }
    }
}

/// What the user is told when a turn stops unfinished. `provider` names the provider whose
/// `max_output_tokens` was hit.
pub(super) fn notice(
    why: Unfinished,
    budget: &TurnBudget,
    provider_limit: u32,
    provider: &str,
) -> String {
    match why {
        Unfinished::Refusal => "the model refused to go on; the turn ended unfinished".into(),
        Unfinished::OutputLimit => format!(
            "the response was cut at the output limit of {provider_limit} tokens; the turn ended \
             unfinished (raise `max_output_tokens` in [provider.{provider}])"
        ),
        Unfinished::ContentFilter => {
            "the provider's content filter cut the response; the turn ended unfinished".into()
        }
        Unfinished::Unusable => {
            "the response held nothing cairn could use; the turn ended unfinished".into()
        }
        Unfinished::TurnOutputTokens => format!(
            "the turn stopped at its output limit, `[limits] turn_output_tokens = {}` ({} \
             written); the model did not finish",
            budget.limits.output_tokens.unwrap_or_default(),
            budget.output_tokens
        ),
        Unfinished::TurnSeconds => format!(
            "the turn stopped at its time limit, `[limits] turn_seconds = {}`; the model did \
             not finish",
            budget.limits.seconds.unwrap_or_default()
        ),
    }
}

/// Why the tool calls of a response that ends the turn are not run, for the model.
pub(super) fn not_run_reason(why: Unfinished) -> String {
    format!("not run: the turn stopped before the model finished ({})", why.as_str())
}

/// A notice for a finish reason cairn does not know, which does not stop the turn.
pub(super) fn unknown_finish_notice(response: &llm::Response) -> Option<String> {
    match &response.finish {
        Some(FinishReason::Other(reason)) => {
            Some(format!("the model stopped for a reason cairn does not know: `{reason}`"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(finish: Option<FinishReason>, text: &str, notices: &[&str]) -> llm::Response {
        llm::Response {
            text: text.into(),
            finish,
            notices: notices.iter().map(|n| n.to_string()).collect(),
            ..llm::Response::default()
        }
    }

    fn ending(response: &llm::Response, asked_tokens: u32) -> Option<Unfinished> {
        unfinished(&Outcome { response, asked_tokens, provider_limit: 1000 })
    }

    #[test]
    fn each_finish_reason_is_told_apart() {
        let stop = Some(FinishReason::Stop);
        assert_eq!(ending(&response(stop.clone(), "done", &[]), 1000), None);
        assert_eq!(ending(&response(stop.clone(), "", &[]), 1000), None, "an empty reply ends");
        assert_eq!(ending(&response(stop, "", &["left out"]), 1000), Some(Unfinished::Unusable));
        let length = Some(FinishReason::Length);
        assert_eq!(
            ending(&response(length.clone(), "x", &[]), 1000),
            Some(Unfinished::OutputLimit)
        );
        assert_eq!(
            ending(&response(length, "x", &[]), 10),
            Some(Unfinished::TurnOutputTokens),
            "cut by the turn's budget, not the provider's limit"
        );
        let refusal = response(Some(FinishReason::Refusal), "no", &[]);
        assert_eq!(ending(&refusal, 1000), Some(Unfinished::Refusal));
        let filtered = response(Some(FinishReason::ContentFilter), "", &[]);
        assert_eq!(ending(&filtered, 1000), Some(Unfinished::ContentFilter));
        assert_eq!(ending(&response(None, "and so", &[]), 1000), Some(Unfinished::TurnSeconds));
        let other = response(Some(FinishReason::Other("pause".into())), "x", &[]);
        assert_eq!(ending(&other, 1000), None);
        assert!(unknown_finish_notice(&other).unwrap().contains("`pause`"));
    }

    #[test]
    fn the_budget_caps_calls_and_runs_out() {
        let unlimited = TurnBudget::start(TurnLimits::default());
        assert_eq!(unlimited.output_tokens_for_call(4096), 4096);
        assert_eq!(unlimited.exhausted(), None);

        let limits = TurnLimits { output_tokens: Some(100), seconds: None };
        let mut budget = TurnBudget::start(limits);
        assert_eq!(budget.output_tokens_for_call(4096), 100);
        let mut spent = response(Some(FinishReason::Stop), "", &[]);
        spent.usage = Some(llm::Usage { output_tokens: 60, ..llm::Usage::default() });
        budget.spend(&spent);
        assert_eq!(budget.output_tokens_for_call(4096), 40);
        assert_eq!(budget.output_tokens_for_call(16), 16);
        assert_eq!(budget.exhausted(), None);
        budget.spend(&spent);
        assert_eq!(budget.exhausted(), Some(Unfinished::TurnOutputTokens));

        let past = TurnBudget {
            limits: TurnLimits { output_tokens: None, seconds: Some(1) },
            started: Instant::now() - Duration::from_secs(2),
            output_tokens: 0,
        };
        assert_eq!(past.exhausted(), Some(Unfinished::TurnSeconds));
    }
}
