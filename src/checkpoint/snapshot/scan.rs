//! The full scan: walk the workspace against the stat cache, hash what changed, build
//! the trees; see [`super`] for the three phases.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gix::ObjectId;
use gix::bstr::BString;
use gix::objs::Exists as _;
use rayon::prelude::*;

use super::attributes::index_holds_raw_bytes;
use super::fsmonitor::{self, Answer, MonitorState};
use super::ignore::{DirRules, GlobalRules};
use super::index::LazyIndex;
use super::stat::FileStat;
use super::stat_cache::{CacheWriter, StatCache, scan_clock};
use super::tree::{BuildOutput, write_tree};
use super::walk::{Mode, ScannedDir, Walker};
use super::{
    HashOutcome, RESERVED_DIR, ScanCounts, Snapshot, StatCacheUpdate, apply_paths, read_blob,
    store_blob,
};
use crate::checkpoint::error::Result;
use crate::git::objects;
use crate::git::{Context, IoContext};

/// What the scan needs besides the workspace.
pub struct ScanContext<'a> {
    /// Where new trees and blobs go: a handle with object memory, which the caller
    /// persists (see [`crate::git::objects`]) before anything names them.
    pub repo: &'a gix::Repository,
    /// For the hashing threads, which only read.
    pub sync: &'a gix::ThreadSafeRepository,
    pub root: &'a Path,
    pub cache_path: &'a Path,
    pub max_new_file_size: u64,
    /// Incremented once per entry visited, for progress display.
    pub progress: &'a AtomicUsize,
}

/// About 100 bytes of index per entry, and decoding an entry costs about 1/64 of
/// hashing a small file: the index is consulted for pending files once there is one per
/// 64 entries it holds.
const INDEX_BYTES_PER_PENDING_FILE: u64 = 100 * 64;

/// Files hashed per parallel batch; between batches, buffered objects past
/// [`objects::FLUSH_BYTES`] are written out, which bounds memory on a first snapshot.
const HASH_BATCH: usize = 256;

/// Snapshots the whole workspace, reusing the stat cache and returning its refreshed form.
/// New objects stay in `ctx.repo`'s object memory, except that a large scan writes them
/// out as it goes.
pub fn scan(ctx: &ScanContext<'_>) -> Result<(Snapshot, StatCacheUpdate)> {
    let global = GlobalRules::load(ctx.repo).io_context(|| "reading ignore rules".into())?;
    scan_with_rules(ctx, &global)
}

/// [`scan`] under ignore rules already loaded.
fn scan_with_rules(
    ctx: &ScanContext<'_>,
    global: &GlobalRules,
) -> Result<(Snapshot, StatCacheUpdate)> {
    let repo = ctx.repo;
    let started = scan_clock();
    let cache = StatCache::load(ctx.cache_path);
    let rules = rules_fingerprint(global, ctx.max_new_file_size)?;
    let index_path = repo.index_path();
    let index_stat =
        std::fs::symlink_metadata(&index_path).ok().map(|m| FileStat::from_metadata(&m));
    let walked = walk(ctx, global, &cache, rules, LazyIndex::new(index_path), index_stat)?;
    let (mut root, files_reused, index_read) = walked;
    let files_hashed = hash_pending(ctx, &mut root)?;
    let reserved_path_present = root.reserved_present;

    let mut out = BuildOutput {
        repo,
        writer: CacheWriter::create(ctx.cache_path, &cache, started, Some(rules), index_stat),
        skipped: Vec::new(),
        counts: ScanCounts { files_hashed, files_reused, index_read, ..ScanCounts::default() },
    };
    let tree = match root.build(&mut out)? {
        Some(id) => id,
        None => write_tree(repo, Vec::new())?,
    };
    let BuildOutput { writer, mut skipped, counts, .. } = out;
    let cache = StatCacheUpdate { cache: writer.finish(), monitor: None };
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((Snapshot { tree, skipped, reserved_path_present, counts }, cache))
}

