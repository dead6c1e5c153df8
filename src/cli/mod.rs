//! The command line: one file per command. Each command parses its arguments, calls the
//! library, and prints; no logic of its own beyond presentation.

mod blame;
mod checkpoint;
mod common;
mod completions;
mod config;
mod demo;
mod diff;
mod error;
mod export;
mod fetch;
mod gc;
mod hardening;
mod hook;
mod hook_setup;
mod init;
mod interactive;
mod land;
mod launch;
mod log;
mod man;
mod mcp;
mod memory;
mod panic;
mod push;
mod render;
mod resume;
mod rewind;
mod run;
mod sessions;
mod show;
mod suggest;
mod trust;
mod usage;

use std::ffi::OsString;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::{CommandError, ErrorKind};

/// A terminal coding agent whose every step is a git commit.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, propagate_version = true)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Start an interactive session with this prompt (`cairn -- WORD` for a one-word
    /// prompt that looks like a command).
    prompt: Option<String>,
    #[command(flatten)]
    interactive: interactive::Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one headless turn: the answer on stdout, tool activity on stderr.
    Run(run::Args),
    /// Continue a session from its tip or any checkpoint.
    Resume(resume::Args),
    /// An offline, scripted session in a temporary repository: see what cairn does.
    Demo(demo::Args),
    /// Create a git repository here (the equivalent of `git init`).
    Init(init::Args),
    /// Record the workspace now as a step of the current session.
    Checkpoint(checkpoint::Args),
    /// Record a hook call of Claude Code, Codex or Gemini CLI as steps of a session.
    Hook(hook::Args),
    /// List the sessions in this repository.
    Sessions(sessions::Args),
    /// List the steps of a session.
    Log(log::Args),
    /// Show one step: its message, tool calls and diff.
    Show(show::Args),
    /// Show the workspace difference between two checkpoints.
    Diff(diff::Args),
    /// Move a session back to one of its steps, workspace included.
    Rewind(rewind::Args),
    /// Inspect the configuration.
    Config(config::Args),
    /// The MCP servers: whether they start, and the tools they offer.
    Mcp(mcp::Args),
    /// Drop old archive refs and stale caches; merge cairn's small packs.
    Gc(gc::Args),
    /// A session as a review document (Markdown, JSON or an HTML page).
    Export(export::Args),
    /// Publish sessions to a git remote.
    Push(push::Args),
    /// Bring a git remote's sessions here.
    Fetch(fetch::Args),
    /// For each line of a file, the step that wrote it.
    Blame(blame::Args),
    /// Turn a session's changes into one ordinary commit on the current branch.
    Land(land::Args),
    /// Project and user memory: show, search, add, edit, log, forget, merge.
    Memory(memory::Args),
    /// Let this repository's cairn.toml set providers, the model and MCP servers.
    Trust(trust::Args),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(completions::Args),
    /// Write man pages into a directory.
    #[command(hide = true)]
    GenerateMan(man::Args),
}

/// Parses the process arguments, runs the command, and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    hardening::harden();
    panic::install();
    panic::catch(|| parse_and_run(std::env::args_os().collect()))
}

fn parse_and_run(args: Vec<OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => {
            // Exit 2 blocks the host agent's action for a hook of Claude Code or Gemini
            // CLI; a mistyped hook command must not stop their work.
            let mistyped = suggest::mistyped_first_word(&args);
            let hook = args.get(1).is_some_and(|arg| arg == "hook")
                || mistyped.as_ref().is_some_and(|(_, command)| command == "hook");
            let code = match (err.use_stderr(), hook) {
                (false, _) => 0,
                (true, true) => 1,
                (true, false) => 2,
            };
            match (err.use_stderr(), mistyped) {
                (true, Some((word, command))) => eprintln!("{}", not_a_command(&word, &command)),
                _ => {
                    let _ = err.print();
                }
            }
            return ExitCode::from(code);
        }
    };
    match run(cli, &args) {
        Ok(code) => code,
        Err(err) => {
            // Errors quote names from outside (paths, refs, remote output): escaped like
            // every other text from outside, so an error cannot drive the terminal.
            eprintln!("{}", crate::text::terminal_safe(&err.to_string()));
            ExitCode::from(err.exit_code())
        }
    }
}

/// The error for a first word that is a near miss of a command.
fn not_a_command(word: &str, command: &str) -> CommandError {
    CommandError::usage(format!("'{word}' is not a cairn command; did you mean `cairn {command}`?"))
        .with_hint(format!("to start a session with the prompt '{word}', run `cairn -- {word}`"))
}

fn run(cli: Cli, args: &[OsString]) -> Result<ExitCode, CommandError> {
    let Some(command) = cli.command else {
        if let Some(word) = cli.prompt.as_deref()
            && !suggest::prompt_forced(args)
            && let Some(command) = suggest::near_command(word)
        {
            if !std::io::stdin().is_terminal() {
                return Err(not_a_command(word, &command));
            }
            if confirm(&format!("'{word}' is not a cairn command. Run `cairn {command}`?"))? {
                return Ok(parse_and_run(suggest::corrected(args, word, &command)));
            }
        }
        return interactive::run(cli.interactive, cli.prompt);
    };
    match command {
        Command::Run(args) => run::run(args),
        Command::Resume(args) => resume::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Init(args) => init::run(args),
        Command::Checkpoint(args) => checkpoint::run(args),
        Command::Hook(args) => hook::run(args),
        Command::Sessions(args) => sessions::run(args),
        Command::Log(args) => log::run(args),
        Command::Show(args) => show::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Rewind(args) => rewind::run(args),
        Command::Gc(args) => gc::run(args),
        Command::Export(args) => export::run(args),
        Command::Push(args) => push::run(args),
        Command::Fetch(args) => fetch::run(args),
        Command::Blame(args) => blame::run(args),
        Command::Land(args) => land::run(args),
        Command::Memory(args) => memory::run(args),
        Command::Config(args) => config::run(args),
        Command::Mcp(args) => mcp::run(args),
        Command::Trust(args) => trust::run(args),
        Command::Completions(args) => completions::run(args),
        Command::GenerateMan(args) => man::run(args),
    }
}

/// Asks a yes-or-no question at the terminal; yes unless the answer starts with `n`.
fn confirm(question: &str) -> Result<bool, CommandError> {
    eprint!("{question} [Y/n] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(!answer.trim_start().to_ascii_lowercase().starts_with('n'))
}
