//! `cairn generate-man DIR` (hidden): man pages for cairn and each of its commands
//! (`cairn.1`, `cairn-run.1`, `cairn-memory-show.1`, …), for packagers and
//! `cargo install` users who want `man cairn`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory as _;

use super::{Cli, CommandError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The directory to write the pages into (created if missing).
    dir: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let failed = |err: std::io::Error| {
        CommandError::user(format!("cannot write man pages to {}: {err}", args.dir.display()))
            .with_hint("name a directory you can write to")
    };
    std::fs::create_dir_all(&args.dir).map_err(failed)?;
    clap_mangen::generate_to(Cli::command(), &args.dir).map_err(failed)?;
    eprintln!("Wrote cairn.1 and a page per command to {}.", args.dir.display());
    Ok(ExitCode::SUCCESS)
}
