//! Checkpoint names: a session id or unique prefix (its tip), `<session>@<n>`
//! (step n), `@` (the current session's tip), `@~k` (k steps back), or any git revision
//! that names a cairn step. Session names are tried before git revisions. A revision
//! starting at a quarantine ref of `cairn fetch` (a remote's rejected or unchecked
//! session), or naming the tip of one, is refused: nothing restores from it.

use gix::ObjectId;

use super::Store;
use super::error::{Error, Result};
use crate::git::refs;

/// A resolved checkpoint: one step of one session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Checkpoint {
    pub session: String,
    pub step: u64,
    #[serde(serialize_with = "serialize_id")]
    pub commit: ObjectId,
}

fn serialize_id<S: serde::Serializer>(id: &ObjectId, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&id.to_string())
}

pub fn resolve(store: &Store, name: &str) -> Result<Checkpoint> {
    let invalid = |reason: &str| Error::InvalidCheckpointName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it is empty or contains spaces"));
    }
    if let Some(rest) = name.strip_prefix('@') {
        let id = store.current_session()?.ok_or(Error::NoCurrentSession)?;
        let back = match rest {
            "" => 0,
            "~" => 1,
            _ => rest
                .strip_prefix('~')
                .and_then(|k| k.parse::<u64>().ok())
                .ok_or_else(|| invalid("after '@' comes nothing or '~<number>'"))?,
        };
        let tip = tip_of(store, &id)?;
        if back >= tip.step {
            return Err(Error::UnknownCheckpoint(format!(
                "{name} (session {id} has {} steps)",
                tip.step
            )));
        }
        let n = tip.step - back;
        return step_of(store, tip, n, name);
    }
    if let Some((session, number)) = name.rsplit_once('@') {
        let n: u64 =
            number.parse().map_err(|_| invalid("the part after '@' must be a step number"))?;
        let id = session_by_prefix(store, session)?
            .ok_or_else(|| Error::UnknownSession(session.to_string()))?;
        let tip = tip_of(store, &id)?;
        if n == 0 || n > tip.step {
            return Err(Error::UnknownCheckpoint(format!(
                "{name} (session {id} has steps 1 to {})",
                tip.step
            )));
        }
        return step_of(store, tip, n, name);
    }
    if let Some(id) = session_by_prefix(store, name)? {
        return tip_of(store, &id);
    }
    refuse_quarantined(store, name)?;
    let id = store
        .repo()
        .rev_parse_single(name)
        .map_err(|_| Error::UnknownCheckpoint(name.to_string()))?
        .object()
        .map_err(|_| Error::UnknownCheckpoint(name.to_string()))?
        .peel_to_commit()
        .map_err(|_| Error::NotAStep { what: name.to_string(), commit: "an object".into() })?
        .id;
    if let Some((quarantine, _)) = quarantined(store)?.into_iter().find(|(_, tip)| *tip == id) {
        return Err(Error::Quarantined { name: name.to_string(), quarantine });
    }
    let summary = store.step_summary(id)?;
    Ok(Checkpoint { session: summary.session, step: summary.step, commit: id })
}

/// Refuses a revision that starts at a ref `cairn fetch` keeps out of reach: a remote's
/// rejected session or one still waiting for its checks. Its commits may hold anything.
fn refuse_quarantined(store: &Store, name: &str) -> Result<()> {
    let base = name.split(['~', '^', ':']).next().unwrap_or(name);
    let Ok(Some(reference)) = store.repo().try_find_reference(base) else { return Ok(()) };
    let full = reference.name().as_bstr().to_string();
    if is_quarantine_ref(&full) {
        return Err(Error::Quarantined { name: name.to_string(), quarantine: full });
    }
    Ok(())
}

/// Whether `full` is under `refs/cairn/remotes/<remote>/rejected/` or `…/incoming/`.
fn is_quarantine_ref(full: &str) -> bool {
    full.strip_prefix("refs/cairn/remotes/")
        .is_some_and(|rest| rest.contains("/rejected/") || rest.contains("/incoming/"))
}

/// Every quarantine ref with its tip.
fn quarantined(store: &Store) -> Result<Vec<(String, ObjectId)>> {
    let all = refs::list(store.repo(), "refs/cairn/remotes/")?;
    Ok(all.into_iter().filter(|(name, _)| is_quarantine_ref(name)).collect())
}

/// The session whose id is `prefix` or starts with it; an error if several do.
fn session_by_prefix(store: &Store, prefix: &str) -> Result<Option<String>> {
    let ids: Vec<String> = refs::list(store.repo(), refs::SESSIONS_PREFIX)?
        .into_iter()
        .map(|(name, _)| name.trim_start_matches(refs::SESSIONS_PREFIX).to_string())
        .collect();
    if ids.iter().any(|id| id == prefix) {
        return Ok(Some(prefix.to_string()));
    }
    let matches: Vec<String> = ids.into_iter().filter(|id| id.starts_with(prefix)).collect();
    match matches.len() {
        0 => Ok(None),
        1 => Ok(matches.into_iter().next()),
        _ => Err(Error::AmbiguousCheckpoint { name: prefix.to_string(), candidates: matches }),
    }
}

fn tip_of(store: &Store, id: &str) -> Result<Checkpoint> {
    let commit = refs::read_ref(store.repo(), &refs::session_ref(id))?
        .ok_or_else(|| Error::UnknownSession(id.into()))?;
    let summary = store.step_summary(commit).map_err(|err| match err {
        Error::NotAStep { commit, .. } => Error::NotAStep { what: refs::session_ref(id), commit },
        other => other,
    })?;
    Ok(Checkpoint { session: id.to_string(), step: summary.step, commit })
}

/// Step `n` of the session whose tip is `tip`, found by walking back from the tip.
fn step_of(store: &Store, tip: Checkpoint, n: u64, name: &str) -> Result<Checkpoint> {
    let mut current = tip;
    while current.step > n {
        let parent = store
            .parent_step(current.commit)?
            .ok_or_else(|| Error::UnknownCheckpoint(name.to_string()))?;
        let summary = store.step_summary(parent)?;
        current = Checkpoint { session: summary.session, step: summary.step, commit: parent };
    }
    if current.step != n {
        return Err(Error::UnknownCheckpoint(name.to_string()));
    }
    Ok(current)
}
