//! Sessions travel like any git history. Push and fetch run the `git` CLI (gix cannot
//! push), so users' remotes, credentials and transports work as they do for `git push`.
//!
//! What a remote last had of a session is kept in `refs/cairn/remotes/<remote>/sessions/`.
//! A fetch never overwrites a local session that has diverged from the remote's: both are
//! kept, the remote's under that tracking ref.

use std::path::Path;
use std::process::Command;

use gix::ObjectId;
use serde::Serialize;

use gix::objs::tree::EntryKind;

use crate::checkpoint::{self, Context as _, Store, refs, restore};
use crate::secrets;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no remote named '{0}' in this repository")]
    UnknownRemote(String),
    #[error("this repository has no project memory ({MEMORY_REF}) to push")]
    NoMemory,
    #[error("`{command}` failed ({status})")]
    Git { command: String, status: String },
    #[error("could not run git: {0}")]
    NoGit(std::io::Error),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::Error),
    #[error(transparent)]
    Memory(#[from] crate::memory::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Project memory (tier 3), and where a remote's is kept after a fetch.
pub use crate::checkpoint::refs::MEMORY_REF;

pub fn remote_memory_ref(remote: &str) -> String {
    format!("refs/cairn/remotes/{remote}/memory")
}

/// Where a remote's sessions are tracked locally.
pub fn tracking_prefix(remote: &str) -> String {
    format!("refs/cairn/remotes/{remote}/sessions/")
}

/// The remotes configured in the repository.
pub fn remotes(repo: &gix::Repository) -> Vec<String> {
    repo.remote_names().into_iter().map(|name| name.to_string()).collect()
}

/// The current branch's upstream remote, else `origin`; it must exist.
pub fn default_remote(repo: &gix::Repository) -> Result<String> {
    let upstream = repo.head_name().ok().flatten().and_then(|branch| {
        repo.branch_remote_name(branch.shorten(), gix::remote::Direction::Push)
            .map(|name| name.as_bstr().to_string())
    });
    let name = upstream.unwrap_or_else(|| "origin".to_string());
    if remotes(repo).contains(&name) { Ok(name) } else { Err(Error::UnknownRemote(name)) }
}

/// A session about to be pushed.
#[derive(Debug, Clone, Serialize)]
pub struct Outgoing {
    pub id: String,
    #[serde(serialize_with = "checkpoint::step::serialize_hex")]
    pub tip: ObjectId,
    pub steps: u64,
    /// Steps the remote does not have yet, as far as this repository knows.
    pub new_steps: u64,
}

/// Something that looks like a secret in what a push would publish.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub session: String,
    pub step: u64,
    pub path: String,
    pub kind: &'static str,
}

/// What `cairn push` would send.
#[derive(Debug, Clone, Serialize)]
pub struct PushPlan {
    pub remote: String,
    pub sessions: Vec<Outgoing>,
    /// Project memory goes too (its tip), when asked for.
    pub memory: Option<String>,
    /// Bytes of the new blobs in those steps (uncompressed), a measure of what goes out.
    pub new_bytes: u64,
    pub secrets: Vec<Finding>,
}

/// Looks at what pushing `sessions` to `remote` would publish: steps, size, and anything
/// that looks like a secret in the transcript or the snapshots of steps the remote lacks.
pub fn plan_push(
    store: &Store,
    remote: &str,
    sessions: &[String],
    memory: bool,
) -> Result<PushPlan> {
    let repo = store.repo();
    let memory = match memory {
        true => Some(refs::read_ref(repo, MEMORY_REF)?.ok_or(Error::NoMemory)?.to_string()),
        false => None,
    };
    let mut plan = PushPlan {
        remote: remote.into(),
        sessions: Vec::new(),
        memory,
        new_bytes: 0,
        secrets: Vec::new(),
    };
    for id in sessions {
        let steps = store.steps(id)?;
        let known = refs::read_ref(repo, &format!("{}{id}", tracking_prefix(remote)))?;
        let already = known.and_then(|known| steps.iter().position(|s| s.commit == known));
        let fresh = &steps[already.map_or(0, |at| at + 1)..];
        for step in fresh {
            for (path, blob) in written_files(store, step.commit)? {
                let data = repo.find_object(blob).context(|| format!("reading {path}"))?;
                plan.new_bytes += data.data.len() as u64;
                for kind in secrets::kinds_in(&data.data) {
                    let finding =
                        Finding { session: id.clone(), step: step.step, path: path.clone(), kind };
                    plan.secrets.push(finding);
                }
            }
        }
        let tip = steps
            .last()
            .map(|s| s.commit)
            .ok_or_else(|| checkpoint::Error::UnknownSession(id.clone()))?;
        plan.sessions.push(Outgoing {
            id: id.clone(),
            tip,
            steps: steps.len() as u64,
            new_steps: fresh.len() as u64,
        });
    }
    if plan.memory.is_some() {
        // Facts written around cairn (plain git) or with redaction off were never redacted.
        let memory = crate::memory::MemoryStore::project(store.writing_repo());
        if let Some(tree) = memory.tree()? {
            for (slug, blob) in memory.fact_entries(tree)? {
                let data = repo.find_object(blob).context(|| format!("reading fact {slug}"))?;
                for kind in secrets::kinds_in(&data.data) {
                    plan.secrets.push(Finding {
                        session: MEMORY_REF.into(),
                        step: 0,
                        path: format!("facts/{slug}.md"),
                        kind,
                    });
                }
            }
        }
    }
    Ok(plan)
}

