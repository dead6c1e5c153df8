//! `cairn push [REMOTE] [SESSION…|--all] [--force]`: publish sessions through `git push`,
//! after showing what goes out and refusing when it looks like it holds a secret.

use std::process::ExitCode;

use super::CommandError;
use super::common::{format_bytes, open_store, print_json};
use crate::history::share;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A remote, then sessions; with no remote, the branch's upstream remote or `origin`.
    /// With no session, the current one.
    names: Vec<String>,
    /// Push every session.
    #[arg(long, conflicts_with = "names")]
    all: bool,
    /// Push project memory (refs/cairn/memory) too.
    #[arg(long)]
    memory: bool,
    /// Push even if something looks like a secret.
    #[arg(long)]
    force: bool,
    /// Show what would be pushed, and push nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let store = open_store()?;
    let repo = store.repo();
    let mut names = args.names.as_slice();
    let remote = match names.first() {
        Some(first) if share::remotes(repo).contains(first) => {
            names = &names[1..];
            first.clone()
        }
        _ => share::default_remote(repo)?,
    };
    // `[memory] push = true` sends project memory whenever there is some.
    let by_config = || -> Result<bool, CommandError> {
        let config = crate::config::load(
            Some(&store.project()),
            &crate::config::Env::from_process(),
            &crate::config::Flags::default(),
        )
        .map_err(super::config::config_error)?;
        Ok(config.memory.push.value
            && crate::git::refs::read_ref(repo, share::MEMORY_REF)?.is_some())
    };
    let memory = args.memory || by_config()?;
    let sessions: Vec<String> = if args.all {
        store.sessions()?.into_iter().map(|s| s.id).collect()
    } else if names.is_empty() {
        match store.current_session()? {
            Some(current) => vec![current],
            // `cairn push --memory` alone pushes just the memory.
            None if memory => Vec::new(),
            None => return Err(crate::checkpoint::Error::NoCurrentSession.into()),
        }
    } else {
        names.iter().map(|name| store.resolve(name).map(|c| c.session)).collect::<Result<_, _>>()?
    };
    if sessions.is_empty() && !memory {
        return Err(CommandError::user("there are no sessions to push"));
    }
    let plan = share::plan_push(&store, &remote, &sessions, memory)?;
    if args.json {
        print_json(&plan)?;
    } else {
        eprintln!("Pushing to {remote}:");
        for session in &plan.sessions {
            eprintln!("  {}  {} steps ({} new)", session.id, session.steps, session.new_steps);
        }
        if let Some(memory) = &plan.memory {
            eprintln!("  project memory at {}", &memory[..memory.len().min(10)]);
        }
        eprintln!("  new content: {}", format_bytes(plan.new_bytes));
        for found in &plan.secrets {
            eprintln!(
                "  looks like a {}: {} in step {} of {}",
                found.kind,
                crate::text::terminal_safe(&found.path),
                found.step,
                found.session
            );
        }
    }
    if !plan.secrets.is_empty() && !args.force {
        return Err(CommandError::user(format!(
            "refusing to push: {} thing(s) that look like secrets",
            plan.secrets.len()
        ))
        .with_hint(
            "remove them with `cairn rewind` to a step before they appeared, or push anyway \
             with --force",
        ));
    }
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    share::push(&store, &plan)?;
    if !args.json {
        eprintln!("Pushed {} session(s) to {remote}.", plan.sessions.len());
    }
    Ok(ExitCode::SUCCESS)
}
