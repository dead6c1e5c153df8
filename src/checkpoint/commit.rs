//! Recording a step: the workspace part (a scan, known paths or a given tree), the
//! `.cairn/` tree beside it, the commit and the compare-and-swap of the session ref.

use std::path::PathBuf;

use gix::ObjectId;
use gix::objs::tree::EntryKind;

use super::error::Result;
use super::snapshot::{self, Skipped, Snapshot, StatCacheUpdate};
use super::{Session, SessionInfo, StepKind, Store, Trailers, restore, step};
use crate::git::Context;
use crate::git::{objects, refs};

/// An editor of a step's `.cairn` tree.
type CairnEditor<'repo> = gix::object::tree::Editor<'repo>;

/// What the workspace part of a step is.
#[derive(Debug, Clone)]
pub enum Changes {
    /// Scan the whole workspace (incrementally).
    Scan,
    /// Only these paths (relative to the root) changed since the session's tip.
    Paths(Vec<PathBuf>),
    /// The workspace is as the tip recorded it.
    Unchanged,
    /// The workspace is as this workspace tree records it (a base commit's tree, for a
    /// step recorded after the fact that stands before work done since).
    Tree(ObjectId),
}

/// One step, as a caller describes it.
#[derive(Debug, Clone)]
pub struct StepRecord {
    pub kind: StepKind,
    pub subject: String,
    pub body: String,
    pub changes: Changes,
    /// Messages to append to the conversation, in order.
    pub messages: Vec<serde_json::Value>,
    /// Fields merged into `step.json` (tool calls and results, usage, timings).
    pub details: serde_json::Map<String, serde_json::Value>,
    pub tools: Vec<String>,
    pub model: Option<String>,
    /// The agent that did the work when it was not cairn itself (another agent's hook):
    /// named in the commit's author, a `Cairn-Agent:` trailer and `step.json`.
    pub agent: Option<String>,
    /// Other files under `.cairn/` (memory), by path; `None` removes one.
    pub state_files: Vec<(String, Option<Vec<u8>>)>,
}

impl StepRecord {
    pub fn new(kind: StepKind, subject: impl Into<String>, changes: Changes) -> Self {
        StepRecord {
            kind,
            subject: subject.into(),
            body: String::new(),
            changes,
            messages: Vec::new(),
            details: serde_json::Map::new(),
            tools: Vec::new(),
            model: None,
            agent: None,
            state_files: Vec::new(),
        }
    }

    /// Adds `name` (in milliseconds) to the `timings` object of the step's `step.json`.
    pub fn add_timing(&mut self, name: &str, took: std::time::Duration) {
        let timings = self.details.entry("timings").or_insert_with(|| serde_json::json!({}));
        if let Some(timings) = timings.as_object_mut() {
            timings.insert(name.into(), (took.as_micros() as f64 / 1000.0).into());
        }
    }
}

/// The workspace side of a step about to be committed.
pub(super) struct WorkspacePart {
    pub(super) tree: ObjectId,
    pub(super) skipped: Vec<Skipped>,
    pub(super) reserved_path_present: bool,
    /// From a full scan: saved once the step's objects are persisted.
    pub(super) stat_cache: Option<StatCacheUpdate>,
}

impl WorkspacePart {
    pub(super) fn scanned((snapshot, stat_cache): (Snapshot, StatCacheUpdate)) -> Self {
        WorkspacePart {
            tree: snapshot.tree,
            skipped: snapshot.skipped,
            reserved_path_present: snapshot.reserved_path_present,
            stat_cache: Some(stat_cache),
        }
    }
}

/// A recorded step.
#[derive(Debug, Clone)]
pub struct RecordedStep {
    pub commit: ObjectId,
    pub number: u64,
    pub skipped: Vec<Skipped>,
    pub reserved_path_present: bool,
}

impl Store {
    /// Records one step on `session` and moves its ref (compare-and-swap against the tip
    /// the session handle saw). On success the handle points at the new step.
    pub fn record_step(&self, session: &mut Session, record: StepRecord) -> Result<RecordedStep> {
        self.record_step_with(session, record, None)
    }

