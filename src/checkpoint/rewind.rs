//! Rewinding a session to an earlier step, and forking a step into the workspace: unsaved
//! edits are recorded first, every path is checked before anything is written.

use gix::ObjectId;

use super::error::{Error, Result};
use super::snapshot::{Snapshot, StatCacheUpdate};
use super::{
    Changes, Checkpoint, RecordedStep, Session, StepKind, StepRecord, StepSummary, Store, restore,
};
use crate::git::refs;

/// What a rewind did.
#[derive(Debug, Clone)]
pub struct RewindOutcome {
    pub session: String,
    pub target: Checkpoint,
    /// The step that recorded unsaved workspace changes first, if there were any.
    pub saved_edits: Option<RecordedStep>,
    /// Where the old tip was kept.
    pub archived_as: Option<String>,
    pub applied: restore::Applied,
}

impl Store {
    /// Forks `from` (as [`Store::fork_session`]) and makes the workspace equal it, after
    /// checking every path the restore would touch: on an unsafe one nothing is recorded
    /// and nothing written ([`Error::UnsafeStep`]).
    ///
    /// Edits the fork would overwrite are recorded first, as [`Store::rewind`] does: as a
    /// `user-edits` step of the worktree's current session when the workspace differs from
    /// its tip. With no current session (or one whose ref is gone), a workspace that
    /// differs from `from` is recorded as the first step of a new session rather than
    /// refused, so no file is ever lost and the fork still happens.
    pub fn fork_into_workspace(&self, from: &Checkpoint) -> Result<(Session, restore::Applied)> {
        let (snapshot, stat_cache) = self.scan()?;
        let changes = self.checked_changes(snapshot.tree, from)?;
        let current = match self.current_session()? {
            Some(id) if refs::read_ref(&self.repo, &refs::session_ref(&id))?.is_some() => {
                Some(self.open_session(&id)?)
            }
            _ => None,
        };
        match current {
            Some(mut session) => {
                self.save_unrecorded_edits(&mut session, snapshot, stat_cache, "fork")?;
            }
            None if !changes.is_empty() => {
                let mut session = self.start_session("user edits before fork", None, None)?;
                let record =
                    StepRecord::new(StepKind::UserEdits, "user edits before fork", Changes::Scan);
                self.record_step_with(&mut session, record, Some((snapshot, stat_cache)))?;
            }
            None => self.persist(Some(stat_cache))?,
        }
        let session = self.fork_session(from)?;
        let applied = restore::apply_changes(&self.repo, &self.root, &changes)?;
        Ok((session, applied))
    }

    /// Makes the workspace equal the snapshot of step `commit`, writing and deleting only
    /// the paths that differ (the agent's `rewind` tool; the session ref does not move).
    pub fn restore_workspace(&self, commit: ObjectId) -> Result<restore::Applied> {
        let current = self.snapshot()?.tree;
        self.restore_from(current, commit)
    }

    fn restore_from(&self, current: ObjectId, commit: ObjectId) -> Result<restore::Applied> {
        let changes =
            restore::diff_trees(&self.repo, Some(current), Some(self.commit_tree(commit)?))?;
        restore::apply_changes(&self.repo, &self.root, &changes)
    }

    /// The changes that make the workspace (snapshotted as `current`) equal `target`,
    /// every path and mode in them checked; an unsafe one is [`Error::UnsafeStep`].
    pub(super) fn checked_changes(
        &self,
        current: ObjectId,
        target: &Checkpoint,
    ) -> Result<Vec<restore::Change>> {
        let tree = self.commit_tree(target.commit)?;
        restore::diff_trees(&self.repo, Some(current), Some(tree))
            .map_err(|err| err.in_step(&target.session, target.step))
    }

