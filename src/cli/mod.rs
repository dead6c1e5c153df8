//! The command line: one file per command. Each command parses its arguments, calls the
//! library, and prints; no logic of its own beyond presentation.

mod config;
mod error;
mod init;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::{CommandError, ErrorKind};

/// A terminal coding agent whose every step is a git commit.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a git repository here (the equivalent of `git init`).
    Init(init::Args),
    /// Inspect the configuration.
    Config(config::Args),
}

/// Parses the process arguments, runs the command, and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
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
    match cli.command {
        Command::Init(args) => init::run(args),
        Command::Config(args) => config::run(args),
    }
}
