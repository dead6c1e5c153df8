//! `cairn checkpoint`: record the workspace now as a step of the current session (a new
//! session with `--new` or when there is none). Other agents' hooks call this too.

use std::process::ExitCode;

use crate::checkpoint::{self, Changes, StepKind, StepRecord, Store};

use super::CommandError;
use super::common::{open_store, print_json, with_progress};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What this checkpoint is (its commit subject).
    #[arg(short, long)]
    message: Option<String>,
    /// Start a new session instead of adding to the current one.
    #[arg(long)]
    new: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Output {
    session: String,
    step: u64,
    commit: String,
    skipped: Vec<checkpoint::Skipped>,
}

/// Attempts before giving up when other processes keep moving the session.
const ATTEMPTS: usize = 5;

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let store = open_store()?;
    let subject = args.message.clone().unwrap_or_else(|| "checkpoint".to_string());
    let mut attempt = 0;
    let (session, recorded) = loop {
        attempt += 1;
        let mut session = choose_session(&store, args.new, &subject)?;
        let record = StepRecord::new(StepKind::Manual, subject.clone(), Changes::Scan);
        match with_progress("snapshot", &store.progress, || store.record_step(&mut session, record))
        {
            Ok(recorded) => break (session, recorded),
            Err(checkpoint::Error::ConcurrentUpdate { .. })
                if attempt < ATTEMPTS && session.steps > 0 =>
            {
                continue;
            }
            Err(err) => return Err(err.into()),
        }
    };
    store.set_current_session(&session.info.id)?;
    if recorded.reserved_path_present {
        eprintln!(
            "warning: the workspace has a `.cairn` entry; that name is reserved and is never recorded"
        );
    }
    for skipped in &recorded.skipped {
        eprintln!("warning: left out {}: {}", skipped.path, skipped.reason);
    }
    if args.json {
        print_json(&Output {
            session: session.info.id.clone(),
            step: recorded.number,
            commit: recorded.commit.to_string(),
            skipped: recorded.skipped,
        })?;
    } else {
        println!(
            "Recorded step {} of session {} ({})",
            recorded.number,
            session.info.id,
            &recorded.commit.to_string()[..12]
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn choose_session(
    store: &Store,
    new: bool,
    title: &str,
) -> Result<checkpoint::Session, CommandError> {
    if !new && let Some(id) = store.current_session()? {
        match store.open_session(&id) {
            Ok(session) => return Ok(session),
            Err(checkpoint::Error::UnknownSession(_)) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(store.start_session(title, None, None)?)
}
