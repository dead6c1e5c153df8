//! The git layer: snapshots of the workspace, step commits on hidden refs, rewind.
//!
//! [`Store`] is the API the agent and the commands use. It never changes `HEAD`, the
//! index, branches, tags or the stash, and never writes to the workspace except when asked
//! to rewind it.

mod address;
mod error;
pub mod gc;
mod ignore;
pub mod restore;
pub mod snapshot;
mod stat;
mod stat_cache;
pub mod step;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;

use crate::git::{objects, refs, temp};

pub use address::Checkpoint;
pub(crate) use error::{Context, IoContext};
pub use error::{Error, Result};
use snapshot::StatCacheUpdate;
pub use snapshot::{Skipped, Snapshot};
pub use step::{SessionInfo, StepKind, Trailers};

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Untracked files larger than this are left out of snapshots.
    pub max_new_file_size: u64,
    /// `[transcript] redact_secrets`: replace secret-looking strings in everything cairn
    /// stores of its own (see [`Store::redacts_secrets`]).
    pub redact_secrets: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_new_file_size: crate::config::DEFAULT_MAX_NEW_FILE_SIZE,
            redact_secrets: true,
        }
    }
}

/// A repository's checkpoint store, opened from a directory inside its working tree.
pub struct Store {
    sync: gix::ThreadSafeRepository,
    repo: gix::Repository,
    root: PathBuf,
    /// `<git common dir>/cairn`: private caches, never pushed, safe to delete.
    private_dir: PathBuf,
    /// This worktree's part of the private directory (the stat cache, the current session).
    worktree_dir: PathBuf,
    options: StoreOptions,
    /// Entries visited by the running snapshot, for progress display.
    pub progress: Arc<AtomicUsize>,
    /// Whether this process has swept up after killed ones yet (see [`temp`]).
    swept: std::cell::Cell<bool>,
}

/// A session as the caller holds it: its identity and the tip it last saw.
#[derive(Debug, Clone)]
pub struct Session {
    pub info: SessionInfo,
    /// The newest step's commit; `None` until the first step is recorded.
    pub tip: Option<ObjectId>,
    /// The number of the newest step (0 before the first).
    pub steps: u64,
    messages: usize,
}

impl Session {
    /// How many messages the session's conversation has recorded.
    pub fn message_count(&self) -> usize {
        self.messages
    }
}

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
struct WorkspacePart {
    tree: ObjectId,
    skipped: Vec<Skipped>,
    reserved_path_present: bool,
    /// From a full scan: saved once the step's objects are persisted.
    stat_cache: Option<StatCacheUpdate>,
}

