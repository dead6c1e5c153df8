//! `cairn land [SESSION] [-m MSG] [--notes [--notes-ref REF]]`: the session's changes as one
//! ordinary commit on the current branch, optionally with its Agent Trace record attached
//! as a git note.

use std::process::ExitCode;

use gix::ObjectId;
use serde::Serialize;

use super::CommandError;
use super::common::{open_store, print_json, session_or_current};
use crate::history::agent_trace::{self, TraceRecord, notes};
use crate::history::land::{self, Landed};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The session to land; the current one by default.
    session: Option<String>,
    /// The commit message; by default the session's title and what it changed.
    #[arg(short, long)]
    message: Option<String>,
    /// Print the result as JSON, with the commit's Agent Trace record.
    #[arg(long)]
    json: bool,
    /// Attach the commit's Agent Trace record (who wrote each changed line) as a git note.
    #[arg(long)]
    notes: bool,
    /// The notes ref for `--notes`: a name under refs/notes/.
    #[arg(long, value_name = "REF", requires = "notes", default_value = notes::DEFAULT_REF, value_parser = notes::full_ref)]
    notes_ref: String,
}

#[derive(Serialize)]
struct Output {
    #[serde(flatten)]
    landed: Landed,
    /// The notes ref the record was attached on, with `--notes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    notes_ref: Option<String>,
    agent_trace: TraceRecord,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let store = open_store()?;
    let session = session_or_current(&store, args.session.as_deref())?;
    if args.notes {
        // Refused before anything lands: a note that cannot be written must not leave a
        // landed commit without its record.
        notes::current(&store, &args.notes_ref)?;
    }
    let landed = land::land(&store, &session, args.message)?;
    if !args.json && !args.notes {
        print_landed(&session, &landed);
        return Ok(ExitCode::SUCCESS);
    }
    // The commit is on the branch now: a failure below must say so, not hide it.
    let after_landing = |err: crate::checkpoint::Error| {
        CommandError::from(err).with_hint(format!(
            "the session did land, as {}; only its Agent Trace record is missing",
            landed.commit
        ))
    };
    let commit =
        ObjectId::from_hex(landed.commit.as_bytes()).map_err(CommandError::internal_error)?;
    let record = agent_trace::for_commit(&store, commit).map_err(after_landing)?;
    if args.notes {
        let text = serde_json::to_string_pretty(&record).map_err(CommandError::internal_error)?;
        notes::attach(&store, &args.notes_ref, commit, &format!("{text}\n"))
            .map_err(after_landing)?;
    }
    if args.json {
        let notes_ref = args.notes.then(|| args.notes_ref.clone());
        print_json(&Output { landed, notes_ref, agent_trace: record })?;
    } else {
        print_landed(&session, &landed);
        let short = args.notes_ref.trim_start_matches("refs/notes/");
        println!(
            "Attached its Agent Trace record as a note on {} (`git notes --ref {short} show HEAD`).",
            args.notes_ref
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_landed(session: &str, landed: &Landed) {
    println!(
        "Landed session {session} on {} as {} ({} files).",
        landed.branch,
        &landed.commit[..10],
        landed.files
    );
}
