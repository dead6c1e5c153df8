//! `cairn run PROMPT`: one headless turn. The answer streams to stdout and tool activity
//! to stderr, ending with the tokens the run's steps used (and their estimated cost) as
//! `cairn log` totals them; `--json` prints every event as one JSON object per line
//! instead. Without `--approval auto`, writes and `shell` are refused (with the reason,
//! to the model) rather than waiting on a question no one can answer.
//!
//! Exit status: 0 done, 1 failed, 2 usage error, 3 stopped at `--max-steps`, 5 ended
//! unfinished (a refusal, an output limit, a content filter, a response with nothing
//! usable, or a `[limits]` turn limit), 130 interrupted.

use std::io::Write as _;
use std::process::ExitCode;

use gix::ObjectId;

use crate::agent::{Event, Restored, TurnEnd, approval::Headless};
use crate::checkpoint::Store;
use crate::config::{Approval, Flags, Reasoning};
use crate::llm::CancellationToken;
use crate::sandbox::Mode;
use crate::text::{TerminalStream, terminal_safe};

use super::CommandError;
use super::launch::{self, Context};
use super::usage::{Prices, Spent};

/// The exit status of a turn that stopped before the model finished it.
pub const UNFINISHED_EXIT: u8 = 5;

/// The exit statuses, for `--help`.
const EXIT_STATUS_HELP: &str = "Exit status: 0 done, 1 failed, 2 usage error, 3 stopped at \
    --max-steps, 5 ended unfinished (the model refused, a response hit the output limit or a \
    content filter or held nothing usable, or a [limits] turn limit stopped it; a notice says \
    which), 130 interrupted.";

#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_STATUS_HELP)]
pub struct Args {
    /// What to do.
    prompt: String,
    /// ask (refuse writes and shell, since no one can be asked), auto, or read-only.
    #[arg(long, value_parser = str::parse::<Approval>)]
    approval: Option<Approval>,
    /// How commands are confined: workspace-write (the default), read-only, or off.
    #[arg(long, value_parser = str::parse::<Mode>)]
    sandbox: Option<Mode>,
    /// Print every event as one JSON object per line.
    #[arg(long)]
    json: bool,
    /// Stop after this many model calls (exit status 3).
    #[arg(long)]
    max_steps: Option<u32>,
    /// The model, as provider/model.
    #[arg(long)]
    model: Option<String>,
    /// How hard the model thinks: low, medium, high, or off (the model's default).
    #[arg(long, value_parser = str::parse::<Reasoning>)]
    reasoning: Option<Reasoning>,
    /// Do not print the model's reasoning (it is still recorded, and in --json events).
    #[arg(long)]
    hide_reasoning: bool,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let context = Context::load(Flags {
        model: args.model,
        approval: args.approval,
        sandbox: args.sandbox,
        reasoning: args.reasoning,
    })?;
    let mut printer =
        Printer::new(args.json, !args.hide_reasoning).priced_with(Prices::of(&context.config));
    // Before the model is chosen: an ignored `model` key may be why none is found.
    if let Some(message) = context.config_notice() {
        printer.event(&Event::Notice { message });
    }
    let runtime = launch::runtime()?;
    runtime.block_on(async move {
        let (model, client) = context.model().await?;
        let session = context.store.start_session(&args.prompt, Some(model.to_string()), None)?;
        let mcp = launch::start_mcp(&context).await;
        let mut agent = launch::agent(
            context,
            session,
            Restored::default(),
            model.clone(),
            client,
            Box::new(Headless),
            mcp,
        )?;
        printer.event(&Event::SessionStarted {
            session: agent.session().info.id.clone(),
            model: model.to_string(),
        });
        let outcome =
            drive(&mut agent, &args.prompt, args.max_steps, &mut |event| printer.event(&event))
                .await;
        if matches!(outcome, Ok(TurnEnd::Done | TurnEnd::MaxSteps | TurnEnd::Unfinished(_))) {
            end_session(&mut agent, &mut |event| printer.event(&event)).await;
        }
        agent.shutdown().await;
        finish(&agent, outcome, &mut printer)
    })
}

/// Ends the session (summary and memory promotion), Ctrl-C skipping it. A failure is
/// reported and changes nothing else: the session's steps are all recorded.
pub async fn end_session(agent: &mut crate::agent::Agent, emit: &mut dyn FnMut(Event)) {
    let cancel = CancellationToken::new();
    let on_interrupt = cancel.clone();
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_interrupt.cancel();
        }
    });
    if let Err(err) = agent.end_session(&cancel, emit).await {
        emit(Event::Notice { message: format!("the session summary was not recorded: {err}") });
    }
    watcher.abort();
}

/// Runs one turn with Ctrl-C wired to cancellation.
pub async fn drive(
    agent: &mut crate::agent::Agent,
    prompt: &str,
    max_steps: Option<u32>,
    emit: &mut dyn FnMut(Event),
) -> Result<TurnEnd, crate::agent::AgentError> {
    let cancel = CancellationToken::new();
    let on_interrupt = cancel.clone();
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_interrupt.cancel();
        }
    });
    let outcome = agent.turn(prompt, max_steps, &cancel, emit).await;
    watcher.abort();
    outcome
}

