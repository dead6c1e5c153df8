//! `cairn [PROMPT]`: an interactive session. Line editing with history (a trailing `\`
//! continues a line), streamed answers, a spinner while the model thinks, approval
//! questions before writes and commands, and slash commands. Ctrl-C cancels the current
//! turn (the session stays at its last complete step); Ctrl-D quits.

use std::io::{BufRead as _, IsTerminal, Write as _};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustyline::error::ReadlineError;

use crate::agent::Restored;
use crate::agent::approval::{Action, Answer, Asker, Grant, Request};
use crate::agent::{self, Agent, Event, TurnEnd};
use crate::checkpoint::Session;
use crate::config::{Approval, Flags, Reasoning};
use crate::sandbox::Mode;

use super::common::color_stdout;
use super::launch::{self, Context};
use super::run::drive;
use super::{CommandError, log, render};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// ask, auto, or read-only.
    #[arg(long, value_parser = str::parse::<Approval>)]
    pub approval: Option<Approval>,
    /// How commands are confined: workspace-write (the default), read-only, or off.
    #[arg(long, value_parser = str::parse::<Mode>)]
    pub sandbox: Option<Mode>,
    /// The model, as provider/model.
    #[arg(long)]
    pub model: Option<String>,
    /// How hard the model thinks: low, medium, high, or off (the model's default).
    #[arg(long, value_parser = str::parse::<Reasoning>)]
    pub reasoning: Option<Reasoning>,
    /// Do not print the model's reasoning (it is still recorded).
    #[arg(long)]
    pub hide_reasoning: bool,
}

const HELP: &str = "\
/rewind [N]   go back to step N (default: one step), workspace and conversation
/undo         go back one step
/log          the steps of this session
/diff         what the last step changed
/model P/M    use another model from now on
/reasoning [L] how hard the model thinks (low, medium, high, off); alone, the setting
/approvals    what \"always\" answers granted; /approvals revoke N|all
/help         this list
/quit         leave (Ctrl-D works too)
End a line with \\ to continue it on the next. Ctrl-C cancels a running turn.";

/// `cairn [PROMPT]`: a new interactive session.
pub fn run(args: Args, prompt: Option<String>) -> Result<ExitCode, CommandError> {
    if !std::io::stdin().is_terminal() {
        return Err(CommandError::usage("the interactive session needs a terminal")
            .with_hint("use `cairn run PROMPT` for a headless run"));
    }
    let context = Context::load(Flags {
        model: args.model,
        approval: args.approval,
        sandbox: args.sandbox,
        reasoning: args.reasoning,
    })?;
    // A placeholder until the first prompt, which titles the session (`Agent::turn`).
    let title = prompt.as_deref().unwrap_or("interactive session");
    let session = context.store.start_session(title, None, None)?;
    run_session(context, session, Restored::default(), prompt, !args.hide_reasoning)
}

/// What the user chose for the rest of the session, kept across `/model`.
struct Choices {
    /// `--reasoning` or `/reasoning`; `None` follows the provider's setting.
    reasoning: Option<Reasoning>,
    show_reasoning: bool,
}

/// Runs an interactive session on `session`, continuing from `restored`.
pub fn run_session(
    context: Context,
    mut session: Session,
    restored: Restored,
    first_prompt: Option<String>,
    show_reasoning: bool,
) -> Result<ExitCode, CommandError> {
    let reasoning = context.config.reasoning_flag.as_ref().map(|flag| flag.value);
    let mut choices = Choices { reasoning, show_reasoning };
    if let Some(notice) = context.config_notice() {
        eprintln!("note: {notice}");
    }
    let runtime = launch::runtime()?;
    let (model, client) = runtime.block_on(context.model())?;
    session.info.model.get_or_insert_with(|| model.to_string());
    let history = context.store.private_dir().join("history");
    let screen = Screen::default();
    let asker = TerminalAsker { screen: screen.clone() };
    let mcp = runtime.block_on(launch::start_mcp(&context));
    let servers = started_servers(&mcp);
    let mut agent =
        launch::agent(context, session, restored, model.clone(), client, Box::new(asker), mcp)?;
    let mut editor = rustyline::DefaultEditor::new().map_err(CommandError::internal_error)?;
    let _ = editor.load_history(&history);
    greet(&mut agent, &model.to_string(), &servers);
    let mut pending = first_prompt;
    loop {
        let line = match pending.take() {
            Some(line) => line,
            None => match read_input(&mut editor) {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(err) => return Err(CommandError::internal_error(err)),
            },
        };
        let line = line.trim().to_string();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line.as_str());
        if let Some(command) = line.strip_prefix('/') {
            match slash(command, &mut agent, &runtime, &mut choices) {
                Ok(true) => break,
                Ok(false) => {}
                Err(err) => eprintln!("{err}"),
            }
            continue;
        }
        prompt_turn(&mut agent, &runtime, &screen, &line, choices.show_reasoning);
    }
    let _ = editor.save_history(&history);
    let mut plain = super::run::Printer::new(false, choices.show_reasoning);
    runtime.block_on(super::run::end_session(&mut agent, &mut |event| plain.event(&event)));
    runtime.block_on(agent.shutdown());
    Ok(ExitCode::SUCCESS)
}

