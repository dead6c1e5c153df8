//! `cairn fetch [REMOTE]`: bring a remote's sessions here through `git fetch`, never
//! overwriting a local session that has diverged.

use std::process::ExitCode;

use super::CommandError;
use super::common::{open_store, print_json};
use crate::share::{self, Fetched};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The remote; by default the branch's upstream remote or `origin`.
    remote: Option<String>,
    /// Print what happened to each session as JSON.
    #[arg(long)]
    json: bool,
    /// Leave the remote's memory at refs/cairn/remotes/<remote>/memory without merging it
    /// (`cairn memory merge` does it later).
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
    let fetched = share::fetch(&store, &remote)?;
    let merged = match &fetched.memory {
        Some(name) if !args.no_merge => {
            let theirs = crate::checkpoint::refs::read_ref(store.repo(), name)?;
            match theirs {
                Some(theirs) => Some(crate::memory::Memory::open(&store)?.merge(theirs, &remote)?),
                None => None,
            }
        }
        _ => None,
    };
    if args.json {
        print_json(&serde_json::json!({
            "sessions": fetched.sessions,
            "memory": fetched.memory,
            "memory_merge": merged,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if fetched.sessions.is_empty() {
        println!("{remote} has no sessions.");
    }
    if let Some(memory) = &fetched.memory {
        println!("memory     {memory}");
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
    Ok(ExitCode::SUCCESS)
}
