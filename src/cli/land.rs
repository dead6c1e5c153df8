//! `cairn land [SESSION] [-m MSG]`: the session's changes as one ordinary commit on the
//! current branch.

use std::process::ExitCode;

use super::CommandError;
use super::common::{open_store, print_json, session_or_current};
use crate::land;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The session to land; the current one by default.
    session: Option<String>,
    /// The commit message; by default the session's title and what it changed.
    #[arg(short, long)]
    message: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let store = open_store()?;
    let session = session_or_current(&store, args.session.as_deref())?;
    let landed = land::land(&store, &session, args.message)?;
    if args.json {
        print_json(&landed)?;
    } else {
        println!(
            "Landed session {session} on {} as {} ({} files).",
            landed.branch,
            &landed.commit[..10],
            landed.files
        );
    }
    Ok(ExitCode::SUCCESS)
}
