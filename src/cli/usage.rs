//! Token usage and its estimated cost, as `cairn log`, `cairn sessions`, `cairn run` and
//! `cairn export` show them: one formatter, [`Spent::text`], for all of them. A step's
//! usage is read from its `step.json`; its cost is estimated with the `price` table
//! configured now for the step's provider (none is built in), so it is only as right as
//! that table.

use std::collections::BTreeMap;

use gix::ObjectId;
use serde::Serialize;

use crate::checkpoint::{StepSummary, Store};
use crate::config::{self, Env, Flags, Price};
use crate::history;
use crate::llm::Usage;

use super::CommandError;

/// The price tables of the configured providers, by provider name.
#[derive(Debug, Default)]
pub struct Prices(BTreeMap<String, Price>);

impl Prices {
    /// The tables of the configuration for the current directory. A configuration that
    /// cannot be read leaves the listing without costs, said on stderr: it is not needed
    /// for the rest.
    pub fn configured() -> Prices {
        let project = std::env::current_dir().ok().and_then(|cwd| super::config::project_at(&cwd));
        match config::load(project.as_ref(), &Env::from_process(), &Flags::default()) {
            Ok(config) => Prices::of(&config),
            Err(err) => {
                eprintln!("warning: no costs are estimated: {err}");
                Prices::default()
            }
        }
    }

    /// The tables of an already loaded configuration.
    pub fn of(config: &config::Config) -> Prices {
        Prices(
            config
                .providers
                .iter()
                .filter_map(|(name, provider)| Some((name.clone(), provider.price.as_ref()?.value)))
                .collect(),
        )
    }

    /// The estimated cost of `usage` by a step of `model` (`provider/model`), in dollars;
    /// `None` when the provider has no price table.
    pub fn cost(&self, model: Option<&str>, usage: &Usage) -> Option<f64> {
        let provider = model?.split_once('/')?.0;
        self.0.get(provider).map(|price| cost(price, usage))
    }
}

/// What `usage` costs at `price` (dollars per million tokens). Cache reads and writes cost
/// the input price where the table gives none of their own.
pub fn cost(price: &Price, usage: &Usage) -> f64 {
    let at = |tokens: u64, per_million: f64| tokens as f64 * per_million / 1_000_000.0;
    at(usage.uncached_input_tokens(), price.input)
        + at(usage.cached_input_tokens, price.cached_input.unwrap_or(price.input))
        + at(usage.cache_write_input_tokens, price.cache_write.unwrap_or(price.input))
        + at(usage.output_tokens, price.output)
}

/// The usage a step's `step.json` records (see [`history::export::recorded_usage`]);
/// `None` for steps without a model call (prompts, user edits, checkpoints) and for a
/// provider that reported none.
pub fn step_usage(store: &Store, commit: ObjectId) -> Result<Option<Usage>, CommandError> {
    Ok(store.step_details(commit)?.as_ref().and_then(history::export::recorded_usage))
}

/// What a run of steps used, and cost where every step that used tokens has a price.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spent {
    /// `None` when no step reported usage.
    pub usage: Option<Usage>,
    /// `None` when some step that used tokens has no price table.
    pub cost: Option<f64>,
}

impl Spent {
    /// One step's usage and cost.
    pub fn of_step(
        store: &Store,
        step: &StepSummary,
        prices: &Prices,
    ) -> Result<Spent, CommandError> {
        Ok(Spent::priced(step_usage(store, step.commit)?, step.model.as_deref(), prices))
    }

    /// `usage` by a step of `model` (`provider/model`), with its cost where that provider
    /// has a price table.
    pub fn priced(usage: Option<Usage>, model: Option<&str>, prices: &Prices) -> Spent {
        let cost = usage.and_then(|usage| prices.cost(model, &usage));
        Spent { usage, cost }
    }

    /// The steps' total.
    pub fn of_steps(
        store: &Store,
        steps: &[StepSummary],
        prices: &Prices,
    ) -> Result<Spent, CommandError> {
        let mut total = Spent::default();
        for step in steps {
            total = total + Spent::of_step(store, step, prices)?;
        }
        Ok(total)
    }

    /// One line for people, `None` when nothing was used: `in 1200 · cached 1000 · out 50 ·
    /// ~$0.0021`, with cache writes and reasoning when there were any.
    pub fn text(&self) -> Option<String> {
        let usage = self.usage?;
        let mut parts = vec![
            format!("in {}", usage.input_tokens),
            format!("cached {}", usage.cached_input_tokens),
        ];
        if usage.cache_write_input_tokens > 0 {
            parts.push(format!("written {}", usage.cache_write_input_tokens));
        }
        parts.push(format!("out {}", usage.output_tokens));
        if usage.reasoning_tokens > 0 {
            parts.push(format!("reasoning {}", usage.reasoning_tokens));
        }
        if let Some(cost) = self.cost {
            parts.push(format!("~${cost:.4}"));
        }
        Some(parts.join(" · "))
    }

    /// The line a total ends a listing with (`cairn log`, `cairn run`): `total tokens: in
    /// 1200 · …`; `None` when nothing was used.
    pub fn total_line(&self) -> Option<String> {
        self.text().map(|line| format!("total tokens: {line}"))
    }
}

/// The sum of two, whose cost is known only where both are (or one used nothing).
impl std::ops::Add for Spent {
    type Output = Spent;

    fn add(self, other: Spent) -> Spent {
        let cost = match (self.usage, other.usage) {
            (None, _) => other.cost,
            (_, None) => self.cost,
            _ => self.cost.zip(other.cost).map(|(a, b)| a + b),
        };
        let usage = match (self.usage, other.usage) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        Spent { usage, cost }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, cached: u64, written: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            cached_input_tokens: cached,
            cache_write_input_tokens: written,
            output_tokens: output,
            reasoning_tokens: 0,
        }
    }

    #[test]
    fn each_kind_of_token_costs_its_own_price_or_the_input_price() {
        let price =
            Price { input: 3.0, output: 15.0, cached_input: Some(0.3), cache_write: Some(3.75) };
        // 1000 plain at 3, 8000 read at 0.3, 1000 written at 3.75, 500 out at 15, per million.
        let spent = cost(&price, &usage(10_000, 8_000, 1_000, 500));
        assert!((spent - (0.003 + 0.0024 + 0.00375 + 0.0075)).abs() < 1e-12, "{spent}");
        let plain = Price { cached_input: None, cache_write: None, ..price };
        let spent = cost(&plain, &usage(10_000, 8_000, 1_000, 500));
        assert!((spent - (0.03 + 0.0075)).abs() < 1e-12, "{spent}");
    }

    #[test]
    fn a_total_has_a_cost_only_when_every_step_that_used_tokens_has_one() {
        let priced = Spent { usage: Some(usage(10, 0, 0, 1)), cost: Some(0.5) };
        let unpriced = Spent { usage: Some(usage(20, 5, 0, 2)), cost: None };
        let nothing = Spent::default();
        assert_eq!((priced + nothing).cost, Some(0.5));
        assert_eq!((nothing + priced + priced).cost, Some(1.0));
        let mixed = priced + unpriced;
        assert_eq!(mixed.cost, None);
        assert_eq!(mixed.usage, Some(usage(30, 5, 0, 3)));
        assert_eq!(nothing.text(), None);
        assert_eq!(priced.text().as_deref(), Some("in 10 · cached 0 · out 1 · ~$0.5000"));
        assert_eq!(nothing.total_line(), None);
        assert_eq!(
            unpriced.total_line().as_deref(),
            Some("total tokens: in 20 · cached 5 · out 2")
        );
    }
}