/// Reports how the turn ended and picks the exit status.
pub fn finish(
    agent: &crate::agent::Agent,
    outcome: Result<TurnEnd, crate::agent::AgentError>,
    printer: &mut Printer,
) -> Result<ExitCode, CommandError> {
    let session = agent.session().info.id.clone();
    let checkpoint = format!("{session}@{}", agent.session().steps);
    let (reason, code) = match &outcome {
        Ok(TurnEnd::Done) => ("done", 0),
        Ok(TurnEnd::MaxSteps) => ("max-steps", 3),
        Ok(TurnEnd::Cancelled) => ("interrupted", 130),
        Ok(TurnEnd::Unfinished(why)) => (why.as_str(), UNFINISHED_EXIT),
        Err(_) => ("failed", 1),
    };
    if let Err(err) = &outcome {
        printer.event(&Event::Error { message: err.to_string() });
    }
    printer.total(agent.store());
    printer.event(&Event::Done { session, checkpoint, reason: reason.to_string() });
    Ok(ExitCode::from(code))
}

/// Prints events: text to stdout, activity and the model's reasoning (dimmed) to stderr,
/// or JSON lines. What the model, a tool or a server said is escaped for the terminal
/// ([`terminal_safe`]).
pub struct Printer {
    json: bool,
    /// Whether stdout's last text ended a line.
    at_line_start: bool,
    /// The streamed answer's escaping, which spans its pieces.
    answer: TerminalStream,
    show_reasoning: bool,
    /// Whether reasoning is being streamed to stderr, its line not yet ended.
    reasoning_open: bool,
    /// The streamed reasoning's escaping.
    reasoning: TerminalStream,
    dim: bool,
    /// The steps recorded so far, whose usage [`Printer::total`] sums.
    recorded: Vec<ObjectId>,
    /// The price tables the total's cost is estimated with.
    prices: Prices,
}

impl Printer {
    pub fn new(json: bool, show_reasoning: bool) -> Self {
        Printer {
            json,
            at_line_start: true,
            answer: TerminalStream::default(),
            show_reasoning,
            reasoning_open: false,
            reasoning: TerminalStream::default(),
            dim: super::common::color_stderr(),
            recorded: Vec::new(),
            prices: Prices::default(),
        }
    }

    /// Estimates the total's cost with `prices` (without, the total has none).
    pub fn priced_with(mut self, prices: Prices) -> Self {
        self.prices = prices;
        self
    }

    /// Prints what the steps recorded so far used, `total tokens: …` as `cairn log` ends,
    /// read back from their `step.json` so that it counts what `cairn log` counts (the
    /// summary calls too, which stream no `usage` event). Nothing when no step reported
    /// usage, and nothing with `--json`, whose `usage` events say it.
    pub fn total(&mut self, store: &Store) {
        if self.json || self.recorded.is_empty() {
            return;
        }
        let spent = self.recorded.iter().try_fold(Spent::default(), |total, commit| {
            let step = store.step_summary(*commit)?;
            Ok::<_, CommandError>(total + Spent::of_step(store, &step, &self.prices)?)
        });
        self.end_reasoning();
        self.end_line();
        match spent {
            Ok(spent) => {
                if let Some(line) = spent.total_line() {
                    eprintln!("{line}");
                }
            }
            Err(err) => eprintln!("note: the run's token usage could not be read: {err}"),
        }
    }

    pub fn event(&mut self, event: &Event) {
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                println!("{line}");
            }
            return;
        }
        if !matches!(event, Event::ReasoningDelta { .. }) {
            self.end_reasoning();
        }
        match event {
            Event::TextDelta { text } => {
                print!("{}", self.answer.escape(text));
                let _ = std::io::stdout().flush();
                self.at_line_start = text.ends_with('\n');
            }
            Event::ReasoningDelta { text } => self.reasoning(text),
            Event::Usage { .. } => {}
            Event::ToolCall { name, arguments, .. } => {
                self.end_line();
                eprintln!("→ {}", terminal_safe(&crate::agent::describe_call(name, arguments)));
            }
            Event::ToolResult { is_error, content, .. } => {
                let first = content.lines().next().unwrap_or_default();
                eprintln!("  {} {}", if *is_error { "✗" } else { "✓" }, terminal_safe(first));
            }
            Event::StepRecorded { step, commit, kind, .. } => {
                self.recorded.extend(ObjectId::from_hex(commit.as_bytes()).ok());
                self.end_line();
                eprintln!("  [step {step}: {kind} {}]", &commit[..commit.len().min(10)]);
            }
            Event::Retry { message } => eprintln!("  {}", terminal_safe(message)),
            Event::Notice { message } => {
                self.end_line();
                eprintln!("note: {}", terminal_safe(message));
            }
            Event::SessionStarted { session, model } => {
                eprintln!("session {session} ({})", terminal_safe(model))
            }
            Event::Error { message } => {
                self.end_line();
                eprintln!("error: {}", terminal_safe(message));
            }
            Event::Done { checkpoint, reason, .. } => {
                self.end_line();
                eprintln!("{reason}: {checkpoint}");
            }
        }
    }

    /// Streams reasoning to stderr, dimmed on a terminal, below the answer's line.
    fn reasoning(&mut self, text: &str) {
        if !self.show_reasoning {
            return;
        }
        if !self.reasoning_open {
            self.end_line();
            self.reasoning_open = true;
        }
        let text = self.reasoning.escape(text);
        match self.dim {
            true => eprint!("\x1b[2m{text}\x1b[0m"),
            false => eprint!("{text}"),
        }
    }

    /// Ends streamed reasoning's line before anything else is printed.
    fn end_reasoning(&mut self) {
        if !std::mem::take(&mut self.reasoning_open) {
            return;
        }
        let held = self.reasoning.finish();
        match self.dim {
            true => eprintln!("\x1b[2m{held}\x1b[0m"),
            false => eprintln!("{held}"),
        }
    }

    fn end_line(&mut self) {
        let held = self.answer.finish();
        if !held.is_empty() {
            print!("{held}");
            self.at_line_start = false;
        }
        if !self.at_line_start {
            println!();
            self.at_line_start = true;
        }
    }
}
