//! `cairn land`: a session's workspace changes as one ordinary commit on the current
//! branch, with `HEAD`, the branch, the index and the workspace as `git commit` leaves
//! them.
//!
//! The session's changes (its base → its tip, `.cairn/` left out) are applied onto the
//! current `HEAD`. When the branch moved since the session's base, gix merges the two
//! sides three-way, as `git merge` would (line by line within a file, with rename
//! detection); any conflict it cannot resolve lands nothing. The workspace must already hold
//! exactly that result — it does when the session's edits are on disk on top of `HEAD` —
//! so landing never rewrites a file; anything else there is a change that is not part of
//! the session, and landing refuses.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt as _;

use gix::ObjectId;
use gix::bstr::{BString, ByteSlice};
use gix::objs::tree::EntryKind;

use crate::checkpoint::{self, Store};
use crate::git::Context as _;
use crate::git::refs;
use crate::{secrets, title};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("HEAD is detached; check out the branch to land on")]
    DetachedHead,
    #[error("the branch and the session both changed {}", .0.join(", "))]
    Conflict(Vec<String>),
    #[error("the working tree has changes that are not part of the session: {}", .0.join(", "))]
    UnrecordedChanges(Vec<String>),
    #[error("the index has staged changes that are not the session's")]
    StagedChanges,
    #[error("the session changed nothing since its base")]
    NothingToLand,
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::Error),
}