    /// Records a `user-edits` step when the workspace, as `changes` describe it, differs
    /// from the session's tip, or for a session with no step yet from the commit it starts
    /// on (edits the user had not recorded when another agent's session began); returns
    /// `None` (recording nothing) when it does not.
    pub fn record_user_edits(
        &self,
        session: &mut Session,
        changes: Changes,
    ) -> Result<Option<RecordedStep>> {
        let workspace = self.workspace_part(session, &changes)?;
        let unchanged = match session.tip {
            Some(tip) => {
                restore::diff_trees(&self.repo, Some(workspace.tree), Some(self.commit_tree(tip)?))?
                    .is_empty()
            }
            None => {
                let base = self.base_tree(session)?;
                // A base tree that does not read as a safe tree differs from the workspace,
                // whose snapshot always is: recording the edits then loses nothing.
                base == Some(workspace.tree)
                    || restore::diff_trees(&self.repo, Some(workspace.tree), base)
                        .is_ok_and(|changes| changes.is_empty())
            }
        };
        if unchanged {
            // Nothing to record, but the snapshot still holds: keeping its stat cache (and
            // Watchman clock) spares the next snapshot re-reading every path this one read,
            // which otherwise grows with each agent step since the last recorded scan.
            self.persist(workspace.stat_cache)?;
            return Ok(None);
        }
        let record = StepRecord::new(StepKind::UserEdits, "user edits", changes);
        self.commit_step(session, record, workspace).map(Some)
    }

    pub(super) fn record_step_with(
        &self,
        session: &mut Session,
        record: StepRecord,
        scanned: Option<(Snapshot, StatCacheUpdate)>,
    ) -> Result<RecordedStep> {
        let mut record = record;
        let workspace = match scanned {
            Some(scanned) => WorkspacePart::scanned(scanned),
            None => {
                let started = std::time::Instant::now();
                let workspace = self.workspace_part(session, &record.changes)?;
                record.add_timing("snapshot_ms", started.elapsed());
                workspace
            }
        };
        self.commit_step(session, record, workspace)
    }

    /// The workspace tree a step records (possibly still holding the tip's `.cairn`,
    /// which `commit_step` replaces).
    fn workspace_part(&self, session: &Session, changes: &Changes) -> Result<WorkspacePart> {
        match (changes, session.tip) {
            (Changes::Tree(tree), _) => Ok(WorkspacePart {
                tree: *tree,
                skipped: Vec::new(),
                reserved_path_present: false,
                stat_cache: None,
            }),
            (Changes::Unchanged, Some(tip)) => Ok(WorkspacePart {
                tree: self.commit_tree(tip)?,
                skipped: Vec::new(),
                reserved_path_present: false,
                stat_cache: None,
            }),
            (Changes::Paths(paths), Some(tip)) => {
                let base = self.commit_tree(tip)?;
                match snapshot::apply_paths(
                    &self.repo,
                    &self.root,
                    base,
                    paths,
                    self.options.max_new_file_size,
                )? {
                    Some(paths) => Ok(WorkspacePart {
                        tree: paths.tree,
                        skipped: paths.skipped,
                        reserved_path_present: false,
                        stat_cache: None,
                    }),
                    None => Ok(WorkspacePart::scanned(self.scan()?)),
                }
            }
            _ => Ok(WorkspacePart::scanned(self.scan()?)),
        }
    }

    fn commit_step(
        &self,
        session: &mut Session,
        record: StepRecord,
        workspace: WorkspacePart,
    ) -> Result<RecordedStep> {
        let previous_cairn = match session.tip {
            Some(tip) => self.cairn_tree(tip)?,
            None => None,
        };
        self.commit_step_over(session, record, workspace, previous_cairn)
    }

    /// Commits a step whose `.cairn` starts from `previous_cairn` (the tip's, or a fork
    /// origin's). A session's first step always gets its own `session.toml`.
    pub(super) fn commit_step_over(
        &self,
        session: &mut Session,
        record: StepRecord,
        workspace: WorkspacePart,
        previous_cairn: Option<ObjectId>,
    ) -> Result<RecordedStep> {
        let number = session.steps + 1;
        // The one redaction pass: every step's `.cairn/` files and message come through here.
        let mut record = self.redacted(record);
        let WorkspacePart { tree: base_tree, skipped, reserved_path_present, stat_cache } =
            workspace;
        let mut cairn = self
            .repo
            .edit_tree(
                previous_cairn.unwrap_or_else(|| ObjectId::empty_tree(gix::hash::Kind::Sha1)),
            )
            .context(|| "editing the .cairn tree".into())?;
        if previous_cairn.is_none() || session.tip.is_none() {
            self.add_session_file(&mut cairn, &session.info)?;
        }
        let step_bytes = self.step_json(session, &mut record, number, &skipped);
        cairn
            .upsert(step::STEP_FILE, EntryKind::Blob, self.write_blob(&step_bytes)?)
            .context(|| "adding step.json".into())?;
        let messages = self.add_messages(&mut cairn, session.messages, &record.messages)?;
        self.add_state_files(&mut cairn, &record.state_files)?;
        self.add_project_memory(&mut cairn)?;
        let cairn_tree = cairn.write().context(|| "writing the .cairn tree".into())?.detach();
        let mut root = self.repo.edit_tree(base_tree).context(|| "editing the step tree".into())?;
        root.upsert(snapshot::RESERVED_DIR, EntryKind::Tree, cairn_tree)
            .context(|| "adding .cairn".into())?;
        let tree = root.write().context(|| "writing the step tree".into())?.detach();
        // The workspace tree without `.cairn`, what a snapshot of the workspace gives (and
        // Watchman's saved state names), is stored with the step: a later check that finds
        // the workspace unchanged then has no new object, where that one tree cost it a
        // pack of its own (about 1 ms with its fsyncs) before each model call.
        root.remove(snapshot::RESERVED_DIR).context(|| "removing .cairn".into())?;
        root.write().context(|| "writing the workspace tree".into())?;

        let commit = self.write_step_commit(session, &record, number, tree)?;
        // Objects first: the ref must never name a commit that is not on disk.
        self.persist(stat_cache)?;
        let reflog = format!(
            "cairn: step {number} ({}): {}",
            record.kind,
            crate::text::one_line(&record.subject)
        );
        refs::compare_and_swap(
            &self.repo,
            &refs::session_ref(&session.info.id),
            session.tip,
            commit,
            &reflog,
            self.committer().to_ref(&mut gix::date::parse::TimeBuf::default()),
        )?;

        session.tip = Some(commit);
        session.steps = number;
        session.messages = messages;
        Ok(RecordedStep { commit, number, skipped, reserved_path_present })
    }

