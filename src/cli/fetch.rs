//! `cairn fetch [REMOTE]`: bring a remote's sessions here through `git fetch`, never
//! overwriting a local session that has diverged. The remote's memory is fetched beside
//! ours and merged only with `--merge-memory` or `[memory] merge_on_fetch = true`.

use std::process::ExitCode;

use super::CommandError;
use super::common::{open_store, print_json};
use crate::history::share::{self, Fetched};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The remote; by default the branch's upstream remote or `origin`.
    remote: Option<String>,
    /// Print what happened to each session as JSON.
    #[arg(long)]
    json: bool,
    /// Merge the remote's memory into this one; its facts are marked
    /// source = "remote:<remote>". Without it (or `[memory] merge_on_fetch = true`), the
    /// memory stays at refs/cairn/remotes/<remote>/memory for `cairn memory merge`.
    #[arg(long, conflicts_with = "no_merge")]
    merge_memory: bool,
    /// Do not merge the remote's memory, even with `[memory] merge_on_fetch = true`.
    #[arg(long)]
    no_merge: bool,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let store = open_store()?;
    let remote = match args.remote {
        Some(remote) if share::remotes(store.repo()).contains(&remote) => remote,
        Some(remote) => return Err(share::Error::UnknownRemote(remote).into()),
        None => share::default_remote(store.repo())?,
    };
    // A remote's memory is another clone's data: merged only when the user asks.
    let merge = !args.no_merge && (args.merge_memory || merge_on_fetch(&store)?);
    let fetched = share::fetch(&store, &remote)?;
    let merged = match &fetched.memory {
        Some(name) if merge => {
            let theirs = crate::git::refs::read_ref(store.repo(), name)?;
            match theirs {
                Some(theirs) => Some(
                    crate::memory::Memory::open(store.writing_repo(), store.redacts_secrets())?
                        .merge(theirs, &remote)?,
                ),
                None => None,
            }
        }
        _ => None,
    };
    // Like `git fetch` with a rejected ref: the rest is fetched, and the exit says so.
    let status = match fetched.sessions.iter().any(|s| matches!(s, Fetched::Rejected { .. })) {
        true => ExitCode::from(1),
        false => ExitCode::SUCCESS,
    };
    if args.json {
        print_json(&serde_json::json!({
            "sessions": fetched.sessions,
            "memory": fetched.memory,
            "memory_merge": merged,
        }))?;
        return Ok(status);
    }
    if fetched.sessions.is_empty() {
        println!("{remote} has no sessions.");
    }
    if let Some(memory) = &fetched.memory {
        println!("memory     {memory}");
        if merged.is_none() {
            println!(
                "           not merged: `cairn memory merge {remote}` (or `cairn fetch \
                 --merge-memory`) takes its facts, marked as {remote}'s"
            );
        }
    }
    if let Some(report) = &merged {
        super::memory::print_merge(&remote, report);
    }
    for outcome in &fetched.sessions {
        match outcome {
            Fetched::New { id } => println!("new        {id}"),
            Fetched::Updated { id } => println!("updated    {id}"),
            Fetched::UpToDate { id } => println!("up to date {id}"),
            Fetched::LocalAhead { id } => {
                println!("ahead      {id} (yours has steps {remote}'s lacks)")
            }
            Fetched::Diverged { id, remote_ref } => println!(
                "diverged   {id}: kept yours; {remote}'s is {remote_ref} \
                 (continue it with `cairn resume {remote_ref} --fork`)"
            ),
            Fetched::Rejected { id, reason, kept_as } => {
                println!("rejected   {id}: {reason}");
                eprintln!(
                    "warning: session {id} from {remote} was not made available; \
                     its steps are kept as {kept_as} for inspection (`git log {kept_as}`)"
                );
            }
        }
    }
    Ok(status)
}

/// `[memory] merge_on_fetch`, which only the user's own configuration can turn on.
fn merge_on_fetch(store: &crate::checkpoint::Store) -> Result<bool, CommandError> {
    let config = crate::config::load(
        Some(&store.project()),
        &crate::config::Env::from_process(),
        &crate::config::Flags::default(),
    )
    .map_err(super::config::config_error)?;
    Ok(config.memory.merge_on_fetch.value)
}