impl WorkspacePart {
    fn scanned((snapshot, stat_cache): (Snapshot, StatCacheUpdate)) -> Self {
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

/// A session as `cairn sessions` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionSummary {
    pub id: String,
    pub title: String,
    pub steps: u64,
    pub base: Option<String>,
    pub tip: String,
    pub created: String,
    /// Time of the newest step, seconds since the epoch.
    pub updated: i64,
    /// The agent that recorded the session, when it was not cairn itself.
    pub agent: Option<String>,
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
    /// Opens the repository that contains `dir`.
    pub fn discover(dir: &Path, options: StoreOptions) -> Result<Store> {
        // Room for cairn's packs on top of those on disk (see `objects`): gix sizes its
        // index table once, at open.
        let slots = gix::odb::store::init::Slots::AsNeededByDiskState {
            multiplier: 1.5,
            minimum: 4 * objects::MAX_SMALL_PACKS + 64,
        };
        let mut trust = gix::sec::trust::Mapping::<gix::open::Options>::default();
        trust.full = trust.full.object_store_slots(slots);
        trust.reduced = trust.reduced.object_store_slots(slots);
        let sync = gix::ThreadSafeRepository::discover_opts(dir, Default::default(), trust)
            .map_err(|_| Error::NotARepository(dir.to_owned()))?;
        // New objects collect in memory and are written as one pack per step.
        let repo = sync.to_thread_local().with_object_memory();
        let Some(root) = repo.workdir().map(Path::to_owned) else {
            return Err(Error::BareRepository(repo.git_dir().to_owned()));
        };
        let private_dir = repo.common_dir().join("cairn");
        let worktree_name = if repo.git_dir() == repo.common_dir() {
            "main".to_string()
        } else {
            let name = repo
                .git_dir()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("linked-{name}")
        };
        let worktree_dir = private_dir.join("worktrees").join(worktree_name);
        Ok(Store {
            sync,
            repo,
            root,
            private_dir,
            worktree_dir,
            options,
            progress: Arc::default(),
            swept: std::cell::Cell::new(false),
        })
    }

    /// Whether secret-looking strings are replaced in what cairn stores of its own: every
    /// blob under `.cairn/`, every commit and reflog message of a step, and (through
    /// [`crate::memory`]) every fact. The workspace's files are the user's and are stored
    /// as they are.
    pub fn redacts_secrets(&self) -> bool {
        self.options.redact_secrets
    }

    /// The workspace root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The repository, for reading. Objects written through it stay in memory until the
    /// store next records a step or snapshot (see [`objects`]).
    pub fn repo(&self) -> &gix::Repository {
        &self.repo
    }

    /// A handle on the same repository that writes objects straight to disk (loose), for
    /// the few objects other layers write (memory commits).
    pub fn writing_repo(&self) -> gix::Repository {
        self.sync.to_thread_local()
    }

    /// `<git common dir>/cairn`, for other private caches.
    pub fn private_dir(&self) -> &Path {
        &self.private_dir
    }

    /// Snapshots the whole workspace (incrementally, through the stat cache).
    pub fn snapshot(&self) -> Result<Snapshot> {
        let (snapshot, stat_cache) = self.scan()?;
        self.persist(Some(stat_cache))?;
        Ok(snapshot)
    }

    /// The fast path: `base` (a workspace tree) with just `paths` brought up to date.
    /// `None` when a path names a directory, which needs [`Store::snapshot`].
    pub fn snapshot_paths(
        &self,
        base: ObjectId,
        paths: &[PathBuf],
    ) -> Result<Option<snapshot::PathsSnapshot>> {
        let snapshot = snapshot::apply_paths(
            &self.repo,
            &self.root,
            base,
            paths,
            self.options.max_new_file_size,
        )?;
        self.persist(None)?;
        Ok(snapshot)
    }

    /// A full scan whose objects are still in memory.
    fn scan(&self) -> Result<(Snapshot, StatCacheUpdate)> {
        // The stat cache is checked against the disk as it is now (see `stat_cache`).
        objects::refresh(&self.repo);
        let cache_path = self.worktree_dir.join("stat-cache");
        snapshot::scan(&snapshot::ScanContext {
            repo: &self.repo,
            sync: &self.sync,
            root: &self.root,
            cache_path: &cache_path,
            max_new_file_size: self.options.max_new_file_size,
            progress: &self.progress,
        })
    }

    /// Writes the objects written through [`Store::repo`] so far (see [`objects`]).
    pub fn persist_objects(&self) -> Result<()> {
        self.persist(None)
    }

    fn pack_registry(&self) -> PathBuf {
        self.private_dir.join(objects::REGISTRY)
    }

    /// Writes the objects buffered so far, then the stat cache that names them.
    fn persist(&self, stat_cache: Option<StatCacheUpdate>) -> Result<()> {
        if !self.swept.replace(true) {
            self.sweep();
        }
        let registry = self.pack_registry();
        if let Some(pack) = objects::persist(&self.repo)? {
            // Maintenance: if it fails, lookups are a little slower until a later step
            // merges the packs; the step itself is safely on disk.
            if objects::register(&registry, &pack).is_ok() {
                let _ = objects::consolidate(&self.repo, &registry, objects::MAX_SMALL_PACKS);
            }
        }
        if let Some(stat_cache) = stat_cache {
            stat_cache.save();
        }
        Ok(())
    }

    /// Removes what killed cairn processes left in the repository: temporary files of
    /// the private caches, half-written packs and old locks on cairn's refs (see [`temp`]). Once per process, before
    /// its first write; the workspace's are swept by the snapshot that meets them.
    fn sweep(&self) {
        objects::sweep_pack_dir(&self.repo);
        refs::sweep_abandoned_locks(&self.repo);
        temp::sweep(&self.private_dir);
        temp::sweep(&self.worktree_dir);
    }

    /// Begins a new session on top of the current `HEAD`. Nothing is written until its
    /// first step is recorded.
    pub fn start_session(
        &self,
        title: &str,
        model: Option<String>,
        agent: Option<String>,
    ) -> Result<Session> {
        let now = jiff::Timestamp::now();
        let mut id = step::new_session_id(now);
        while refs::read_ref(&self.repo, &refs::session_ref(&id))?.is_some() {
            id = step::new_session_id(now);
        }
        let base = self.repo.head_id().ok().map(|id| id.to_string());
        // Redacted before it is cut to a title, or a cut key would no longer match.
        let title = match self.options.redact_secrets {
            true => crate::secrets::redact(title).0,
            false => title.to_string(),
        };
        let info = SessionInfo {
            schema: crate::transcript::SCHEMA_VERSION,
            id,
            title: crate::title::session_title(&title),
            created: now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            base,
            model,
            agent,
            agent_session: None,
            cairn_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        Ok(Session { info, tip: None, steps: 0, messages: 0 })
    }

    /// Opens an existing session at its tip.
    pub fn open_session(&self, id: &str) -> Result<Session> {
        let tip = refs::read_ref(&self.repo, &refs::session_ref(id))?
            .ok_or_else(|| Error::UnknownSession(id.into()))?;
        self.session_at(id, tip)
    }

    /// A session handle positioned at `commit` (one of its steps).
    fn session_at(&self, id: &str, commit: ObjectId) -> Result<Session> {
        let trailers = self.trailers(commit, &format!("session {id}"))?;
        let cairn = self.cairn_tree(commit)?;
        let info = self.read_session_info(commit, cairn)?;
        let messages = self.messages_in(cairn)?;
        Ok(Session { info, tip: Some(commit), steps: trailers.step, messages })
    }

    /// How many messages the conversation holds at step `commit`.
    pub fn message_count(&self, commit: ObjectId) -> Result<usize> {
        self.messages_in(self.cairn_tree(commit)?)
    }

    fn messages_in(&self, cairn: Option<ObjectId>) -> Result<usize> {
        match cairn {
            Some(tree) => self.subtree_len(tree, step::MESSAGES_DIR),
            None => Ok(0),
        }
    }

    /// Starts a new session whose first step is a copy of `from` (workspace and
    /// conversation) with `from` as its parent, leaving the original session untouched.
    pub fn fork_session(&self, from: &Checkpoint) -> Result<Session> {
        let original = self.session_at(&from.session, from.commit)?;
        let title = format!("fork of {}@{}: {}", from.session, from.step, original.info.title);
        let mut session =
            self.start_session(&title, original.info.model.clone(), original.info.agent.clone())?;
        session.info.base = Some(from.commit.to_string());
        // The first step carries the conversation so far, reusing its blobs.
        session.messages = original.messages;
        let cairn = self.cairn_tree(from.commit)?;
        let mut record = StepRecord::new(StepKind::Manual, title.clone(), Changes::Unchanged);
        record.details.insert("forked_from".into(), serde_json::json!({"session": from.session, "step": from.step, "commit": from.commit.to_string()}));
        let workspace = WorkspacePart {
            tree: self.commit_tree(from.commit)?,
            skipped: Vec::new(),
            reserved_path_present: false,
            stat_cache: None,
        };
        self.commit_step_over(&mut session, record, workspace, cairn)?;
        Ok(session)
    }

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
        let applied = restore::apply(&self.repo, &self.root, &changes)?;
        Ok((session, applied))
    }

    /// The session this worktree last ran or resumed.
    pub fn current_session(&self) -> Result<Option<String>> {
        match std::fs::read_to_string(self.worktree_dir.join("current-session")) {
            Ok(id) => Ok(Some(id.trim().to_string()).filter(|id| !id.is_empty())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(Error::io("reading the current session", err)),
        }
    }

    pub fn set_current_session(&self, id: &str) -> Result<()> {
        // The agent calls this after every step; rewriting the same id would cost a file
        // creation each time.
        if self.current_session().ok().flatten().as_deref() == Some(id) {
            return Ok(());
        }
        std::fs::create_dir_all(&self.worktree_dir)
            .io_context(|| format!("creating {}", self.worktree_dir.display()))?;
        let path = self.worktree_dir.join("current-session");
        let mut file = tempfile::Builder::new()
            .prefix(&temp::prefix())
            .tempfile_in(&self.worktree_dir)
            .io_context(|| "recording the current session".into())?;
        std::io::Write::write_all(&mut file, format!("{id}\n").as_bytes())
            .io_context(|| "recording the current session".into())?;
        file.persist(&path).map_err(|err| Error::io("recording the current session", err.error))?;
        Ok(())
    }

    /// Records one step on `session` and moves its ref (compare-and-swap against the tip
    /// the session handle saw). On success the handle points at the new step.
    pub fn record_step(&self, session: &mut Session, record: StepRecord) -> Result<RecordedStep> {
        self.record_step_with(session, record, None)
    }

    /// Records a `user-edits` step when the workspace, as `changes` describe it, differs
    /// from the session's tip; returns `None` (recording nothing) when it does not.
    pub fn record_user_edits(
        &self,
        session: &mut Session,
        changes: Changes,
    ) -> Result<Option<RecordedStep>> {
        let Some(tip) = session.tip else { return Ok(None) };
        let workspace = self.workspace_part(session, &changes)?;
        if restore::diff_trees(&self.repo, Some(workspace.tree), Some(self.commit_tree(tip)?))?
            .is_empty()
        {
            return Ok(None);
        }
        let record = StepRecord::new(StepKind::UserEdits, "user edits", changes);
        self.commit_step(session, record, workspace).map(Some)
    }

    fn record_step_with(
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
    fn commit_step_over(
        &self,
        session: &mut Session,
        record: StepRecord,
        workspace: WorkspacePart,
        previous_cairn: Option<ObjectId>,
    ) -> Result<RecordedStep> {
        let number = session.steps + 1;
        // The one redaction pass: every step's `.cairn/` files and message come through here.
        let record = self.redacted(record);
        let WorkspacePart { tree: base_tree, skipped, reserved_path_present, stat_cache } =
            workspace;
        let mut cairn = self
            .repo
            .edit_tree(
                previous_cairn.unwrap_or_else(|| ObjectId::empty_tree(gix::hash::Kind::Sha1)),
            )
            .context(|| "editing the .cairn tree".into())?;
        if previous_cairn.is_none() || session.tip.is_none() {
            let toml = toml::to_string(&self.redacted_info(&session.info)).map_err(|err| {
                Error::Gix { context: "encoding session.toml".into(), message: err.to_string() }
            })?;
            let id = self.write_blob(toml.as_bytes())?;
            cairn
                .upsert(step::SESSION_FILE, EntryKind::Blob, id)
                .context(|| "adding session.toml".into())?;
        }
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
            step_json.insert("skipped".into(), serde_json::to_value(&skipped).unwrap_or_default());
        }
        step_json.extend(record.details);
        let mut step_json = serde_json::Value::Object(step_json);
        if self.options.redact_secrets {
            // Skipped paths are the workspace's names, which can hold anything.
            crate::secrets::redact_json(&mut step_json);
        }
        let step_bytes = serde_json::to_vec_pretty(&step_json).unwrap_or_default();
        cairn
            .upsert(step::STEP_FILE, EntryKind::Blob, self.write_blob(&step_bytes)?)
            .context(|| "adding step.json".into())?;
        let mut messages = session.messages;
        for message in &record.messages {
            messages += 1;
            let role = message.get("role").and_then(|r| r.as_str()).unwrap_or("message");
            let path =
                format!("{}/{}", step::MESSAGES_DIR, step::message_file_name(messages, role));
            let bytes = serde_json::to_vec_pretty(message).unwrap_or_default();
            cairn
                .upsert(path.as_str(), EntryKind::Blob, self.write_blob(&bytes)?)
                .context(|| "adding a message".into())?;
        }
        for (path, content) in &record.state_files {
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
        let cairn_tree = cairn.write().context(|| "writing the .cairn tree".into())?.detach();
        let mut root = self.repo.edit_tree(base_tree).context(|| "editing the step tree".into())?;
        root.upsert(snapshot::RESERVED_DIR, EntryKind::Tree, cairn_tree)
            .context(|| "adding .cairn".into())?;
        let tree = root.write().context(|| "writing the step tree".into())?.detach();

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
        let author = Self::author(record.agent.as_deref(), model.as_deref());
        let commit = self.write_commit(tree, parent, &message, author)?;
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

    /// `record` with secret-looking strings replaced in all it stores as text (messages,
    /// `step.json` details, `.cairn/` files, the commit message), when redaction is on.
    fn redacted(&self, mut record: StepRecord) -> StepRecord {
        use crate::secrets;
        if !self.options.redact_secrets {
            return record;
        }
        for message in &mut record.messages {
            secrets::redact_json(message);
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
    fn redacted_info(&self, info: &SessionInfo) -> SessionInfo {
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

    fn write_blob(&self, bytes: &[u8]) -> Result<ObjectId> {
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

    /// The user from git config, falling back to cairn itself when none is set.
    pub fn committer(&self) -> gix::actor::Signature {
        objects::committer(&self.repo)
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

    /// The trailers of a step commit, or [`Error::NotAStep`].
    fn trailers(&self, commit: ObjectId, what: &str) -> Result<Trailers> {
        let not_a_step = || Error::NotAStep { what: what.to_string(), commit: commit.to_string() };
        let object = self.repo.find_commit(commit).map_err(|_| not_a_step())?;
        let message = object.message_raw().map_err(|_| not_a_step())?;
        step::parse_trailers(&message.to_str_lossy()).ok_or_else(not_a_step)
    }

    /// The `.cairn` subtree of a step commit.
    fn cairn_tree(&self, commit: ObjectId) -> Result<Option<ObjectId>> {
        let tree = self.commit_tree(commit)?;
        let tree = self.repo.find_tree(tree).context(|| format!("reading the tree of {commit}"))?;
        let entry = tree.find_entry(snapshot::RESERVED_DIR);
        Ok(entry.filter(|e| e.mode().is_tree()).map(|e| e.oid().to_owned()))
    }

    fn commit_tree(&self, commit: ObjectId) -> Result<ObjectId> {
        let object =
            self.repo.find_commit(commit).context(|| format!("reading commit {commit}"))?;
        object.tree_id().map(|id| id.detach()).context(|| format!("reading the tree of {commit}"))
    }

    /// The tree of a step commit (workspace plus `.cairn/`).
    pub fn step_tree(&self, commit: ObjectId) -> Result<ObjectId> {
        self.commit_tree(commit)
    }

    /// The content of the file at `path` in `tree`, if it holds one.
    pub fn blob_at(&self, tree: ObjectId, path: &str) -> Result<Option<Vec<u8>>> {
        Ok(objects::blob_at(&self.repo, tree, path)?)
    }

    fn subtree_len(&self, tree: ObjectId, path: &str) -> Result<usize> {
        let tree = self.repo.find_tree(tree).context(|| format!("reading tree {tree}"))?;
        let Some(entry) =
            tree.lookup_entry_by_path(path).context(|| format!("looking up {path}"))?
        else {
            return Ok(0);
        };
        let sub = self.repo.find_tree(entry.oid()).context(|| format!("reading {path}"))?;
        Ok(sub.decode().context(|| format!("decoding {path}"))?.entries.len())
    }

    fn read_session_info(&self, commit: ObjectId, cairn: Option<ObjectId>) -> Result<SessionInfo> {
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

    /// All sessions, newest first.
    pub fn sessions(&self) -> Result<Vec<SessionSummary>> {
        let mut out = Vec::new();
        for (name, tip) in refs::list(&self.repo, refs::SESSIONS_PREFIX)? {
            let id = name.trim_start_matches(refs::SESSIONS_PREFIX).to_string();
            let summary = self.step_summary(tip)?;
            let info = self.read_session_info(tip, self.cairn_tree(tip)?)?;
            out.push(SessionSummary {
                id,
                title: info.title,
                steps: summary.step,
                base: info.base,
                tip: tip.to_string(),
                created: info.created,
                updated: summary.time,
                agent: info.agent,
            });
        }
        out.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(out)
    }

    /// Whether session `id` was started in this clone (its ref's oldest reflog entry is
    /// the step that created it) and no remote ever moved it: `cairn fetch` writes
    /// [`refs::FETCHED_FROM`] or [`refs::FAST_FORWARD_FROM`], plain `git fetch` writes no
    /// reflog for `refs/cairn/`. A session whose reflog was expired counts as not started
    /// here.
    pub fn created_here(&self, id: &str) -> Result<bool> {
        let messages = refs::reflog_messages(&self.repo, &refs::session_ref(id))?;
        let Some((first, later)) = messages.split_first() else { return Ok(false) };
        let fetched = |message: &String| {
            message.starts_with(refs::FETCHED_FROM) || message.starts_with(refs::FAST_FORWARD_FROM)
        };
        Ok(first.starts_with("cairn: step 1 (") && !later.iter().any(fetched))
    }

    /// The newest session that `agent` recorded for its own session `agent_session` (as
    /// `cairn hook` names them in `session.toml`), if any. Reads every session's
    /// `session.toml`; sessions whose state cannot be read are passed over.
    pub fn find_agent_session(&self, agent: &str, agent_session: &str) -> Result<Option<String>> {
        let mut found: Option<String> = None;
        for (name, tip) in refs::list(&self.repo, refs::SESSIONS_PREFIX)? {
            let Ok(cairn) = self.cairn_tree(tip) else { continue };
            let Ok(info) = self.read_session_info(tip, cairn) else { continue };
            if info.agent.as_deref() != Some(agent)
                || info.agent_session.as_deref() != Some(agent_session)
            {
                continue;
            }
            let id = name.trim_start_matches(refs::SESSIONS_PREFIX).to_string();
            if found.as_ref().is_none_or(|newest| &id > newest) {
                found = Some(id);
            }
        }
        Ok(found)
    }

    /// Resolves a checkpoint name (SPEC 2): a session id or prefix, `<session>@<n>`, `@`,
    /// `@~k`, or a git revision naming a cairn step.
    pub fn resolve(&self, name: &str) -> Result<Checkpoint> {
        address::resolve(self, name)
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
        restore::apply(&self.repo, &self.root, &changes)
    }

    /// The changes that make the workspace (snapshotted as `current`) equal `target`,
    /// every path and mode in them checked; an unsafe one is [`Error::UnsafeStep`].
    fn checked_changes(
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
    fn save_unrecorded_edits(
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

    /// Rewinds the target's session to it (SPEC 3): records unsaved workspace edits first,
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
        let applied = restore::apply(&self.repo, &self.root, &changes)?;
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