/// The files a step wrote relative to its parent, `.cairn/` included.
fn written_files(store: &Store, commit: ObjectId) -> Result<Vec<(String, ObjectId)>> {
    let parent = store.parent_commit(commit)?.map(|p| store.step_tree(p)).transpose()?;
    let changes = restore::diff_step_trees(store.repo(), parent, Some(store.step_tree(commit)?))?;
    Ok(changes
        .into_iter()
        .filter_map(|change| match change {
            restore::Change::Write { path, kind, id, .. } if kind != EntryKind::Commit => {
                Some((path.to_string(), id))
            }
            _ => None,
        })
        .collect())
}

/// Pushes the planned sessions' refs, then records what the remote now has.
///
/// A rewound session is no longer a descendant of what the remote has, so a session the
/// remote is known to hold (a tracking ref exists) is pushed with a lease on that tip: it
/// replaces exactly what this repository last pushed or fetched, never someone else's
/// newer steps.
pub fn push(store: &Store, plan: &PushPlan) -> Result<()> {
    let mut args = vec!["push".to_string()];
    for session in &plan.sessions {
        let tracking = format!("{}{}", tracking_prefix(&plan.remote), session.id);
        if let Some(known) = refs::read_ref(store.repo(), &tracking)? {
            args.push(format!("--force-with-lease={}:{known}", refs::session_ref(&session.id)));
        }
    }
    args.push(plan.remote.clone());
    args.extend(plan.sessions.iter().map(|s| format!("{0}:{0}", refs::session_ref(&s.id))));
    if plan.memory.is_some() {
        args.push(format!("{MEMORY_REF}:{MEMORY_REF}"));
    }
    run_git(store.root(), &args)?;
    for session in &plan.sessions {
        let tracking = format!("{}{}", tracking_prefix(&plan.remote), session.id);
        set_ref(store, &tracking, session.tip, "cairn: pushed")?;
    }
    Ok(())
}

/// What a fetch did with one of the remote's sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Fetched {
    /// A session this repository did not have.
    New {
        id: String,
    },
    /// The local session moved forward to the remote's tip.
    Updated {
        id: String,
    },
    UpToDate {
        id: String,
    },
    /// The local session has steps the remote lacks; it was left as it is.
    LocalAhead {
        id: String,
    },
    /// Both sides have steps the other lacks: the local session is kept, and the remote's
    /// stays under its tracking ref.
    Diverged {
        id: String,
        remote_ref: String,
    },
}

/// What a fetch brought.
#[derive(Debug, Clone, Serialize)]
pub struct FetchReport {
    pub sessions: Vec<Fetched>,
    /// Where the remote's project memory now is, if it has one.
    pub memory: Option<String>,
}

/// Fetches the remote's sessions into `refs/cairn/remotes/<remote>/sessions/` (and its
/// project memory into `refs/cairn/remotes/<remote>/memory`), and brings local sessions
/// up to date where that loses nothing.
pub fn fetch(store: &Store, remote: &str) -> Result<FetchReport> {
    let prefix = tracking_prefix(remote);
    let memory = remote_memory_ref(remote);
    run_git(
        store.root(),
        &[
            "fetch".into(),
            remote.into(),
            format!("+{}*:{prefix}*", refs::SESSIONS_PREFIX),
            // A pattern, so a remote without memory is not an error ('*' matches empty).
            format!("+{MEMORY_REF}*:{memory}*"),
        ],
    )?;
    let mut out = Vec::new();
    for (name, theirs) in refs::list(store.repo(), &prefix)? {
        let id = name[prefix.len()..].to_string();
        let local = refs::session_ref(&id);
        let outcome = match refs::read_ref(store.repo(), &local)? {
            None => {
                set_ref(store, &local, theirs, &format!("cairn: fetched from {remote}"))?;
                Fetched::New { id }
            }
            Some(ours) if ours == theirs => Fetched::UpToDate { id },
            Some(ours) if contains(store, theirs, ours)? => {
                set_ref(store, &local, theirs, &format!("cairn: fast-forward from {remote}"))?;
                Fetched::Updated { id }
            }
            Some(ours) if contains(store, ours, theirs)? => Fetched::LocalAhead { id },
            Some(_) => Fetched::Diverged { id, remote_ref: name },
        };
        out.push(outcome);
    }
    let memory = refs::read_ref(store.repo(), &memory)?.map(|_| memory);
    Ok(FetchReport { sessions: out, memory })
}

/// Whether `step` is `tip` or one of the steps before it in its session.
fn contains(store: &Store, tip: ObjectId, step: ObjectId) -> Result<bool> {
    Ok(store.steps_up_to(tip)?.iter().any(|s| s.commit == step))
}

fn set_ref(store: &Store, name: &str, target: ObjectId, message: &str) -> Result<()> {
    let previous = refs::read_ref(store.repo(), name)?;
    let committer = store.committer();
    let mut buf = gix::date::parse::TimeBuf::default();
    refs::compare_and_swap(
        store.repo(),
        name,
        previous,
        target,
        message,
        committer.to_ref(&mut buf),
    )?;
    Ok(())
}

/// Runs git with the user's terminal, so credential prompts and progress work as usual.
fn run_git(dir: &Path, args: &[String]) -> Result<()> {
    let status = Command::new("git").args(args).current_dir(dir).status().map_err(Error::NoGit)?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Git { command: format!("git {}", args.join(" ")), status: status.to_string() })
    }
}
