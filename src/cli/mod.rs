//! The command line: one file per command. Each command parses its arguments, calls the
//! library, and prints; no logic of its own beyond presentation.

mod blame;
mod checkpoint;
mod common;
mod config;
mod demo;
mod diff;
mod error;
mod export;
mod fetch;
mod gc;
mod hook;
mod init;
mod interactive;
mod land;
mod launch;
mod log;
mod mcp;
mod memory;
mod push;
mod render;
mod resume;
mod rewind;
mod run;
mod sessions;
mod show;
mod trust;

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
    /// Start an interactive session with this prompt.
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
}

/// Parses the process arguments, runs the command, and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // Exit 2 blocks the host agent's action for a hook of Claude Code or Gemini
            // CLI; a mistyped hook command must not stop their work.
            let hook = std::env::args().nth(1).as_deref() == Some("hook");
            let code = match (err.use_stderr(), hook) {
                (false, _) => 0,
                (true, true) => 1,
                (true, false) => 2,
            };
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, CommandError> {
    let Some(command) = cli.command else {
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
    }
}