/// The MCP servers that started, with their tool counts, for the greeting.
fn started_servers(mcp: &crate::mcp::McpHub) -> Vec<String> {
    mcp.servers()
        .iter()
        .filter(|server| server.status == crate::mcp::Status::Started)
        .map(|server| {
            let noun = if server.tools.len() == 1 { "tool" } else { "tools" };
            format!("{} ({} {noun})", server.config.name, server.tools.len())
        })
        .collect()
}

fn greet(agent: &mut Agent, model: &str, servers: &[String]) {
    let mode = agent.policy_mut().mode();
    eprintln!(
        "cairn: session {} with {model} ({mode} approval). /help lists commands; Ctrl-D quits.",
        agent.session().info.id,
    );
    if !servers.is_empty() {
        eprintln!("MCP servers: {}", servers.join(", "));
    }
    if !agent.is_watching() {
        eprintln!(
            "note: no file watcher is available here; your edits are found by scanning before each model call"
        );
    }
}

/// Runs one prompt to the end of its turn, showing it as it streams.
fn prompt_turn(
    agent: &mut Agent,
    runtime: &tokio::runtime::Runtime,
    screen: &Screen,
    line: &str,
    show_reasoning: bool,
) {
    let mut printer = InteractivePrinter::new(screen.clone());
    let mut plain = super::run::Printer::new(false, show_reasoning);
    printer.thinking();
    let outcome =
        runtime.block_on(drive(agent, line, None, &mut |event| printer.event(&event, &mut plain)));
    printer.stop();
    match outcome {
        Ok(TurnEnd::Cancelled) => {
            eprintln!("(cancelled; the session stays at step {})", agent.session().steps)
        }
        Ok(_) => {}
        Err(err) => eprintln!("error: {err}"),
    }
}

/// Reads one prompt, joining lines that end with `\`. `None` at end of input.
fn read_input(editor: &mut rustyline::DefaultEditor) -> rustyline::Result<Option<String>> {
    let mut text = String::new();
    let mut prompt = "› ";
    loop {
        match editor.readline(prompt) {
            Ok(line) => {
                if let Some(head) = line.strip_suffix('\\') {
                    text.push_str(head);
                    text.push('\n');
                    prompt = "… ";
                    continue;
                }
                text.push_str(&line);
                return Ok(Some(text));
            }
            Err(ReadlineError::Interrupted) => {
                text.clear();
                prompt = "› ";
            }
            Err(ReadlineError::Eof) => return Ok(None),
            Err(err) => return Err(err),
        }
    }
}

