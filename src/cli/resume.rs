//! `cairn resume [CHECKPOINT] [PROMPT] [--fork]`: continue a session (default: the newest)
//! from its tip or any checkpoint, with the conversation stored there.
//!
//! The workspace is brought to the checkpoint first, as `cairn rewind` would: edits on
//! disk that no step holds are recorded first (and kept under `refs/cairn/archive/`), so
//! nothing is lost, and a session killed mid-turn resumes from its last complete step.
//! `--fork` starts a new session from the checkpoint and leaves the original untouched.

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::agent::{self, Event, TurnEnd, approval::Headless};
use crate::checkpoint::{Checkpoint, Error as StoreError};
use crate::config::{Approval, Flags, Reasoning};
use crate::sandbox::Mode;

use super::CommandError;
use super::launch::{self, Context};
use super::run::{Printer, drive, end_session, finish};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to continue from (default: the newest session's tip).
    checkpoint: Option<String>,
    /// What to do next; without it, an interactive session opens (on a terminal).
    prompt: Option<String>,
    /// Start a new session from the checkpoint instead of continuing the original.
    #[arg(long)]
    fork: bool,
    /// ask, auto, or read-only.
    #[arg(long, value_parser = str::parse::<Approval>)]
    approval: Option<Approval>,
    /// How commands are confined: workspace-write (the default), read-only, or off.
    #[arg(long, value_parser = str::parse::<Mode>)]
    sandbox: Option<Mode>,
    /// The model, as provider/model.
    #[arg(long)]
    model: Option<String>,
    /// Print every event as one JSON object per line (headless).
    #[arg(long)]
    json: bool,
    /// Stop after this many model calls (exit status 3).
    #[arg(long)]
    max_steps: Option<u32>,
    /// How hard the model thinks: low, medium, high, or off (the model's default).
    #[arg(long, value_parser = str::parse::<Reasoning>)]
    reasoning: Option<Reasoning>,
    /// Do not print the model's reasoning (it is still recorded, and in --json events).
    #[arg(long)]
    hide_reasoning: bool,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let context = Context::load(Flags {
        model: args.model.clone(),
        approval: args.approval,
        sandbox: args.sandbox,
        reasoning: args.reasoning,
    })?;
    let target = match &args.checkpoint {
        Some(name) => context.store.resolve(name)?,
        None => newest(&context)?,
    };
    let session = if args.fork {
        let (session, applied) = context.store.fork_into_workspace(&target)?;
        super::common::report_kept(&applied.kept);
        let from = crate::text::terminal_safe(&target.session);
        eprintln!("Forked {from}@{} as session {}.", target.step, session.info.id);
        session
    } else {
        let rewound = crate::history::rewind(&context.store, &target)?;
        let (outcome, reverted) = (rewound.outcome, rewound.reverted_facts);
        if !reverted.is_empty() {
            eprintln!("Reverted project facts written after that step: {}.", reverted.join(", "));
        }
        super::common::report_kept(&outcome.applied.kept);
        if let Some(saved) = &outcome.saved_edits {
            let kept = outcome.archived_as.as_deref().unwrap_or("the session");
            eprintln!("Recorded your unsaved edits as step {} (kept in {kept}).", saved.number);
        }
        context.store.open_session(&target.session)?
    };
    context.store.set_current_session(&session.info.id)?;
    let tip = session.tip.ok_or_else(|| StoreError::UnknownSession(session.info.id.clone()))?;
    let state = context.store.read_state(tip)?;
    let restored = agent::Restored::from_state(&state).map_err(|err| StoreError::CorruptState {
        commit: tip.to_string(),
        reason: err.to_string(),
    })?;
    eprintln!(
        "Resuming session {} at step {} ({} messages).",
        session.info.id,
        session.steps,
        restored.history.len()
    );

    let interactive = args.prompt.is_none() || (!args.json && std::io::stdin().is_terminal());
    if interactive {
        if !std::io::stdin().is_terminal() {
            return Err(CommandError::usage(
                "give a PROMPT to resume headlessly; without one, cairn resume needs a terminal",
            ));
        }
        let show_reasoning = !args.hide_reasoning;
        return super::interactive::run_session(
            context,
            session,
            restored,
            args.prompt,
            show_reasoning,
        );
    }
    let prompt = args.prompt.unwrap_or_default();
    let runtime = launch::runtime()?;
    let mut printer = Printer::new(args.json, !args.hide_reasoning)
        .priced_with(super::usage::Prices::of(&context.config));
    if let Some(message) = context.config_notice() {
        printer.event(&Event::Notice { message });
    }
    runtime.block_on(async move {
        let (model, client) = context.model().await?;
        let mcp = launch::start_mcp(&context).await;
        let mut agent =
            launch::agent(context, session, restored, model, client, Box::new(Headless), mcp)?;
        let outcome =
            drive(&mut agent, &prompt, args.max_steps, &mut |event| printer.event(&event)).await;
        if matches!(outcome, Ok(TurnEnd::Done | TurnEnd::MaxSteps | TurnEnd::Unfinished(_))) {
            end_session(&mut agent, &mut |event| printer.event(&event)).await;
        }
        agent.shutdown().await;
        finish(&agent, outcome, &mut printer)
    })
}

/// The tip of the newest session started in this clone: a fetched session is only ever
/// resumed by name, so a remote cannot slip one in front of your own.
fn newest(context: &Context) -> Result<Checkpoint, CommandError> {
    let mut newest = None;
    for session in context.store.sessions()? {
        if context.store.created_here(&session.id)? {
            newest = Some(session);
            break;
        }
    }
    let newest = newest.ok_or_else(|| {
        CommandError::user("there are no sessions started in this clone to resume").with_hint(
            "name one (`cairn sessions` lists them, fetched ones too), or start one with \
             `cairn run PROMPT` or `cairn`",
        )
    })?;
    Ok(context.store.resolve(&newest.id)?)
}