/// A failed ref or object operation is reported as the checkpoint layer reports it.
impl From<crate::git::Error> for Error {
    fn from(err: crate::git::Error) -> Self {
        Error::Checkpoint(err.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// What was landed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Landed {
    pub commit: String,
    pub branch: String,
    pub files: usize,
    pub message: String,
}

/// Lands `session` on the current branch, with `message` or one made from the session.
pub fn land(store: &Store, session: &str, message: Option<String>) -> Result<Landed> {
    let repo = store.repo();
    let branch = repo.head_name().context(|| "reading HEAD".into())?.ok_or(Error::DetachedHead)?;
    let head = repo.head_id().ok().map(|id| id.detach());
    let tip = refs::read_ref(repo, &refs::session_ref(session))?
        .ok_or_else(|| checkpoint::Error::UnknownSession(session.into()))?;
    let state = store.read_state(tip)?;
    let base = state.session.base.as_deref().and_then(|b| ObjectId::from_hex(b.as_bytes()).ok());

    let step_tree = store.step_tree(tip)?;
    let base_tree = base.map(|commit| store.step_tree(commit)).transpose()?;
    let head_tree = head.map(|commit| store.step_tree(commit)).transpose()?;
    // Every path the session adds, changes or removes is checked before anything is
    // written (the diff leaves the root `.cairn` out): an unsafe one lands nothing.
    let step = store.step_summary(tip)?.step;
    let theirs = changes(repo, base_tree, Some(step_tree))
        .map_err(|err| Error::Checkpoint(err.in_step(session, step)))?;
    let session_tree = without_cairn(store, step_tree)?;
    if theirs.is_empty() {
        return Err(Error::NothingToLand);
    }
    let result =
        if head == base { session_tree } else { merge(repo, base_tree, head_tree, session_tree)? };

    // The index is rewritten below: whatever is staged must be HEAD's or the result.
    let staged_ok = [head_tree, Some(result)]
        .into_iter()
        .flatten()
        .map(|tree| index_holds(repo, tree))
        .collect::<Result<Vec<bool>>>()?;
    if !staged_ok.is_empty() && !staged_ok.contains(&true) {
        return Err(Error::StagedChanges);
    }

    let workspace = store.snapshot()?.tree;
    let stray = checkpoint::diff_trees(repo, Some(result), Some(workspace))?;
    if !stray.is_empty() {
        let paths = stray.iter().map(|change| change.path().to_string()).collect();
        return Err(Error::UnrecordedChanges(paths));
    }

    let message = message.unwrap_or_else(|| generated_message(store, session, &state, &theirs));
    let model = state.session.model.as_deref().and_then(model_name).unwrap_or("unknown model");
    let mut full_message = format!(
        "{}\n\nCo-authored-by: cairn ({model}) <cairn@localhost>\nCairn-Session: {session}\n",
        message.trim_end()
    );
    if store.redacts_secrets() {
        full_message = secrets::redact(&full_message).0;
    }
    let user = store.committer();
    let mut buf = gix::date::parse::TimeBuf::default();
    let commit = gix::objs::Commit {
        tree: result,
        parents: head.into_iter().collect(),
        author: user.clone(),
        committer: user.clone(),
        encoding: None,
        message: full_message.clone().into(),
        extra_headers: Vec::new(),
    };
    let commit_id = repo.write_object(&commit).context(|| "writing the commit".into())?.detach();
    store.persist_objects()?;
    let subject = full_message.lines().next().unwrap_or_default();
    refs::compare_and_swap(
        repo,
        branch.as_bstr().to_str().context(|| "the branch name".into())?,
        head,
        commit_id,
        &format!("commit (cairn land): {subject}"),
        user.to_ref(&mut buf),
    )?;
    write_index(store, result)?;
    Ok(Landed {
        commit: commit_id.to_string(),
        branch: branch.shorten().to_string(),
        files: theirs.len(),
        message: full_message,
    })
}

/// A tree without its top-level `.cairn`.
fn without_cairn(store: &Store, tree: ObjectId) -> Result<ObjectId> {
    let mut editor = store.repo().edit_tree(tree).context(|| "editing a tree".into())?;
    editor.remove(checkpoint::RESERVED_DIR).context(|| "removing .cairn".into())?;
    Ok(editor.write().context(|| "writing a tree".into())?.detach())
}

/// What changed from `from` to `to`, path by path (`None`: deleted).
fn changes(
    repo: &gix::Repository,
    from: Option<ObjectId>,
    to: Option<ObjectId>,
) -> checkpoint::Result<BTreeMap<BString, Option<(EntryKind, ObjectId)>>> {
    Ok(checkpoint::diff_trees(repo, from, to)?
        .into_iter()
        .map(|change| match change {
            checkpoint::Change::Delete { path, .. } => (path.as_bstr().to_owned(), None),
            checkpoint::Change::Write { path, kind, id, .. } => {
                (path.as_bstr().to_owned(), Some((kind, id)))
            }
        })
        .collect())
}

/// Three-way merge of the branch (`ours`) and the session (`theirs`) from `base`.
fn merge(
    repo: &gix::Repository,
    base: Option<ObjectId>,
    ours: Option<ObjectId>,
    theirs: ObjectId,
) -> Result<ObjectId> {
    let empty = ObjectId::empty_tree(gix::hash::Kind::Sha1);
    let labels = gix::merge::blob::builtin_driver::text::Labels {
        ancestor: Some("base".into()),
        current: Some("HEAD".into()),
        other: Some("session".into()),
    };
    let options = repo.tree_merge_options().context(|| "reading merge options".into())?;
    let mut outcome = repo
        .merge_trees(base.unwrap_or(empty), ours.unwrap_or(empty), theirs, labels, options)
        .context(|| "merging the session onto HEAD".into())?;
    let unresolved = gix::merge::tree::TreatAsUnresolved::git();
    if outcome.has_unresolved_conflicts(unresolved) {
        let mut paths: Vec<String> = outcome
            .conflicts
            .iter()
            .filter(|conflict| conflict.is_unresolved(unresolved))
            .map(|conflict| conflict.ours.location().to_string())
            .collect();
        paths.sort();
        paths.dedup();
        return Err(Error::Conflict(paths));
    }
    Ok(outcome.tree.write().context(|| "writing the merged tree".into())?.detach())
}

/// `model` as it may appear in the `Co-authored-by` trailer: one line of printable
/// characters with no `<`, `>` or parenthesis, else `None` (and the trailer says
/// "unknown model"). `session.toml` may have been
/// fetched, and a newline there would add trailers (a forged `Signed-off-by`) to a commit
/// on the user's branch.
fn model_name(model: &str) -> Option<&str> {
    let model = model.trim();
    let forbidden = |c: char| c.is_control() || matches!(c, '<' | '>' | '(' | ')');
    (!model.is_empty() && !model.contains(forbidden)).then_some(model)
}

/// The session's title, then what it did.
fn generated_message(
    store: &Store,
    session: &str,
    state: &checkpoint::StepState,
    changes: &BTreeMap<BString, Option<(EntryKind, ObjectId)>>,
) -> String {
    let steps = store.steps(session).map(|steps| steps.len()).unwrap_or(0);
    // The title may come from a fetched `session.toml`: it becomes one line without control
    // characters (or it could forge trailers), redacted before it is cut so that a key
    // cut short still matches.
    let title = if store.redacts_secrets() {
        secrets::redact(&state.session.title).0
    } else {
        state.session.title.clone()
    };
    let mut message = format!(
        "{}\n\nLanded from cairn session {session} ({steps} steps).\n",
        title::session_title(&title)
    );
    message.push_str("\nFiles:\n");
    for (path, change) in changes {
        let verb = if change.is_some() { "M" } else { "D" };
        message.push_str(&format!("  {verb} {path}\n"));
    }
    message
}

/// Whether the user's index holds exactly `tree` (paths, modes, blob ids).
fn index_holds(repo: &gix::Repository, tree: ObjectId) -> Result<bool> {
    let index = repo.index_or_empty().context(|| "reading the index".into())?;
    let expected = gix::index::State::from_tree(&tree, &repo.objects, Default::default())
        .context(|| "reading a tree".into())?;
    let entries = |state: &gix::index::State| -> Vec<(BString, gix::index::entry::Mode, ObjectId)> {
        state.entries().iter().map(|e| (e.path(state).to_owned(), e.mode, e.id)).collect()
    };
    Ok(entries(&index) == entries(&expected))
}

/// The index as `git commit` leaves it: the new tree, with stat data from the workspace
/// (which holds exactly that tree), so `git status` is clean without re-reading files.
fn write_index(store: &Store, tree: ObjectId) -> Result<()> {
    let repo = store.repo();
    let mut state = gix::index::State::from_tree(&tree, &repo.objects, Default::default())
        .context(|| "building the index".into())?;
    let (entries, paths) = state.entries_mut_and_pathbacking();
    for entry in entries {
        let path = entry.path_in(paths);
        let absolute = store.root().join(std::ffi::OsStr::from_bytes(path));
        if let Ok(metadata) = gix::index::fs::Metadata::from_path_no_follow(&absolute)
            && let Ok(stat) = gix::index::entry::Stat::from_fs(&metadata)
        {
            entry.stat = stat;
        }
    }
    let mut file = gix::index::File::from_state(state, repo.index_path());
    file.write(Default::default()).context(|| "writing the index".into())?;
    Ok(())
}
