//! `cairn checkpoint`: record the workspace now as a step of the current session (a new
//! session with `--new` or when there is none). Scripts for other agents use it with
//! `--agent`, `--prompt` and `--transcript`; `cairn hook` serves Claude Code, Codex and
//! Gemini CLI directly.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::checkpoint::{self, Changes, StepKind, StepRecord, Store};
use crate::config::{Env, Flags};
use crate::hooks::agent_transcript;
use crate::transcript::Message;

use super::CommandError;
use super::common::{open_configured, print_json, with_progress};
use super::config::config_error;

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
    /// The agent that did the work (letters, digits, `.`, `_`, `-`): named in the commit's
    /// author (`<agent> via cairn`), a `Cairn-Agent:` trailer and `step.json`.
    #[arg(long, value_name = "NAME", value_parser = parse_agent)]
    agent: Option<String>,
    /// The prompt this work answers: added to the conversation as a user message, so
    /// `cairn export` and `cairn resume` see it. Makes the step a `prompt` step.
    #[arg(long, value_name = "TEXT")]
    prompt: Option<String>,
    /// The agent's transcript, JSON or JSON Lines, stored in the step as
    /// `.cairn/state/transcript.json` or `.cairn/state/transcript.jsonl`.
    #[arg(long, value_name = "FILE")]
    transcript: Option<PathBuf>,
    /// The step's kind: manual (the default), prompt (the default with --prompt), model or
    /// tool.
    #[arg(long, value_parser = parse_kind)]
    kind: Option<StepKind>,
    /// Say on stderr how the workspace was read: through Watchman, or why it was scanned.
    #[arg(short, long)]
    verbose: bool,
}

fn parse_agent(name: &str) -> Result<String, String> {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if plain {
        Ok(name.to_string())
    } else {
        Err("an agent name is 1 to 64 letters, digits, '.', '_' or '-' (e.g. claude-code)".into())
    }
}

fn parse_kind(kind: &str) -> Result<StepKind, String> {
    match kind.parse::<StepKind>()? {
        kind @ (StepKind::Manual | StepKind::Prompt | StepKind::Model | StepKind::Tool) => Ok(kind),
        other => Err(format!(
            "cairn records {other} steps itself; a checkpoint is manual, prompt, model or tool"
        )),
    }
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
    let store = open()?;
    // Everything that can be refused is checked before anything is written.
    let transcript = match &args.transcript {
        Some(path) => Some(agent_transcript::load(path).map_err(|err| {
            CommandError::user_error(err)
                .with_hint("pass the agent's transcript file: one JSON document or JSON Lines")
        })?),
        None => None,
    };
    let template = step_record(&args, transcript);
    let title = match &args.prompt {
        Some(prompt) if args.message.is_none() => prompt.clone(),
        _ => template.subject.clone(),
    };
    let mut attempt = 0;
    let (session, recorded) = loop {
        attempt += 1;
        let mut session = choose_session(&store, args.new, &title, args.agent.as_deref())?;
        let record = template.clone();
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
    if args.verbose {
        match (store.watches_with_watchman(), store.watchman_note()) {
            (false, _) => eprintln!(
                "cairn checkpoint: scanned the workspace ([snapshot] fsmonitor = \"none\")"
            ),
            (true, None) => eprintln!("cairn checkpoint: read what Watchman reported changed"),
            (true, Some(why)) => eprintln!("cairn checkpoint: scanned the workspace: {why}"),
        }
    }
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

/// The store for the current directory, sized and redacting as the configuration says.
fn open() -> Result<Store, CommandError> {
    let cwd = std::env::current_dir()?;
    let (store, config) = open_configured(&cwd, &Env::from_process(), &Flags::default())?;
    config.map_err(config_error)?;
    Ok(store)
}

/// The step the arguments describe.
fn step_record(args: &Args, transcript: Option<agent_transcript::Transcript>) -> StepRecord {
    let kind = args.kind.unwrap_or(if args.prompt.is_some() {
        StepKind::Prompt
    } else {
        StepKind::Manual
    });
    let subject = match (&args.message, &args.prompt) {
        (Some(message), _) => message.clone(),
        (None, Some(prompt)) => format!("prompt: {}", crate::text::one_line(prompt)),
        (None, None) => "checkpoint".to_string(),
    };
    let mut record = StepRecord::new(kind, subject, Changes::Scan);
    record.agent = args.agent.clone();
    if let Some(prompt) = &args.prompt {
        record.messages.push(Message::User { text: prompt.clone() }.into_json());
    }
    if let Some(transcript) = transcript {
        record.state_files.extend(transcript.state_files());
    }
    record
}

fn choose_session(
    store: &Store,
    new: bool,
    title: &str,
    agent: Option<&str>,
) -> Result<checkpoint::Session, CommandError> {
    if !new && let Some(id) = store.current_session()? {
        match store.open_session(&id) {
            Ok(session) => return Ok(session),
            Err(checkpoint::Error::UnknownSession(_)) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(store.start_session(title, None, agent.map(str::to_string))?)
}
