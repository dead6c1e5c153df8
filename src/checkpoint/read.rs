//! Reading steps back: their trailers, trees and recorded state, and the listings of a
//! session's steps.

use gix::ObjectId;
use gix::bstr::ByteSlice;

use super::error::{Error, Result};
use super::{SessionInfo, StepKind, Store, Trailers, snapshot, step};
use crate::git::Context;
use crate::git::{objects, refs};

/// A step as listings show it, read from its commit alone.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepSummary {
    pub session: String,
    pub step: u64,
    pub kind: StepKind,
    #[serde(serialize_with = "objects::serialize_hex")]
    pub commit: ObjectId,
    pub subject: String,
    pub tools: Vec<String>,
    pub model: Option<String>,
    /// The agent that did the work, when it was not cairn itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Commit time, seconds since the epoch.
    pub time: i64,
}

/// A step's recorded state, read back from its tree.
#[derive(Debug, Clone)]
pub struct StepState {
    pub session: SessionInfo,
    pub step: serde_json::Value,
    /// The whole conversation, as recorded (compaction never removes a message).
    pub messages: Vec<serde_json::Value>,
    /// Where the model's context starts in `messages` (after the last compaction).
    pub context_from: usize,
    /// Tier 1: the working notes.
    pub notes: String,
    /// Tier 2: the session summary, once one was written.
    pub summary: Option<String>,
}

impl Store {
    /// The trailers of a step commit, or [`Error::NotAStep`].
    pub(super) fn trailers(&self, commit: ObjectId, what: &str) -> Result<Trailers> {
        let not_a_step = || Error::NotAStep { what: what.to_string(), commit: commit.to_string() };
        let object = self.repo.find_commit(commit).map_err(|_| not_a_step())?;
        let message = object.message_raw().map_err(|_| not_a_step())?;
        step::parse_trailers(&message.to_str_lossy()).ok_or_else(not_a_step)
    }

    /// The `.cairn` subtree of a step commit.
    pub(super) fn cairn_tree(&self, commit: ObjectId) -> Result<Option<ObjectId>> {
        let tree = self.commit_tree(commit)?;
        let tree = self.repo.find_tree(tree).context(|| format!("reading the tree of {commit}"))?;
        let entry = tree.find_entry(snapshot::RESERVED_DIR);
        Ok(entry.filter(|e| e.mode().is_tree()).map(|e| e.oid().to_owned()))
    }

    pub(super) fn commit_tree(&self, commit: ObjectId) -> Result<ObjectId> {
        let object =
            self.repo.find_commit(commit).context(|| format!("reading commit {commit}"))?;
        Ok(object.tree_id().context(|| format!("reading the tree of {commit}"))?.detach())
    }

    /// The tree of a step commit (workspace plus `.cairn/`).
    pub fn step_tree(&self, commit: ObjectId) -> Result<ObjectId> {
        self.commit_tree(commit)
    }

    /// The content of the file at `path` in `tree`, if it holds one.
    pub fn blob_at(&self, tree: ObjectId, path: &str) -> Result<Option<Vec<u8>>> {
        Ok(objects::blob_at(&self.repo, tree, path)?)
    }

    pub(super) fn subtree_len(&self, tree: ObjectId, path: &str) -> Result<usize> {
        let tree = self.repo.find_tree(tree).context(|| format!("reading tree {tree}"))?;
        let Some(entry) =
            tree.lookup_entry_by_path(path).context(|| format!("looking up {path}"))?
        else {
            return Ok(0);
        };
        let sub = self.repo.find_tree(entry.oid()).context(|| format!("reading {path}"))?;
        Ok(sub.decode().context(|| format!("decoding {path}"))?.entries.len())
    }

    pub(super) fn read_session_info(
        &self,
        commit: ObjectId,
        cairn: Option<ObjectId>,
    ) -> Result<SessionInfo> {
        let corrupt = |reason: String| Error::CorruptState { commit: commit.to_string(), reason };
        let cairn = cairn.ok_or_else(|| corrupt("it has no .cairn directory".into()))?;
        let bytes = self
            .blob_at(cairn, step::SESSION_FILE)?
            .ok_or_else(|| corrupt("it has no .cairn/session.toml".into()))?;
        let text =
            String::from_utf8(bytes).map_err(|_| corrupt("session.toml is not UTF-8".into()))?;
        step::parse_session_info(&text).map_err(|err| match err {
            step::SessionFileError::Newer { session, schema } => {
                Error::NewerSchema { session, schema }
            }
            step::SessionFileError::Toml(err) => corrupt(format!("session.toml: {err}")),
        })
    }

