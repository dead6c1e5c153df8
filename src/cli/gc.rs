//! `cairn gc [--keep DURATION]`: drop archive refs older than the window, caches of
//! removed worktrees and files crashes left behind, and merge cairn's small packs. Session refs
//! are never removed.

use std::process::ExitCode;

use crate::history;

use super::CommandError;
use super::common::{open_store, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep archive refs younger than this (e.g. 30d, 2w, 12h).
    #[arg(long, default_value = "30d", value_parser = history::parse_keep)]
    keep: std::time::Duration,
    /// Only say what would be removed.
    #[arg(long)]
    dry_run: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let store = open_store()?;
    let report = history::gc(&store, args.keep, args.dry_run)?;
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    if report.is_empty() {
        println!("Nothing to remove.");
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if args.dry_run { "Would remove" } else { "Removed" };
    for archive in &report.archives {
        println!(
            "{verb} {} ({} days old, {})",
            archive.name,
            archive.age_days,
            &archive.commit[..archive.commit.len().min(10)]
        );
    }
    for path in &report.files {
        println!("{verb} {}", path.display());
    }
    if report.packs_merged > 0 {
        println!("Merged {} of cairn's packs into one.", report.packs_merged);
    }
    Ok(ExitCode::SUCCESS)
}
