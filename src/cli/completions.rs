//! `cairn completions SHELL`: the shell's completion script on stdout, generated from the
//! same argument definitions the parser uses, so it cannot fall out of date.

use std::process::ExitCode;

use clap::CommandFactory as _;

use super::{Cli, CommandError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for.
    shell: clap_complete::Shell,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "cairn", &mut script);
    // Through `print!`, so a closed pipe ends quietly like every other listing does.
    print!("{}", String::from_utf8_lossy(&script));
    Ok(ExitCode::SUCCESS)
}