    /// Records the scanned workspace as a `user-edits` step of `session` when it differs
    /// from the session's tip (before a `rewind` or `fork` overwrites it); otherwise only
    /// saves the stat cache and records nothing.
    pub(super) fn save_unrecorded_edits(
        &self,
        session: &mut Session,
        snapshot: Snapshot,
        stat_cache: StatCacheUpdate,
        before: &str,
    ) -> Result<Option<RecordedStep>> {
        // A tip that does not even read as a safe tree differs from the workspace, whose
        // snapshot is always safe: recording the edits then loses nothing.
        let unsaved = match session.tip {
            Some(tip) => {
                restore::diff_trees(&self.repo, Some(snapshot.tree), Some(self.commit_tree(tip)?))
                    .map_or(true, |changes| !changes.is_empty())
            }
            None => true,
        };
        if !unsaved {
            self.persist(Some(stat_cache))?;
            return Ok(None);
        }
        let record = StepRecord::new(
            StepKind::UserEdits,
            format!("user edits before {before}"),
            Changes::Scan,
        );
        self.record_step_with(session, record, Some((snapshot, stat_cache))).map(Some)
    }

    /// Refuses a target that is not a step reachable from the session's tip `tip` or from
    /// one of its archive refs: the target's session comes from its commit's trailer,
    /// which any commit (a diverged remote tip, a crafted one) can claim.
    fn ensure_in_history(&self, target: &Checkpoint, tip: ObjectId) -> Result<()> {
        let is_target = |steps: Vec<StepSummary>| steps.iter().any(|s| s.commit == target.commit);
        if is_target(self.steps_up_to(tip)?) {
            return Ok(());
        }
        let archives = format!("{}{}/", refs::ARCHIVE_PREFIX, target.session);
        for (_, archived) in refs::list(&self.repo, &archives)? {
            // An unreadable archive cannot vouch for anything; it does not block the rest.
            if self.steps_up_to(archived).is_ok_and(is_target) {
                return Ok(());
            }
        }
        Err(Error::NotInHistory {
            name: target.commit.to_string(),
            session: target.session.clone(),
        })
    }

    /// Rewinds the target's session to it: records unsaved workspace edits first,
    /// keeps the old tip under `refs/cairn/archive/`, moves the ref, and makes the
    /// workspace equal the target, touching only paths that differ.
    ///
    /// The target must be one of the session's own steps ([`Error::NotInHistory`]).
    /// Every path and mode the restore would touch is checked before anything is
    /// recorded: on an unsafe one ([`Error::UnsafeStep`]) no step is recorded, no ref
    /// moves and nothing is written.
    pub fn rewind(&self, target: &Checkpoint) -> Result<RewindOutcome> {
        let mut session = self.open_session(&target.session)?;
        let tip = session.tip.ok_or_else(|| Error::UnknownSession(target.session.clone()))?;
        self.ensure_in_history(target, tip)?;
        let (snapshot, stat_cache) = self.scan()?;
        let changes = self.checked_changes(snapshot.tree, target)?;
        let saved_edits =
            self.save_unrecorded_edits(&mut session, snapshot, stat_cache, "rewind")?;
        let tip = session.tip.unwrap_or(tip);
        let mut archived_as = None;
        if tip != target.commit {
            let mut seconds = jiff::Timestamp::now().as_second();
            let name = loop {
                let name = format!("{}{}/{seconds}", refs::ARCHIVE_PREFIX, target.session);
                if refs::read_ref(&self.repo, &name)?.is_none() {
                    break name;
                }
                seconds += 1;
            };
            let committer = self.committer();
            let mut buf = gix::date::parse::TimeBuf::default();
            refs::compare_and_swap(
                &self.repo,
                &name,
                None,
                tip,
                &format!("cairn: archive before rewind to step {}", target.step),
                committer.to_ref(&mut buf),
            )?;
            refs::compare_and_swap(
                &self.repo,
                &refs::session_ref(&target.session),
                Some(tip),
                target.commit,
                &format!("cairn: rewind to step {}", target.step),
                committer.to_ref(&mut buf),
            )?;
            archived_as = Some(name);
        }
        let applied = restore::apply_changes(&self.repo, &self.root, &changes)?;
        self.set_current_session(&target.session)?;
        Ok(RewindOutcome {
            session: target.session.clone(),
            target: target.clone(),
            saved_edits,
            archived_as,
            applied,
        })
    }
}
