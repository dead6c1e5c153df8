//! The checkpoint layer, on top of [`crate::git`]: snapshots of the workspace, step
//! commits on hidden session refs (`refs/cairn/sessions/`), and restore and rewind of the
//! workspace to a step.
//!
//! [`Store`] is the API the agent and the commands use. It never changes `HEAD`, the
//! index, branches, tags or the stash, and never writes to the workspace except when asked
//! to rewind it. This file opens the store and persists what it writes; the work is in
//! `session`, `commit` (recording a step), `read` (reading steps back), `rewind`,
//! `restore` and `snapshot`.

mod address;
mod commit;
mod error;
mod read;
mod restore;
mod rewind;
mod session;
mod snapshot;
mod step;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use gix::ObjectId;

use crate::git::{objects, refs, temp};

pub use address::Checkpoint;
use commit::WorkspacePart;
pub use commit::{Changes, RecordedStep, StepRecord};
pub use error::{Error, Result};
pub use read::{StepState, StepSummary};
pub use restore::{Applied, Change, apply_changes, check_tree, diff_step_trees, diff_trees};
pub use rewind::RewindOutcome;
pub use session::{Session, SessionSummary};
use snapshot::StatCacheUpdate;
pub use snapshot::fsmonitor::server_version as watchman_version;
pub use snapshot::{PathsSnapshot, RESERVED_DIR, ScanCounts, Skipped, Snapshot};
pub use step::{CONTEXT_FILE, NOTES_FILE, SUMMARY_FILE, SessionInfo, StepKind, Trailers};

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Untracked files larger than this are left out of snapshots.
    pub max_new_file_size: u64,
    /// `[transcript] redact_secrets`: replace secret-looking strings in everything cairn
    /// stores of its own (see [`Store::redacts_secrets`]).
    pub redact_secrets: bool,
    /// `[snapshot] fsmonitor`: ask Watchman what changed instead of scanning.
    pub watchman: bool,
}

impl StoreOptions {
    /// The options `config` sets.
    pub fn from_config(config: &crate::config::Config) -> StoreOptions {
        StoreOptions {
            max_new_file_size: config.max_new_file_size.value,
            redact_secrets: config.redact_secrets.value,
            watchman: config.fsmonitor.value != crate::config::FsMonitor::None,
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_new_file_size: crate::config::DEFAULT_MAX_NEW_FILE_SIZE,
            redact_secrets: true,
            watchman: false,
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
    /// Why the last snapshot scanned although Watchman is configured.
    watchman_note: std::cell::RefCell<Option<String>>,
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
            .map_err(|err| discovery_error(dir, err))?;
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
            watchman_note: std::cell::RefCell::default(),
        })
    }

    /// This repository as configuration knows a project: its top directory and its origin
    /// URL (trust is void when that changes). Read from the open repository, so a command
    /// finds the repository once for its configuration and its store.
    pub fn project(&self) -> crate::config::Project {
        let origin_url =
            self.repo.config_snapshot().string("remote.origin.url").map(|url| url.to_string());
        crate::config::Project { root: self.root.clone(), origin_url }
    }

    /// Takes the snapshot settings of the configuration loaded for [`Store::project`].
    pub fn set_options(&mut self, options: StoreOptions) {
        self.options = options;
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
    pub(super) fn scan(&self) -> Result<(Snapshot, StatCacheUpdate)> {
        // The stat cache is checked against the disk as it is now (see `stat_cache`).
        objects::refresh(&self.repo);
        let cache_path = self.stat_cache_path();
        let ctx = snapshot::ScanContext {
            repo: &self.repo,
            sync: &self.sync,
            root: &self.root,
            cache_path: &cache_path,
            max_new_file_size: self.options.max_new_file_size,
            progress: &self.progress,
        };
        if !self.options.watchman {
            return snapshot::scan(&ctx);
        }
        let state_path = self.worktree_dir.join("fsmonitor");
        std::fs::create_dir_all(&self.worktree_dir)
            .map_err(|err| Error::io(format!("creating {}", self.worktree_dir.display()), err))?;
        let (snapshot, update, why) = snapshot::scan_with_watchman(&ctx, &state_path)?;
        *self.watchman_note.borrow_mut() = why;
        Ok((snapshot, update))
    }

    /// Whether snapshots ask Watchman first (`[snapshot] fsmonitor`).
    pub fn watches_with_watchman(&self) -> bool {
        self.options.watchman
    }

    /// With `[snapshot] fsmonitor` on: why the last snapshot of this process scanned the
    /// workspace instead of asking Watchman (`None`: it asked Watchman, or took none).
    pub fn watchman_note(&self) -> Option<String> {
        self.watchman_note.borrow().clone()
    }

    /// The directories the last full scan entered, relative to the workspace root (the root
    /// left out), read from the stat cache when the returned function runs: what a file
    /// watcher must watch. The function owns what it reads, so it can run on any thread.
    pub fn scanned_dirs(&self) -> impl FnOnce() -> Vec<PathBuf> + Send + 'static {
        let cache_path = self.stat_cache_path();
        move || snapshot::scanned_dirs(&cache_path)
    }

    fn stat_cache_path(&self) -> PathBuf {
        self.worktree_dir.join("stat-cache")
    }

    /// Writes the objects written through [`Store::repo`] so far (see [`objects`]).
    pub fn persist_objects(&self) -> Result<()> {
        self.persist(None)
    }

    /// The registry of cairn's own packs, which gc consolidates.
    pub(crate) fn pack_registry(&self) -> PathBuf {
        self.private_dir.join(objects::REGISTRY)
    }

    /// Writes the objects buffered so far, then the stat cache that names them.
    pub(super) fn persist(&self, stat_cache: Option<StatCacheUpdate>) -> Result<()> {
        if !self.swept.replace(true) {
            self.sweep();
        }
        let registry = self.pack_registry();
        if let Some(pack) = objects::persist(&self.repo)? {
            // Maintenance: if it fails, lookups are a little slower until a later step
            // merges the packs; the step itself is safely on disk.
            if objects::register(&registry, &pack).is_ok() {
                let _ = objects::consolidate(&self.repo, &registry, objects::Merge::Geometric);
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

    /// The user from git config, falling back to cairn itself when none is set.
    pub fn committer(&self) -> gix::actor::Signature {
        objects::committer(&self.repo)
    }
}

/// Why no repository could be opened at `dir`: none was found there or above it, or one
/// was and opening it failed (the cause is kept).
fn discovery_error(dir: &Path, err: gix::Error) -> Error {
    use gix::discover::upwards::Error as Upwards;
    let none_found = err.downcast_any_ref::<Upwards>().is_some_and(|err| {
        matches!(
            err,
            Upwards::NoGitRepository { .. }
                | Upwards::NoGitRepositoryWithinCeiling { .. }
                | Upwards::NoGitRepositoryWithinFs { .. }
        )
    });
    if none_found {
        Error::NotARepository(dir.to_owned())
    } else {
        Error::OpenRepository { dir: dir.to_owned(), source: Box::new(err) }
    }
}

#[cfg(test)]
mod tests {
    use super::StoreOptions;

    /// A command whose configuration does not load keeps `StoreOptions::default()`: it must
    /// be what the built-in configuration sets.
    #[test]
    fn default_options_are_the_built_in_configurations() {
        let default = StoreOptions::default();
        let built_in = StoreOptions::from_config(&crate::config::Config::built_in());
        assert_eq!(
            (default.max_new_file_size, default.redact_secrets, default.watchman),
            (built_in.max_new_file_size, built_in.redact_secrets, built_in.watchman)
        );
    }
}
