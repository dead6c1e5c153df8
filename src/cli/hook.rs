//! `cairn hook claude-code|codex|gemini [PAYLOAD]`: record one hook call of another agent
//! as steps of a cairn session (see `crate::hooks`). The payload is read from stdin, or
//! taken from the last argument, where Codex's `notify` puts it.
//!
//! A hook must never get in the host agent's way. It prints nothing on stdout (Claude Code
//! adds a prompt hook's stdout to the prompt, Gemini CLI parses it as JSON), and its exit
//! status is:
//! - 0 when it recorded the event, and also when it could not for a reason of cairn's or
//!   the repository's (no repository at the payload's `cwd`, an event cairn does not
//!   record, a git error): one line on stderr says why;
//! - 1 when the payload is unusable (not JSON, no session id or event name) or the agent
//!   is unknown: nothing is recorded, one line on stderr says why.
//!
//! Never 2, which Claude Code and Gemini CLI take as "block this action", nor a usage error
//! (see `cli::main`).

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::checkpoint::Store;
use crate::config::{Env, Flags};
use crate::hooks::{self, Action, AgentKind, HookOptions};

use super::CommandError;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    setup: Option<super::hook_setup::Command>,
    /// The agent whose hook this is: claude-code, codex or gemini.
    #[arg(required = true)]
    agent: Option<String>,
    /// The hook payload; read from stdin when absent (Codex's `notify` passes it here).
    payload: Option<String>,
    /// Also store the agent's transcript (the payload's `transcript_path`) with the step
    /// that ends each turn, as `.cairn/state/transcript.json[l]`.
    #[arg(long)]
    with_transcript: bool,
    /// Say on stderr what was recorded.
    #[arg(short, long)]
    verbose: bool,
}

/// The exit status of an unusable payload (never 2: that blocks the host agent).
const UNUSABLE: u8 = 1;

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    if let Some(setup) = args.setup {
        super::hook_setup::run(setup)?;
        return Ok(ExitCode::SUCCESS);
    }
    let agent_name = args.agent.unwrap_or_default();
    // The payload first, whatever happens next: a host agent writing to a hook that exited
    // without reading it gets a broken pipe.
    let payload = match args.payload {
        Some(payload) => Ok(payload),
        None => read_stdin(),
    };
    let Some(agent) = AgentKind::from_name(&agent_name) else {
        let known = "name claude-code, codex or gemini";
        note(&agent_name, &format!("unknown agent '{agent_name}'; {known}"));
        return Ok(ExitCode::from(UNUSABLE));
    };
    let note = |message: &str| note(agent.name(), message);
    let payload = match payload {
        Ok(payload) => payload,
        Err(reason) => {
            note(&format!("{reason}; nothing recorded"));
            return Ok(ExitCode::from(UNUSABLE));
        }
    };
    let event = match hooks::parse(agent, &payload) {
        Ok(event) => event,
        Err(err) => {
            note(&format!("{err}; nothing recorded"));
            return Ok(ExitCode::from(UNUSABLE));
        }
    };
    if event.action == Action::Ignored {
        note(&format!(
            "{}'s '{}' event is not one cairn records (it records {}); nothing recorded",
            agent.title(),
            event.event_name,
            agent.recorded_events()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let cwd = match event.cwd.clone() {
        Some(cwd) => cwd,
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    };
    let store = match open(&cwd, &note) {
        Ok(opened) => opened,
        Err(reason) => {
            note(&format!("{reason}; nothing recorded"));
            return Ok(ExitCode::SUCCESS);
        }
    };
    let options = HookOptions { with_transcript: args.with_transcript };
    match hooks::record(&store, &event, &options) {
        Ok(recorded) => {
            for warning in &recorded.warnings {
                note(&format!("warning: {warning}"));
            }
            if args.verbose {
                let numbers: Vec<String> =
                    recorded.steps.iter().map(|step| step.number.to_string()).collect();
                note(&format!(
                    "recorded {} '{}' as step {} of {}session {}",
                    agent.title(),
                    event.event_name,
                    numbers.join(", "),
                    if recorded.new_session { "new " } else { "" },
                    recorded.session
                ));
            }
        }
        Err(err) => note(&format!("{err}; nothing recorded")),
    }
    Ok(ExitCode::SUCCESS)
}

/// One line on stderr, said by `cairn hook <agent>`.
fn note(agent: &str, message: &str) {
    let line = message.replace('\n', " ");
    eprintln!("cairn hook {agent}: {line}");
}

fn read_stdin() -> Result<String, String> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(
            "no hook payload: pipe the agent's JSON on stdin or pass it as the last argument"
                .into(),
        );
    }
    let mut payload = String::new();
    stdin.read_to_string(&mut payload).map_err(|err| format!("cannot read stdin: {err}"))?;
    Ok(payload)
}

/// The store for the repository holding `cwd`, redacting as configured. A broken
/// configuration file does not stop a hook: the defaults (redaction on) apply.
fn open(cwd: &std::path::Path, note: &dyn Fn(&str)) -> Result<Store, String> {
    let opened = super::common::open_configured(cwd, &Env::from_process(), &Flags::default());
    let (store, config) = opened.map_err(|err| match err {
        crate::checkpoint::Error::NotARepository(_) => {
            format!("{} (the payload's cwd) is not inside a git repository", cwd.display())
        }
        other => other.to_string(),
    })?;
    if let Err(err) = config {
        // The store keeps the built-in snapshot settings (redaction on).
        note(&format!("warning: {err}; using the default configuration"));
    }
    Ok(store)
}