/// Runs a slash command; `Ok(true)` means quit.
fn slash(
    command: &str,
    agent: &mut Agent,
    runtime: &tokio::runtime::Runtime,
    choices: &mut Choices,
) -> Result<bool, CommandError> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let name = words.first().copied().unwrap_or_default();
    let argument = words.get(1).copied();
    match name {
        "quit" | "exit" => return Ok(true),
        "approvals" => approvals(agent, &words[1..])?,
        "help" => eprintln!("{HELP}"),
        "undo" => rewind(agent, None)?,
        "rewind" => {
            let step = argument
                .map(|n| {
                    n.parse::<u64>().map_err(|_| {
                        CommandError::usage(format!("/rewind takes a step number, not '{n}'"))
                    })
                })
                .transpose()?;
            rewind(agent, step)?;
        }
        "log" => {
            let steps = agent.store().steps(&agent.session().info.id)?;
            let prices = super::usage::Prices::configured();
            log::print_steps(agent.store(), &steps, &prices, false, color_stdout())?;
        }
        "diff" => match agent.session().tip {
            Some(tip) => {
                let (from, to) = log::step_trees(agent.store(), tip)?;
                let diff =
                    render::render(agent.store().repo(), from, Some(to), false, color_stdout())?;
                if diff.is_empty() {
                    eprintln!("no changes in step {}", agent.session().steps);
                } else {
                    print!("{diff}");
                }
            }
            None => eprintln!("nothing recorded yet"),
        },
        "model" => {
            let Some(name) = argument else {
                return Err(CommandError::usage("/model takes provider/model"));
            };
            let context = Context::load(Flags {
                model: Some(name.to_string()),
                reasoning: choices.reasoning,
                ..Flags::default()
            })?;
            let (model, client) = runtime.block_on(context.model())?;
            agent.set_model(client, model.model.clone(), model.to_string());
            agent.set_reasoning(launch::reasoning_for(&context.config, &model));
            eprintln!("Using {model} from now on.");
        }
        "reasoning" => match argument {
            None => eprintln!("Reasoning: {}.", describe_reasoning(agent.reasoning())),
            Some(level) => {
                let level = level.parse::<Reasoning>().map_err(CommandError::usage)?;
                choices.reasoning = Some(level);
                agent.set_reasoning(launch::client_reasoning(level));
                eprintln!("Reasoning from now on: {}.", describe_reasoning(agent.reasoning()));
            }
        },
        other => eprintln!("unknown command /{other}; /help lists them"),
    }
    Ok(false)
}

/// A reasoning setting in words, for `/reasoning`.
fn describe_reasoning(reasoning: Option<crate::llm::Reasoning>) -> String {
    use crate::llm::Reasoning as Level;
    match reasoning {
        None => "off (the model's own default)".to_owned(),
        Some(Level::Low) => "low".to_owned(),
        Some(Level::Medium) => "medium".to_owned(),
        Some(Level::High) => "high".to_owned(),
        Some(Level::Budget(tokens)) => format!("a thinking budget of {tokens} tokens"),
    }
}

/// The user's rewind: back to `step` (default one step back), workspace and conversation.
fn rewind(agent: &mut Agent, step: Option<u64>) -> Result<(), CommandError> {
    let id = agent.session().info.id.clone();
    let current = agent.session().steps;
    let step = step.unwrap_or(current.saturating_sub(1));
    if step == 0 || step > current {
        return Err(CommandError::user(format!(
            "there is no step {step} to go back to (this session has {current})"
        )));
    }
    let store = agent.store();
    let target = store.resolve(&format!("{id}@{step}"))?;
    let rewound = crate::history::rewind(store, &target)?;
    let (outcome, reverted) = (rewound.outcome, rewound.reverted_facts);
    if !reverted.is_empty() {
        eprintln!("Reverted project facts written after that step: {}.", reverted.join(", "));
    }
    super::common::report_kept(&outcome.applied.kept);
    if let Some(saved) = &outcome.saved_edits {
        eprintln!("Saved your unrecorded edits as step {} first.", saved.number);
    }
    let session = store.open_session(&id)?;
    let state = store.read_state(target.commit)?;
    let restored = agent::Restored::from_state(&state).map_err(CommandError::internal_error)?;
    agent.reset_to(session, restored);
    eprintln!(
        "Back at step {step} ({} written, {} deleted).",
        outcome.applied.written, outcome.applied.deleted
    );
    Ok(())
}

/// The spinner shared by the printer and the approval prompt.
#[derive(Clone, Default)]
struct Screen {
    spinner: Arc<Mutex<Option<indicatif::ProgressBar>>>,
}

impl Screen {
    fn spin(&self) {
        let Ok(mut spinner) = self.spinner.lock() else { return };
        if spinner.is_none() {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message("thinking…");
            bar.enable_steady_tick(Duration::from_millis(100));
            *spinner = Some(bar);
        }
    }

    fn clear(&self) {
        if let Ok(mut spinner) = self.spinner.lock()
            && let Some(bar) = spinner.take()
        {
            bar.finish_and_clear();
        }
    }

