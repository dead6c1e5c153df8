//! Attaching a record to a commit as a git note, so attribution travels with the history
//! and plain git reads it (`git notes --ref agent-trace show <commit>`).
//!
//! A notes ref is a commit whose tree holds one blob per annotated commit, named by the
//! commit's hex id (git may also fan names out as `ab/cdef…`; it reads either). Writing a
//! note is one more commit on that ref, moved compare-and-swap like cairn's own refs.

use gix::ObjectId;
use gix::objs::tree::EntryKind;

use crate::checkpoint::{Error, Result, Store};
use crate::git::Context as _;
use crate::git::refs;

/// Where `cairn land --notes` writes unless told otherwise.
pub const DEFAULT_REF: &str = "refs/notes/agent-trace";

/// The full notes ref `name` stands for, as `git notes --ref` reads it: a short name lives
/// under `refs/notes/`; a full one must already be there (git refuses notes elsewhere, and
/// so does cairn: a note must never move a branch or one of cairn's refs).
pub fn full_ref(name: &str) -> std::result::Result<String, String> {
    let full =
        if name.starts_with("refs/") { name.to_string() } else { format!("refs/notes/{name}") };
    let valid = full.strip_prefix("refs/notes/").is_some_and(|rest| !rest.is_empty())
        && gix::validate::reference::name(full.as_str().into()).is_ok();
    if valid {
        Ok(full)
    } else {
        Err(format!("'{name}' is not a notes ref: name one under refs/notes/, e.g. agent-trace"))
    }
}

/// The commit `notes_ref` points to (`None`: no notes yet) and its tree; an error when it
/// points to anything but a commit, so `cairn land --notes` can refuse before landing.
pub fn current(store: &Store, notes_ref: &str) -> Result<(Option<ObjectId>, ObjectId)> {
    let repo = store.repo();
    let Some(tip) = refs::read_ref(repo, notes_ref)? else {
        return Ok((None, ObjectId::empty_tree(gix::hash::Kind::Sha1)));
    };
    let not_notes = |source: crate::git::BoxError| Error::NotANotesRef {
        name: notes_ref.to_string(),
        target: tip.to_string(),
        source,
    };
    let commit = repo.find_commit(tip).map_err(|err| not_notes(err.into()))?;
    let tree = commit.tree_id().map_err(|err| not_notes(err.into()))?.detach();
    repo.find_tree(tree).map_err(|err| not_notes(err.into()))?;
    Ok((Some(tip), tree))
}

/// Sets the note of `commit` on `notes_ref` to `text`, replacing any note it had there.
pub fn attach(store: &Store, notes_ref: &str, commit: ObjectId, text: &str) -> Result<ObjectId> {
    let repo = store.repo();
    let (previous, tree) = current(store, notes_ref)?;
    let hex = commit.to_string();
    let blob = repo.write_blob(text.as_bytes()).context(|| "writing the note".into())?.detach();
    let mut editor = repo.edit_tree(tree).context(|| format!("reading {notes_ref}"))?;
    // One note per commit: drop one stored under the fanned-out name too.
    let fanned_out = format!("{}/{}", &hex[..2], &hex[2..]);
    editor.remove(fanned_out.as_str()).context(|| "editing notes".into())?;
    editor.upsert(hex.as_str(), EntryKind::Blob, blob).context(|| "editing notes".into())?;
    let tree = editor.write().context(|| "writing the notes tree".into())?.detach();
    let user = store.committer();
    let note = gix::objs::Commit {
        tree,
        parents: previous.into_iter().collect(),
        author: user.clone(),
        committer: user.clone(),
        encoding: None,
        message: "Notes added by 'cairn land'\n".into(),
        extra_headers: Vec::new(),
    };
    let id = repo.write_object(&note).context(|| "writing the notes commit".into())?.detach();
    store.persist_objects()?;
    let mut buf = gix::date::parse::TimeBuf::default();
    // A move by another process stays a `ConcurrentUpdate`: the user's to retry.
    refs::compare_and_swap(
        repo,
        notes_ref,
        previous,
        id,
        &format!("notes: agent trace for {hex}"),
        user.to_ref(&mut buf),
    )
    .map_err(|err| match err {
        source @ crate::git::Error::ConcurrentUpdate { .. } => {
            Error::NotesMoved { notes_ref: notes_ref.to_string(), source }
        }
        other => other.into(),
    })?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_refs_stay_under_refs_notes() {
        assert_eq!(full_ref("agent-trace").unwrap(), "refs/notes/agent-trace");
        assert_eq!(full_ref("refs/notes/review").unwrap(), "refs/notes/review");
        for hostile in [
            "refs/heads/main",
            "refs/cairn/sessions/x",
            "refs/notes/",
            "a..b",
            "x y",
            "../../HEAD",
            "refs/notes/a.lock",
            "",
        ] {
            assert!(full_ref(hostile).is_err(), "{hostile} was accepted");
        }
    }
}