    /// Adds `session.toml`, as stored (redacted), to a `.cairn` tree.
    fn add_session_file(&self, cairn: &mut CairnEditor<'_>, info: &SessionInfo) -> Result<()> {
        let toml = toml::to_string(&self.redacted_info(info))
            .context(|| "encoding session.toml".into())?;
        let id = self.write_blob(toml.as_bytes())?;
        cairn
            .upsert(step::SESSION_FILE, EntryKind::Blob, id)
            .context(|| "adding session.toml".into())?;
        Ok(())
    }

    /// The step's `step.json`: its identity, skipped paths and the record's details
    /// (taken out of `record`).
    fn step_json(
        &self,
        session: &Session,
        record: &mut StepRecord,
        number: u64,
        skipped: &[Skipped],
    ) -> Vec<u8> {
        let mut step_json = serde_json::Map::new();
        step_json.insert("session".into(), session.info.id.clone().into());
        step_json.insert("number".into(), number.into());
        step_json.insert("kind".into(), record.kind.as_str().into());
        if let Some(agent) = &record.agent {
            step_json.insert("agent".into(), agent.clone().into());
        }
        // Commit times have one-second resolution; ordering steps of different sessions
        // (as `cairn blame` does) needs finer.
        step_json.insert("recorded_at_ms".into(), jiff::Timestamp::now().as_millisecond().into());
        if !skipped.is_empty() {
            step_json.insert("skipped".into(), serde_json::to_value(skipped).unwrap_or_default());
        }
        step_json.extend(std::mem::take(&mut record.details));
        let mut step_json = serde_json::Value::Object(step_json);
        if self.options.redact_secrets {
            // Skipped paths are the workspace's names, which can hold anything.
            crate::secrets::redact_json(&mut step_json);
        }
        serde_json::to_vec_pretty(&step_json).unwrap_or_default()
    }

    /// Appends `new` to the conversation after its first `recorded` messages; returns
    /// how many it then holds.
    fn add_messages(
        &self,
        cairn: &mut CairnEditor<'_>,
        recorded: usize,
        new: &[serde_json::Value],
    ) -> Result<usize> {
        let mut messages = recorded;
        for message in new {
            messages += 1;
            let role = message.get("role").and_then(|r| r.as_str()).unwrap_or("message");
            let path =
                format!("{}/{}", step::MESSAGES_DIR, step::message_file_name(messages, role));
            let bytes = serde_json::to_vec_pretty(message).unwrap_or_default();
            cairn
                .upsert(path.as_str(), EntryKind::Blob, self.write_blob(&bytes)?)
                .context(|| "adding a message".into())?;
        }
        Ok(messages)
    }

    /// Writes or removes the other `.cairn/` files a step record names.
    fn add_state_files(
        &self,
        cairn: &mut CairnEditor<'_>,
        files: &[(String, Option<Vec<u8>>)],
    ) -> Result<()> {
        for (path, content) in files {
            match content {
                Some(bytes) => {
                    cairn
                        .upsert(path.as_str(), EntryKind::Blob, self.write_blob(bytes)?)
                        .context(|| format!("adding .cairn/{path}"))?;
                }
                None => {
                    cairn.remove(path.as_str()).context(|| format!("removing .cairn/{path}"))?;
                }
            }
        }
        Ok(())
    }

