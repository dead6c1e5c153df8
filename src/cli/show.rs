//! `cairn show`: one step — its message, tool calls and diff.

use std::process::ExitCode;

use gix::bstr::ByteSlice;

use super::common::{color_stdout, format_time, open_store};
use super::{CommandError, log, render};
use crate::text::terminal_safe;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The step to show (SESSION, SESSION@N, @, @~K, or a git revision).
    checkpoint: String,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let store = open_store()?;
    let checkpoint = store.resolve(&args.checkpoint)?;
    let summary = store.step_summary(checkpoint.commit)?;
    let state = store.read_state(checkpoint.commit)?;
    let object = store
        .repo()
        .find_commit(checkpoint.commit)
        .map_err(|e| CommandError::internal(e.to_string()))?;
    let message = object
        .message_raw()
        .map_err(|e| CommandError::internal(e.to_string()))?
        .to_str_lossy()
        .into_owned();
    println!("step {} of session {}  ({})", summary.step, summary.session, summary.commit);
    println!("kind: {}   time: {}", summary.kind, format_time(summary.time));
    println!();
    for line in message.trim_end().lines() {
        println!("    {}", terminal_safe(line));
    }
    for key in ["tool_calls", "tool_results", "usage"] {
        if let Some(value) = state.step.get(key) {
            println!("\n{key}:");
            let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
            for line in pretty.lines() {
                println!("    {}", terminal_safe(line));
            }
        }
    }
    if let Some(skipped) = state.step.get("skipped") {
        println!("\nleft out of the snapshot: {}", terminal_safe(&skipped.to_string()));
    }
    println!();
    let (from, to) = log::step_trees(&store, checkpoint.commit)?;
    print!("{}", render::render(store.repo(), from, Some(to), false, color_stdout())?);
    Ok(ExitCode::SUCCESS)
}
