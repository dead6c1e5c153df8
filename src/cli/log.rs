//! `cairn log`: the steps of a session, oldest first, optionally with each step's diff,
//! with the tokens each model call used and, where a `price` table is configured, what
//! they cost.

use std::process::ExitCode;

use gix::ObjectId;

use crate::checkpoint::{StepSummary, Store};
use crate::llm::Usage;

use super::common::{
    color_stdout, format_time, open_store, print_json, rfc3339, session_or_current,
};
use super::usage::{Prices, Spent};
use super::{CommandError, render};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The session (default: the current one).
    session: Option<String>,
    /// Print the steps as JSON.
    #[arg(long)]
    json: bool,
    /// Show each step's diff.
    #[arg(short = 'p', long = "patch")]
    patch: bool,
}

/// A step in `cairn log --json`: its commit's time in RFC 3339, UTC.
#[derive(Debug, serde::Serialize)]
struct ListedStep<'a> {
    session: &'a str,
    step: u64,
    kind: &'a str,
    commit: String,
    subject: &'a str,
    tools: &'a [String],
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'a str>,
    /// `null` for a commit time outside the calendar's range.
    time: Option<String>,
    /// The same time, seconds since the epoch.
    time_unix: i64,
    /// The tokens the step's model call used; `null` for steps without one.
    usage: Option<Usage>,
    /// Its estimated cost in dollars; `null` without a `price` table for its provider.
    cost: Option<f64>,
}

impl<'a> ListedStep<'a> {
    fn new(step: &'a StepSummary, spent: Spent) -> Self {
        ListedStep {
            session: &step.session,
            step: step.step,
            kind: step.kind.as_str(),
            commit: step.commit.to_string(),
            subject: &step.subject,
            tools: &step.tools,
            model: step.model.as_deref(),
            agent: step.agent.as_deref(),
            time: rfc3339(step.time),
            time_unix: step.time,
            usage: spent.usage,
            cost: spent.cost,
        }
    }
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let store = open_store()?;
    let session = session_or_current(&store, args.session.as_deref())?;
    let steps = store.steps(&session)?;
    let prices = Prices::configured();
    if args.json {
        let listed = steps
            .iter()
            .map(|step| Ok(ListedStep::new(step, Spent::of_step(&store, step, &prices)?)))
            .collect::<Result<Vec<_>, CommandError>>()?;
        print_json(&listed)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_steps(&store, &steps, &prices, args.patch, color_stdout())?;
    Ok(ExitCode::SUCCESS)
}

/// Prints steps one per line, each followed by the tokens it used (if it called the model)
/// and by its diff with `patch`; then the total, if any step used tokens.
pub fn print_steps(
    store: &Store,
    steps: &[StepSummary],
    prices: &Prices,
    patch: bool,
    color: bool,
) -> Result<(), CommandError> {
    let mut total = Spent::default();
    for step in steps {
        println!(
            "{:>4}  {:<10}  {}  {}  {}",
            step.step,
            step.kind.as_str(),
            format_time(step.time),
            step.commit.to_hex_with_len(12),
            crate::text::terminal_safe(&step.subject)
        );
        let spent = Spent::of_step(store, step, prices)?;
        if let Some(line) = spent.text() {
            println!("      tokens: {line}");
        }
        total = total + spent;
        if patch {
            let (from, to) = step_trees(store, step.commit)?;
            print!("{}", render::render(store.repo(), from, Some(to), false, color)?);
        }
    }
    if let Some(line) = total.total_line() {
        println!("{line}");
    }
    Ok(())
}

/// The trees a step's diff compares: its parent's (the previous step, or the base commit
/// for step 1) and its own. `.cairn/` is skipped by the differ.
pub fn step_trees(
    store: &Store,
    commit: ObjectId,
) -> Result<(Option<ObjectId>, ObjectId), CommandError> {
    let internal = |e: &dyn std::fmt::Display| CommandError::internal(e.to_string());
    let object = store.repo().find_commit(commit).map_err(|e| internal(&e))?;
    let tree = object.tree_id().map_err(|e| internal(&e))?.detach();
    let parent = match object.parent_ids().next() {
        Some(parent) => {
            let parent = store.repo().find_commit(parent).map_err(|e| internal(&e))?;
            Some(parent.tree_id().map_err(|e| internal(&e))?.detach())
        }
        None => None,
    };
    Ok((parent, tree))
}
