//! `cairn sessions`: list the sessions in this repository, newest first.

use std::process::ExitCode;

use super::CommandError;
use super::common::{format_time, open_store, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the list as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let store = open_store()?;
    let sessions = store.sessions()?;
    if args.json {
        print_json(&sessions)?;
        return Ok(ExitCode::SUCCESS);
    }
    if sessions.is_empty() {
        println!("No sessions yet. `cairn checkpoint --new` records one.");
        return Ok(ExitCode::SUCCESS);
    }
    let current = store.current_session()?;
    for session in sessions {
        let marker = if current.as_deref() == Some(session.id.as_str()) { "*" } else { " " };
        let base = session
            .base
            .as_deref()
            .map_or("(unborn)".to_string(), |b| b[..b.len().min(10)].to_string());
        println!(
            "{marker} {}  {:>3} steps  base {base}  updated {}  {}",
            session.id,
            session.steps,
            format_time(session.updated),
            session.title
        );
    }
    Ok(ExitCode::SUCCESS)
}