/// A snapshot from what Watchman says changed since the last one (see [`fsmonitor`]),
/// or a full scan when that cannot be trusted; the reason for the full scan comes back
/// too. `state_path` holds Watchman's state between snapshots.
pub fn scan_with_watchman(
    ctx: &ScanContext<'_>,
    state_path: &Path,
) -> Result<(Snapshot, StatCacheUpdate, Option<String>)> {
    let global = GlobalRules::load(ctx.repo).io_context(|| "reading ignore rules".into())?;
    let rules = rules_fingerprint(&global, ctx.max_new_file_size)?.to_string();
    let index_stat =
        std::fs::symlink_metadata(ctx.repo.index_path()).ok().map(|m| FileStat::from_metadata(&m));
    let index = fsmonitor::index_key(index_stat);
    let saved = MonitorState::load(state_path).filter(|state| state.root == ctx.root);
    let since = saved.as_ref().map(|s| s.clock.as_str());
    let (answer, socket) =
        fsmonitor::ask(ctx.root, since, saved.as_ref().and_then(|s| s.socket.as_deref()));
    let state = |clock: String, tree: ObjectId| {
        let state = MonitorState {
            root: ctx.root.to_owned(),
            clock,
            tree: tree.to_string(),
            rules: rules.clone(),
            index,
            socket: socket.clone(),
        };
        Some((state, state_path.to_owned()))
    };
    let (clock, why) = match (answer, &saved) {
        (Answer::Changed { clock, paths }, Some(saved)) => {
            match changed_paths(ctx, saved, &rules, index, &paths)? {
                Ok(snapshot) => {
                    let monitor = state(clock, snapshot.tree);
                    return Ok((snapshot, StatCacheUpdate { cache: None, monitor }, None));
                }
                Err(why) => (Some(clock), why),
            }
        }
        (Answer::Changed { clock, .. }, None) => {
            (Some(clock), "no saved Watchman state".to_string())
        }
        (Answer::Rescan { clock, why }, _) => (clock, why),
    };
    let (snapshot, mut update) = scan_with_rules(ctx, &global)?;
    if let Some(clock) = clock {
        update.monitor = state(clock, snapshot.tree);
    }
    Ok((snapshot, update, Some(why)))
}

/// The snapshot of `saved`'s tree with `paths` brought up to date, or why it cannot be
/// trusted.
fn changed_paths(
    ctx: &ScanContext<'_>,
    saved: &MonitorState,
    rules: &str,
    index: Option<(i64, i64, u64, u64)>,
    paths: &[std::path::PathBuf],
) -> Result<std::result::Result<Snapshot, String>> {
    if saved.rules != rules {
        return Ok(Err("the ignore rules or the size limit changed".into()));
    }
    if saved.index != index {
        return Ok(Err("the index changed, which can change what is tracked".into()));
    }
    let Some(base) = saved.tree_id().filter(|tree| objects::presence(ctx.repo).exists(tree)) else {
        return Ok(Err("the last snapshot's tree is gone".into()));
    };
    // `.cairn` at the root is reserved and never recorded.
    let paths: Vec<std::path::PathBuf> = paths
        .iter()
        .filter(|path| path.components().next().is_none_or(|c| c.as_os_str() != RESERVED_DIR))
        .cloned()
        .collect();
    let applied = match apply_paths(ctx.repo, ctx.root, base, &paths, ctx.max_new_file_size) {
        Ok(Some(applied)) => applied,
        Ok(None) => return Ok(Err("a changed path is a directory".into())),
        Err(err) => return Ok(Err(format!("a changed path could not be applied: {err}"))),
    };
    let reserved_path_present = std::fs::symlink_metadata(ctx.root.join(RESERVED_DIR)).is_ok();
    let counts = ScanCounts { files_hashed: paths.len(), ..ScanCounts::default() };
    Ok(Ok(Snapshot { tree: applied.tree, skipped: applied.skipped, reserved_path_present, counts }))
}

