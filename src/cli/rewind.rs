//! `cairn rewind CHECKPOINT`: move a session back to one of its steps, workspace and
//! agent state both. Unsaved workspace edits are recorded first and the old tip is kept
//! under `refs/cairn/archive/`, so nothing is lost.

use std::process::ExitCode;

use crate::history::{self, RewindError};

use super::CommandError;
use super::common::{open_store, print_json, with_progress};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The step to go back to (SESSION@N, @~K, SESSION, or a git revision).
    checkpoint: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Output {
    session: String,
    step: u64,
    commit: String,
    saved_edits_step: Option<u64>,
    archived_as: Option<String>,
    written: usize,
    deleted: usize,
    kept: Vec<(String, String)>,
    /// Project facts the session wrote after the target step, now reverted.
    reverted_facts: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let store = open_store()?;
    let target = store.resolve(&args.checkpoint)?;
    let rewound = with_progress("rewind", &store.progress, || history::rewind(&store, &target))?;
    let (outcome, reverted) = (rewound.outcome, rewound.reverted_facts);
    super::common::report_kept(&outcome.applied.kept);
    if args.json {
        return print_json(&Output {
            session: outcome.session.clone(),
            step: target.step,
            commit: target.commit.to_string(),
            saved_edits_step: outcome.saved_edits.as_ref().map(|s| s.number),
            archived_as: outcome.archived_as.clone(),
            written: outcome.applied.written,
            deleted: outcome.applied.deleted,
            kept: outcome.applied.kept.clone(),
            reverted_facts: reverted,
        })
        .map(|()| ExitCode::SUCCESS);
    }
    if let Some(saved) = &outcome.saved_edits {
        println!("Saved your unrecorded edits as step {} first.", saved.number);
    }
    println!(
        "Rewound session {} to step {} ({} written, {} deleted).",
        outcome.session, target.step, outcome.applied.written, outcome.applied.deleted
    );
    if let Some(archive) = &outcome.archived_as {
        println!("The previous tip is kept as {archive}.");
    }
    if !reverted.is_empty() {
        println!("Reverted the project facts it wrote after that step: {}.", reverted.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

impl From<RewindError> for CommandError {
    fn from(err: RewindError) -> Self {
        match err {
            RewindError::Checkpoint(err) => err.into(),
            RewindError::Memory(err) => err.into(),
        }
    }
}