    /// Records the project memory as it stands (the tree of `refs/cairn/memory`).
    fn add_project_memory(&self, cairn: &mut CairnEditor<'_>) -> Result<()> {
        match refs::read_ref(&self.repo, refs::MEMORY_REF)? {
            // A memory ref that names no commit (set by hand) must not stop steps: the
            // step then keeps the memory tree its parent recorded.
            Some(memory) => {
                if let Ok(tree) = self.commit_tree(memory) {
                    cairn
                        .upsert(step::PROJECT_MEMORY_DIR, EntryKind::Tree, tree)
                        .context(|| "adding the project memory".into())?;
                }
            }
            None => {
                cairn
                    .remove(step::PROJECT_MEMORY_DIR)
                    .context(|| "removing the project memory".into())?;
            }
        }
        Ok(())
    }

    /// Writes the step's commit: its message with trailers, on the session's tip (or, for
    /// a first step, its base commit).
    fn write_step_commit(
        &self,
        session: &Session,
        record: &StepRecord,
        number: u64,
        tree: ObjectId,
    ) -> Result<ObjectId> {
        let model = record.model.clone().or_else(|| session.info.model.clone());
        let trailers = Trailers {
            session: session.info.id.clone(),
            step: number,
            kind: record.kind,
            tools: record.tools.clone(),
            model: model.clone(),
            agent: record.agent.clone(),
        };
        let message = step::compose_message(&record.subject, &record.body, &trailers);
        let parent = session.tip.or_else(|| {
            session.info.base.as_deref().and_then(|b| ObjectId::from_hex(b.as_bytes()).ok())
        });
        let author = match record.kind {
            // The user's own edits are theirs, whichever agent's session noticed them.
            StepKind::UserEdits => self.committer(),
            _ => Self::author(record.agent.as_deref(), model.as_deref()),
        };
        self.write_commit(tree, parent, &message, author)
    }

    /// The workspace tree of the commit a session starts on (`None` on an unborn branch).
    fn base_tree(&self, session: &Session) -> Result<Option<ObjectId>> {
        let base = session.info.base.as_deref().and_then(|b| ObjectId::from_hex(b.as_bytes()).ok());
        base.map(|commit| self.commit_tree(commit)).transpose()
    }

    /// `record` with secret-looking strings replaced in all it stores as text (messages,
    /// `step.json` details, `.cairn/` files, the commit message), when redaction is on.
    fn redacted(&self, mut record: StepRecord) -> StepRecord {
        use crate::secrets;
        if !self.options.redact_secrets {
            return record;
        }
        for message in &mut record.messages {
            crate::transcript::redact_message(message, secrets::redact_json);
        }
        for value in record.details.values_mut() {
            secrets::redact_json(value);
        }
        for (_, content) in &mut record.state_files {
            if let Some(bytes) = content
                && let Some(redacted) = secrets::redact_stored(bytes)
            {
                *bytes = redacted;
            }
        }
        // Subject and body each on their own, so a key block cut short in one cannot run
        // on into the trailers.
        record.subject = secrets::redact(&record.subject).0;
        record.body = secrets::redact(&record.body).0;
        record
    }

    /// `session.toml` as stored: the title is the first prompt, which can hold anything.
    pub(super) fn redacted_info(&self, info: &SessionInfo) -> SessionInfo {
        let mut info = info.clone();
        if self.options.redact_secrets {
            for field in [Some(&mut info.title), info.agent_session.as_mut(), info.model.as_mut()]
                .into_iter()
                .flatten()
            {
                *field = crate::secrets::redact(field).0;
            }
        }
        info
    }

    pub(super) fn write_blob(&self, bytes: &[u8]) -> Result<ObjectId> {
        Ok(self.repo.write_blob(bytes).context(|| "writing a blob".into())?.detach())
    }

    /// `cairn (<model>)`, or `<agent> via cairn (<model>)` for another agent's steps.
    fn author(agent: Option<&str>, model: Option<&str>) -> gix::actor::Signature {
        let recorder = match agent {
            Some(agent) => format!("{agent} via cairn"),
            None => "cairn".to_string(),
        };
        let name = match model {
            Some(model) => format!("{recorder} ({model})"),
            None => recorder,
        };
        gix::actor::Signature {
            name: name.into(),
            email: objects::CAIRN_EMAIL.into(),
            time: gix::date::Time::now_local_or_utc(),
        }
    }

    fn write_commit(
        &self,
        tree: ObjectId,
        parent: Option<ObjectId>,
        message: &str,
        author: gix::actor::Signature,
    ) -> Result<ObjectId> {
        let commit = gix::objs::Commit {
            tree,
            parents: parent.into_iter().collect(),
            author,
            committer: self.committer(),
            encoding: None,
            message: message.into(),
            extra_headers: Vec::new(),
        };
        Ok(self.repo.write_object(&commit).context(|| "writing a step commit".into())?.detach())
    }
}