    /// Prints with the spinner out of the way: a line written under a drawn spinner would
    /// make its next redraw erase that line instead, and leave a stale spinner behind.
    fn suspend(&self, print: impl FnOnce()) {
        match self.spinner.lock() {
            Ok(spinner) => match spinner.as_ref() {
                Some(bar) => bar.suspend(print),
                None => print(),
            },
            Err(_) => print(),
        }
    }
}

struct InteractivePrinter {
    screen: Screen,
}

impl InteractivePrinter {
    fn new(screen: Screen) -> Self {
        InteractivePrinter { screen }
    }

    fn thinking(&self) {
        self.screen.spin();
    }

    fn stop(&self) {
        self.screen.clear();
    }

    fn event(&mut self, event: &Event, out: &mut super::run::Printer) {
        match event {
            // The session line is printed once at the start, and the end needs no line.
            Event::SessionStarted { .. } | Event::Done { .. } => {}
            // The answer streams in pieces of a line, and a tool call may ask a question:
            // the spinner goes until the next wait.
            Event::TextDelta { .. }
            | Event::ReasoningDelta { .. }
            | Event::ToolCall { .. }
            | Event::Error { .. } => {
                self.screen.clear();
                out.event(event);
            }
            other => self.screen.suspend(|| out.event(other)),
        }
        if matches!(event, Event::ToolResult { .. } | Event::StepRecorded { .. })
            && !matches!(event, Event::StepRecorded { kind, .. } if kind == "model")
        {
            self.screen.spin();
        }
    }
}

/// Asks at the terminal before a write, a command, an MCP tool or a user-tier fact,
/// showing what would happen: the diff a write would make, the whole command line and
/// whether it runs sandboxed, and what "always" would grant.
struct TerminalAsker {
    screen: Screen,
}

impl Asker for TerminalAsker {
    fn ask(&mut self, request: &Request<'_>, offer: &Grant) -> Answer {
        self.screen.clear();
        let safe = crate::text::terminal_safe;
        match request.action {
            Action::Write { diff: Some(diff) } => {
                for line in diff.lines() {
                    eprintln!("  {}", safe(line));
                }
            }
            Action::Shell { command, sandbox } => {
                eprintln!("  $ {}", safe(command));
                eprintln!("  ({sandbox})");
            }
            Action::Unconfined { command, why } => {
                eprintln!("  $ {}", safe(command));
                eprintln!("  (OUTSIDE the sandbox: {})", safe(why));
            }
            Action::Write { diff: None } | Action::Mcp { .. } | Action::RememberUser => {}
        }
        eprint!(
            "Allow {}? [y]es / [n]o / [a]lways ({offer}): ",
            safe(&crate::text::one_line(request.summary))
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        let answer = match answer.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => Answer::Once,
            "a" | "always" => Answer::Always,
            _ => Answer::Deny(format!("the user declined `{}`", request.summary)),
        };
        self.screen.spin();
        answer
    }
}

/// `/approvals`: what "always" answers granted, and `/approvals revoke N|all`.
fn approvals(agent: &mut Agent, arguments: &[&str]) -> Result<(), CommandError> {
    let policy = agent.policy_mut();
    match arguments {
        [] => {
            if policy.grants().is_empty() {
                eprintln!("No approvals granted in this session ({} approval).", policy.mode());
            }
            for (index, grant) in policy.grants().iter().enumerate() {
                eprintln!("{}. {grant}", index + 1);
            }
            if !policy.grants().is_empty() {
                eprintln!("/approvals revoke N takes one back; /approvals revoke all, every one.");
            }
        }
        ["revoke", "all"] => {
            let revoked = policy.revoke_all();
            eprintln!("Revoked {} approvals; every write and command asks again.", revoked.len());
        }
        ["revoke", number] => {
            let index = number.parse::<usize>().ok().and_then(|n| n.checked_sub(1));
            match index.and_then(|index| policy.revoke(index)) {
                Some(grant) => eprintln!("Revoked: {grant}."),
                None => {
                    return Err(CommandError::usage(format!(
                        "there is no approval {number}; /approvals lists them"
                    )));
                }
            }
        }
        _ => {
            return Err(CommandError::usage(
                "/approvals takes nothing, or revoke N, or revoke all",
            ));
        }
    }
    Ok(())
}