/// The walk phase: the workspace listed against the stat cache, then the blob ids of files
/// it could not vouch for taken from the user's index where that pays. Returns the scanned
/// root, how many files kept a known blob id, and whether the index was read.
fn walk<'c>(
    ctx: &'c ScanContext<'_>,
    global: &'c GlobalRules,
    cache: &'c StatCache,
    rules: ObjectId,
    index: LazyIndex,
    index_stat: Option<FileStat>,
) -> Result<(ScannedDir<'c>, usize, bool)> {
    let walker = Walker {
        root: ctx.root,
        global,
        cache,
        listings_valid: cache.rules == Some(rules),
        index_changed: cache.index != index_stat,
        index,
        max_new_file_size: ctx.max_new_file_size,
        progress: ctx.progress,
        files_reused: AtomicUsize::new(0),
    };
    let root_meta = std::fs::symlink_metadata(ctx.root)
        .io_context(|| format!("reading {}", ctx.root.display()))?;
    let mut root = walker.scan_dir(
        BString::default(),
        FileStat::from_metadata(&root_meta),
        Arc::new(DirRules::default()),
        false,
        Mode::Normal,
    )?;
    root.verify_cached_ids(&objects::presence(ctx.repo));
    // Files the stat cache could not vouch for. The user's index may know their blob ids
    // (a first snapshot, a checkout), but decoding it costs about as much as hashing one
    // file in sixty-four of those it lists: only worth it when many files are pending.
    let index_bytes = index_stat.map_or(0, |stat| stat.size);
    let mut files_reused = walker.files_reused.load(Ordering::Relaxed);
    if root.count_pending() as u64 * INDEX_BYTES_PER_PENDING_FILE >= index_bytes
        && index_holds_raw_bytes(ctx.repo, ctx.root, &root)
    {
        files_reused += root.resolve_from_index(&walker.index);
    }
    let index_read = walker.index.index.get().is_some_and(Option::is_some);
    Ok((root, files_reused, index_read))
}

/// The hashing phase: reads and hashes every pending file in parallel batches, storing new
/// blobs, and puts the outcomes back into `root`. Returns how many files were hashed.
fn hash_pending(ctx: &ScanContext<'_>, root: &mut ScannedDir<'_>) -> Result<usize> {
    let mut pending = Vec::new();
    root.collect_pending(&mut pending);
    let mut outcomes = Vec::with_capacity(pending.len());
    let mut buffered = 0;
    for batch in pending.chunks(HASH_BATCH) {
        let hashed = batch
            .par_iter()
            .map_init(
                || objects::presence(&ctx.sync.to_thread_local()),
                |on_disk, job| read_blob(&*on_disk, ctx.root, job),
            )
            .collect::<Result<Vec<_>>>()?;
        for (outcome, new_content) in hashed {
            if let (HashOutcome::Blob(id), Some(content)) = (&outcome, new_content) {
                buffered += content.len();
                store_blob(ctx.repo, *id, &content)?;
            }
            outcomes.push(outcome);
        }
        if buffered > objects::FLUSH_BYTES {
            objects::persist(ctx.repo)?;
            buffered = 0;
        }
    }
    let files_hashed = outcomes.iter().filter(|o| matches!(o, HashOutcome::Blob(_))).count();
    root.fill_pending(&mut outcomes.into_iter());
    Ok(files_hashed)
}

/// Everything outside the workspace that decides what a listing contains.
fn rules_fingerprint(global: &GlobalRules, max_new_file_size: u64) -> Result<ObjectId> {
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    hasher.update(&global.fingerprint());
    hasher.update(&max_new_file_size.to_le_bytes());
    Ok(hasher.try_finalize().context(|| "hashing ignore rules".into())?)
}