    /// Reads a step's state back: the session, `step.json` and the conversation so far.
    pub fn read_state(&self, commit: ObjectId) -> Result<StepState> {
        let corrupt = |reason: String| Error::CorruptState { commit: commit.to_string(), reason };
        let cairn = self.cairn_tree(commit)?;
        let session = self.read_session_info(commit, cairn)?;
        let cairn = cairn.ok_or_else(|| corrupt("it has no .cairn directory".into()))?;
        let step_bytes = self
            .blob_at(cairn, step::STEP_FILE)?
            .ok_or_else(|| corrupt("it has no step.json".into()))?;
        let step = serde_json::from_slice(&step_bytes)
            .map_err(|err| corrupt(format!("step.json: {err}")))?;
        let mut messages = Vec::new();
        let tree = self.repo.find_tree(cairn).context(|| "reading .cairn".into())?;
        if let Some(entry) =
            tree.lookup_entry_by_path(step::MESSAGES_DIR).context(|| "reading messages".into())?
        {
            let dir = self.repo.find_tree(entry.oid()).context(|| "reading messages".into())?;
            for message in dir.decode().context(|| "decoding messages".into())?.entries {
                let blob =
                    self.repo.find_blob(message.oid).context(|| "reading a message".into())?;
                let value = serde_json::from_slice(&blob.data)
                    .map_err(|err| corrupt(format!("message {}: {err}", message.filename)))?;
                messages.push(value);
            }
        }
        let text = |path: &str| -> Result<Option<String>> {
            Ok(self.blob_at(cairn, path)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
        };
        let context_from = match text(step::CONTEXT_FILE)? {
            Some(json) => serde_json::from_str::<serde_json::Value>(&json)
                .ok()
                .and_then(|value| value.get("from")?.as_u64())
                .map(|from| (from as usize).saturating_sub(1).min(messages.len()))
                .ok_or_else(|| {
                    corrupt(format!("{} has no message number `from`", step::CONTEXT_FILE))
                })?,
            None => 0,
        };
        let notes = text(step::NOTES_FILE)?.unwrap_or_default();
        let summary = text(step::SUMMARY_FILE)?;
        Ok(StepState { session, step, messages, context_from, notes, summary })
    }

    /// A step's `step.json` (`None` when it has none or it is not JSON), without the
    /// conversation [`Store::read_state`] also reads.
    pub fn step_details(&self, commit: ObjectId) -> Result<Option<serde_json::Value>> {
        let Some(cairn) = self.cairn_tree(commit)? else { return Ok(None) };
        Ok(self
            .blob_at(cairn, step::STEP_FILE)?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// Summarises one step from its commit.
    pub fn step_summary(&self, commit: ObjectId) -> Result<StepSummary> {
        let trailers = self.trailers(commit, &format!("commit {commit}"))?;
        let object =
            self.repo.find_commit(commit).context(|| format!("reading commit {commit}"))?;
        let message = object
            .message_raw()
            .context(|| "reading a commit message".into())?
            .to_str_lossy()
            .into_owned();
        let time = object.time().map(|t| t.seconds).unwrap_or_default();
        Ok(StepSummary {
            session: trailers.session,
            step: trailers.step,
            kind: trailers.kind,
            commit,
            subject: message.lines().next().unwrap_or_default().to_string(),
            tools: trailers.tools,
            model: trailers.model,
            agent: trailers.agent,
            time,
        })
    }

    /// The parent of a step within its session, if it has one.
    pub fn parent_step(&self, commit: ObjectId) -> Result<Option<ObjectId>> {
        let trailers = self.trailers(commit, &format!("commit {commit}"))?;
        if trailers.step <= 1 {
            return Ok(None);
        }
        let object =
            self.repo.find_commit(commit).context(|| format!("reading commit {commit}"))?;
        Ok(object.parent_ids().next().map(|id| id.detach()))
    }

    /// A commit's first parent: the previous step, or for a session's first step its
    /// base commit (`None` on an unborn branch).
    pub fn parent_commit(&self, commit: ObjectId) -> Result<Option<ObjectId>> {
        let object =
            self.repo.find_commit(commit).context(|| format!("reading commit {commit}"))?;
        Ok(object.parent_ids().next().map(|id| id.detach()))
    }

    /// The steps of a session, oldest first.
    pub fn steps(&self, id: &str) -> Result<Vec<StepSummary>> {
        let tip = refs::read_ref(&self.repo, &refs::session_ref(id))?
            .ok_or_else(|| Error::UnknownSession(id.into()))?;
        self.steps_up_to(tip)
    }

    /// The steps of `last`'s session from its first up to `last` (which may be an
    /// archived, rewound-away step), oldest first.
    pub fn steps_up_to(&self, last: ObjectId) -> Result<Vec<StepSummary>> {
        let session = self.step_summary(last)?.session;
        let mut out = Vec::new();
        let mut current = Some(last);
        while let Some(commit) = current {
            let summary = self.step_summary(commit)?;
            if summary.session != session {
                break;
            }
            current = self.parent_step(commit)?;
            out.push(summary);
        }
        out.reverse();
        Ok(out)
    }
}
