//! Sessions travel like any git history. Push and fetch run the `git` CLI (gix cannot
//! push), so users' remotes, credentials and transports work as they do for `git push`.
//!
//! What a remote last had of a session is kept in `refs/cairn/remotes/<remote>/sessions/`.
//! A fetch never overwrites a local session that has diverged from the remote's: both are
//! kept, the remote's under that tracking ref.
//!
//! What a fetch brings is hostile until checked: `git fetch` lands the remote's sessions
//! under `refs/cairn/remotes/<remote>/incoming/`, and only a session whose new steps are
//! all cairn steps of that session with safe trees (see [`check_session`]) moves on to
//! the tracking ref and `refs/cairn/sessions/`. Any other is kept for inspection under
//! `refs/cairn/remotes/<remote>/rejected/<id>` and reported.

use std::path::Path;
use std::process::Command;

use gix::ObjectId;
use serde::Serialize;

use gix::objs::tree::EntryKind;

use crate::checkpoint::{self, Store};
use crate::git::Context as _;
use crate::git::refs;
use crate::secrets;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no remote named '{0}' in this repository")]
    UnknownRemote(String),
    #[error("this repository has no project memory ({MEMORY_REF}) to push")]
    NoMemory,
    #[error("`{command}` failed ({status})")]
    Git { command: String, status: std::process::ExitStatus },
    #[error("could not run git: {0}")]
    NoGit(#[source] std::io::Error),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::Error),
    #[error(transparent)]
    Memory(#[from] crate::memory::Error),
}

/// A failed ref or object operation is reported as the checkpoint layer reports it.
impl From<crate::git::Error> for Error {
    fn from(err: crate::git::Error) -> Self {
        Error::Checkpoint(err.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Project memory (tier 3), and where a remote's is kept after a fetch.
pub use crate::git::refs::MEMORY_REF;

pub fn remote_memory_ref(remote: &str) -> String {
    format!("refs/cairn/remotes/{remote}/memory")
}

/// Where a remote's sessions are tracked locally.
pub fn tracking_prefix(remote: &str) -> String {
    format!("refs/cairn/remotes/{remote}/sessions/")
}

/// Where `git fetch` puts a remote's sessions until they are checked.
fn incoming_prefix(remote: &str) -> String {
    format!("refs/cairn/remotes/{remote}/incoming/")
}

/// Where a fetched session that failed the checks is kept for inspection.
pub fn rejected_ref(remote: &str, id: &str) -> String {
    format!("refs/cairn/remotes/{remote}/rejected/{id}")
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
    #[serde(serialize_with = "crate::git::objects::serialize_hex")]
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
    let changes =
        checkpoint::diff_step_trees(store.repo(), parent, Some(store.step_tree(commit)?))?;
    Ok(changes
        .into_iter()
        .filter_map(|change| match change {
            checkpoint::Change::Write { path, kind, id, .. } if kind != EntryKind::Commit => {
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
    /// It failed the checks (see [`check_session`]): nothing of it was made available;
    /// the remote's tip is kept under `kept_as` for inspection.
    Rejected {
        id: String,
        reason: String,
        kept_as: String,
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
/// up to date where that loses nothing. Each session is checked first; one that fails
/// is [`Fetched::Rejected`] and touches neither ref area.
pub fn fetch(store: &Store, remote: &str) -> Result<FetchReport> {
    let incoming = incoming_prefix(remote);
    let memory = remote_memory_ref(remote);
    run_git(
        store.root(),
        &[
            "fetch".into(),
            remote.into(),
            format!("+{}*:{incoming}*", refs::SESSIONS_PREFIX),
            // A pattern, so a remote without memory is not an error ('*' matches empty).
            format!("+{MEMORY_REF}*:{memory}*"),
        ],
    )?;
    let arrived = refs::list(store.repo(), &incoming)?;
    let outcomes: Vec<Result<Fetched>> = arrived
        .iter()
        .map(|(name, theirs)| accept(store, remote, &name[incoming.len()..], *theirs))
        .collect();
    // Unchecked tips never stay where anything could pick them up, even when accepting
    // one failed.
    for (name, theirs) in &arrived {
        refs::delete(store.repo(), name, *theirs)?;
    }
    let sessions = outcomes.into_iter().collect::<Result<Vec<_>>>()?;
    let memory = refs::read_ref(store.repo(), &memory)?.map(|_| memory);
    Ok(FetchReport { sessions, memory })
}

/// How much of a rejection's reason is kept: enough to name the entry and the rule.
const MAX_REASON_CHARS: usize = 300;

/// Checks the remote's tip `theirs` of session `id`, then records it as the remote's
/// and moves the local session where that loses nothing.
fn accept(store: &Store, remote: &str, id: &str, theirs: ObjectId) -> Result<Fetched> {
    let tracking = format!("{}{id}", tracking_prefix(remote));
    let local = refs::session_ref(id);
    let ours = refs::read_ref(store.repo(), &local)?;
    let known: Vec<ObjectId> =
        [refs::read_ref(store.repo(), &tracking)?, ours].into_iter().flatten().collect();
    if let Err(reason) = check_session(store, id, theirs, &known) {
        // The reason quotes the remote's trailers and files: one bounded, escaped line,
        // fit for a reflog message (which may not hold a newline) and a terminal.
        let reason: String = crate::text::terminal_safe(&reason)
            .replace('\n', "\\n")
            .chars()
            .take(MAX_REASON_CHARS)
            .collect();
        let kept_as = rejected_ref(remote, id);
        set_ref(store, &kept_as, theirs, &format!("cairn: rejected from {remote}: {reason}"))?;
        return Ok(Fetched::Rejected { id: id.to_string(), reason, kept_as });
    }
    set_ref(store, &tracking, theirs, &format!("{}{remote}", refs::FETCHED_FROM))?;
    let id = id.to_string();
    Ok(match ours {
        None => {
            set_ref(store, &local, theirs, &format!("{}{remote}", refs::FETCHED_FROM))?;
            Fetched::New { id }
        }
        Some(ours) if ours == theirs => Fetched::UpToDate { id },
        Some(ours) if contains(store, theirs, ours)? => {
            set_ref(store, &local, theirs, &format!("{}{remote}", refs::FAST_FORWARD_FROM))?;
            Fetched::Updated { id }
        }
        Some(ours) if contains(store, ours, theirs)? => Fetched::LocalAhead { id },
        Some(_) => Fetched::Diverged { id, remote_ref: tracking },
    })
}

/// Why the fetched tip `tip` of session `id` must not be used, if it must not.
///
/// Walks the steps from `tip` back to one already accepted (`known`: the local session's
/// tip and what was last fetched) or to step 1, so the cost follows what arrived. Each
/// step must be a cairn step of session `id` (its trailers), numbered one above its
/// parent, with a `.cairn/session.toml` naming `id`; then, oldest first, each step's tree is checked
/// where it differs from its parent step's ([`checkpoint::check_tree`]: names, modes, trees
/// that decode), step 1's whole.
pub fn check_session(
    store: &Store,
    id: &str,
    tip: ObjectId,
    known: &[ObjectId],
) -> std::result::Result<(), String> {
    if crate::git::path::RepoPath::new(id).is_err() || id.contains('/') {
        return Err(format!("{id:?} is not a session id"));
    }
    let mut new_steps = Vec::new();
    let mut current = tip;
    let mut accepted_parent = None;
    loop {
        if known.contains(&current) {
            if let Some(&(_, after)) = new_steps.last() {
                let known_step = store.step_summary(current).map_err(|err| err.to_string())?.step;
                if known_step + 1 != after {
                    return Err(format!("step {after} follows step {known_step}"));
                }
            }
            accepted_parent = Some(current);
            break;
        }
        let summary = store.step_summary(current).map_err(|_| {
            format!("commit {current} is not a cairn step (no Cairn-Session/Cairn-Step trailers)")
        })?;
        if summary.session != id {
            return Err(format!(
                "commit {current} is a step of session {}, not {id}",
                summary.session
            ));
        }
        if let Some(&(_, after)) = new_steps.last()
            && summary.step + 1 != after
        {
            return Err(format!("step {after} follows step {}, not {}", summary.step, after - 1));
        }
        let tree = store.step_tree(current).map_err(|err| err.to_string())?;
        let Ok(Some(toml)) = store.blob_at(tree, ".cairn/session.toml") else {
            return Err(format!("step {} has no .cairn/session.toml", summary.step));
        };
        let named = toml::from_str::<toml::Table>(&String::from_utf8_lossy(&toml))
            .ok()
            .and_then(|table| table.get("id")?.as_str().map(str::to_string));
        if named.as_deref() != Some(id) {
            return Err(format!(
                "step {}'s .cairn/session.toml names session {}, not {id}",
                summary.step,
                named.as_deref().unwrap_or("(none)")
            ));
        }
        new_steps.push((current, summary.step));
        if summary.step <= 1 {
            break;
        }
        current = store
            .parent_commit(current)
            .ok()
            .flatten()
            .ok_or_else(|| format!("step {} has no parent step", summary.step))?;
    }
    let repo = store.repo();
    let mut checked = std::collections::HashSet::new();
    let mut previous = match accepted_parent {
        Some(commit) => Some(store.step_tree(commit).map_err(|err| err.to_string())?),
        None => None,
    };
    for (commit, step) in new_steps.into_iter().rev() {
        let tree = store.step_tree(commit).map_err(|err| err.to_string())?;
        checkpoint::check_tree(repo, previous, tree, &mut checked).map_err(|err| match err {
            checkpoint::Error::UnsafePath(path) => {
                format!("step {step} holds an unsafe path {:?} ({})", path.path, path.rule)
            }
            other => format!("step {step}: {other}"),
        })?;
        previous = Some(tree);
    }
    Ok(())
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
        Err(Error::Git { command: format!("git {}", args.join(" ")), status })
    }
}
