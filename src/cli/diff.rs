//! `cairn diff [FROM] [TO]`: the workspace difference between two checkpoints. FROM
//! defaults to the current session's tip (`@`) and TO to the workspace as it is now, as
//! with `git diff`. `.cairn/` is never shown.

use std::process::ExitCode;

use gix::ObjectId;

use super::common::{color_stdout, open_store, with_progress};
use super::{CommandError, render};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The older side (default: `@`, the current session's tip).
    from: Option<String>,
    /// The newer side (default: the workspace now).
    to: Option<String>,
    /// Only a summary of changed files and line counts.
    #[arg(long)]
    stat: bool,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let store = open_store()?;
    let tree_of = |name: &str| -> Result<ObjectId, CommandError> {
        Ok(store.step_tree(store.resolve(name)?.commit)?)
    };
    let from = tree_of(args.from.as_deref().unwrap_or("@"))?;
    let to = match &args.to {
        Some(name) => tree_of(name)?,
        None => with_progress("snapshot", &store.progress, || store.snapshot())?.tree,
    };
    print!("{}", render::render(store.repo(), Some(from), Some(to), args.stat, color_stdout())?);
    Ok(ExitCode::SUCCESS)
}
