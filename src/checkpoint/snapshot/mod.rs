//! Snapshots: the workspace as a git tree, without touching the workspace, `HEAD` or the
//! index.
//!
//! A snapshot holds every file git would track (tracked plus untracked, minus ignored),
//! with executable bits, symlinks stored as links, and nested repositories as gitlinks.
//! Two ways in:
//!
//! - [`scan`] walks the whole workspace in three phases: a parallel walk that `lstat`s
//!   entries and compares them with the [stat cache](super::stat_cache), skipping the
//!   `readdir` of directories whose metadata is unchanged; parallel hashing of the files
//!   that changed; and a bottom-up tree build that reuses the tree id of every directory
//!   whose entries are unchanged. Its cost follows what changed, plus one `lstat` per entry.
//! - [`apply_paths`] is the fast path for callers that know what they changed (the agent's
//!   edit tools): it reads only those paths and rewrites only the trees above them.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use gix::ObjectId;
use gix::bstr::{BStr, BString, ByteSlice, ByteVec};
use gix::objs::tree::{Entry, EntryKind};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::error::{Context, Error, IoContext, Result};
use super::ignore::{DirRules, GlobalRules};
use super::stat::{FileStat, Timestamp};
use super::stat_cache::{CachedKind, DirRecord, EntryRecord, StatCache};
use crate::git::objects;
use crate::git::path::{Leaf, RepoPath, check_component};
use crate::git::temp;

/// The name of the reserved directory that holds cairn's state in a step's tree.
pub const RESERVED_DIR: &str = ".cairn";

/// What a snapshot produced.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The workspace tree (without `.cairn/`).
    pub tree: ObjectId,
    /// Paths left out, and why.
    pub skipped: Vec<Skipped>,
    /// Whether the workspace has a `.cairn` entry at its root (reserved, never recorded).
    pub reserved_path_present: bool,
    pub counts: ScanCounts,
}

/// A path a snapshot left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// How much work a scan did; the benchmark and tests read these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanCounts {
    pub dirs_listed: usize,
    pub dirs_reused: usize,
    pub files_hashed: usize,
    pub files_reused: usize,
    pub trees_written: usize,
}

/// What the scan needs besides the workspace.
pub struct ScanContext<'a> {
    /// Where new trees and blobs go: a handle with object memory, which the caller
    /// persists (see [`super::objects`]) before anything names them.
    pub repo: &'a gix::Repository,
    /// For the hashing threads, which only read.
    pub sync: &'a gix::ThreadSafeRepository,
    pub root: &'a Path,
    pub cache_path: &'a Path,
    pub max_new_file_size: u64,
    /// Incremented once per entry visited, for progress display.
    pub progress: &'a AtomicUsize,
}

/// The refreshed stat cache of a scan, to be saved once the objects it names are
/// persisted.
pub struct StatCacheUpdate {
    cache: StatCache,
    path: PathBuf,
}

impl StatCacheUpdate {
    pub fn save(self) {
        // A cache that cannot be written only costs speed next time; the snapshot stands.
        let _ = self.cache.save(&self.path);
    }
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
    let repo = ctx.repo;
    let global = GlobalRules::load(repo).io_context(|| "reading ignore rules".into())?;
    let mut cache = StatCache::load_verified(ctx.cache_path, &objects::presence(repo));
    let rules = rules_fingerprint(&global, ctx.max_new_file_size)?;
    let index_path = repo.index_path();
    let index_stat =
        std::fs::symlink_metadata(&index_path).ok().map(|m| FileStat::from_metadata(&m));
    let walker = Walker {
        root: ctx.root,
        global: &global,
        cache: &cache,
        listings_valid: cache.rules == Some(rules),
        index_changed: cache.index != index_stat,
        index: LazyIndex::new(index_path),
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

    // Files the stat cache could not vouch for. The user's index may know their blob ids
    // (a first snapshot, a checkout), but decoding it costs about as much as hashing one
    // file in sixty-four of those it lists: only worth it when many files are pending.
    let index_bytes = index_stat.map_or(0, |stat| stat.size);
    let mut files_reused = walker.files_reused.load(Ordering::Relaxed);
    if root.count_pending() as u64 * INDEX_BYTES_PER_PENDING_FILE >= index_bytes
        && index_holds_raw_bytes(repo, ctx.root, &root)
    {
        files_reused += root.resolve_from_index(&walker.index);
    }
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
                store_blob(repo, *id, &content)?;
            }
            outcomes.push(outcome);
        }
        if buffered > objects::FLUSH_BYTES {
            objects::persist(repo)?;
            buffered = 0;
        }
    }
    let files_hashed = outcomes.iter().filter(|o| matches!(o, HashOutcome::Blob(_))).count();
    root.fill_pending(&mut outcomes.into_iter());
    let reserved_path_present = root.reserved_present;

    let old_dirs = std::mem::take(&mut cache.dirs);
    let mut out = BuildOutput {
        repo,
        dirs: HashMap::with_capacity(old_dirs.len().max(64)),
        old_dirs,
        skipped: Vec::new(),
        counts: ScanCounts { files_hashed, files_reused, ..ScanCounts::default() },
    };
    let tree = match root.build(&mut out)? {
        Some(id) => id,
        None => write_tree(repo, Vec::new())?,
    };
    let BuildOutput { dirs, mut skipped, counts, .. } = out;
    let cache = StatCacheUpdate {
        cache: StatCache {
            written: Timestamp::default(),
            rules: Some(rules),
            index: index_stat,
            dirs,
        },
        path: ctx.cache_path.to_owned(),
    };
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((Snapshot { tree, skipped, reserved_path_present, counts }, cache))
}

/// Whether the blob ids in the user's index hash the bytes on disk. Not when git converts
/// content as it adds it — line endings under `core.autocrlf`, or whatever
/// `.gitattributes` asks for (`text`, `eol`, `filter`, `ident`, `working-tree-encoding`):
/// the index then holds the converted blob, and a snapshot taking its id would record,
/// and a rewind write back, other bytes than the user's.
fn index_holds_raw_bytes(repo: &gix::Repository, root: &Path, scanned: &ScannedDir) -> bool {
    let config = repo.config_snapshot();
    let autocrlf = config.string("core.autocrlf").map(|v| v.to_ascii_lowercase());
    if autocrlf.is_some_and(|v| !matches!(v.as_slice(), b"false" | b"no" | b"off" | b"0")) {
        return false;
    }
    let mut files: Vec<PathBuf> = vec![repo.common_dir().join("info/attributes")];
    match config.trusted_path("core.attributesFile").ok().flatten() {
        Some(path) => files.push(path),
        None => files.extend(super::ignore::config_home().map(|dir| dir.join("git/attributes"))),
    }
    let mut in_workspace = Vec::new();
    scanned.attribute_files(&mut in_workspace);
    files.extend(in_workspace.iter().map(|rel| root.join(OsStr::from_bytes(rel))));
    !files.iter().any(|file| std::fs::read(file).is_ok_and(|text| asks_for_conversion(&text)))
}

/// Whether `.gitattributes` text sets an attribute that makes git convert content.
fn asks_for_conversion(text: &[u8]) -> bool {
    const CONVERTING: [&[u8]; 6] =
        [b"text", b"eol", b"crlf", b"filter", b"ident", b"working-tree-encoding"];
    text.lines().any(|line| {
        line.fields().skip(1).any(|attribute| {
            // `-text` and `!text` turn conversion off; `binary` is `-diff -merge -text`.
            let name = attribute.split(|&b| b == b'=').next().unwrap_or_default();
            CONVERTING.contains(&name)
        })
    })
}

/// Everything outside the workspace that decides what a listing contains.
fn rules_fingerprint(global: &GlobalRules, max_new_file_size: u64) -> Result<ObjectId> {
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    hasher.update(&global.fingerprint());
    hasher.update(&max_new_file_size.to_le_bytes());
    hasher.try_finalize().context(|| "hashing ignore rules".into())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Inside an ignored directory: only paths tracked in the index count.
    OnlyTracked,
}

/// The user's index, read only when a decision needs it (an ignored or oversized entry,
/// or a file the stat cache has never seen).
struct LazyIndex {
    path: PathBuf,
    index: OnceLock<Option<(gix::index::File, Timestamp)>>,
}

impl LazyIndex {
    fn new(path: PathBuf) -> Self {
        LazyIndex { path, index: OnceLock::new() }
    }

    fn get(&self) -> Option<&(gix::index::File, Timestamp)> {
        self.index
            .get_or_init(|| {
                let written = FileStat::from_metadata(&std::fs::metadata(&self.path).ok()?).mtime;
                // The checksum is skipped: a damaged index only costs re-hashing, since
                // every id taken from it must also match the file's stat.
                let options = gix::index::decode::Options::default();
                let file =
                    gix::index::File::at(&self.path, gix::hash::Kind::Sha1, true, options).ok()?;
                Some((file, written))
            })
            .as_ref()
    }

    fn is_tracked(&self, path: &BStr) -> bool {
        self.get().is_some_and(|(index, _)| index.entry_by_path(path).is_some())
    }

    fn has_tracked_below(&self, dir: &BStr) -> bool {
        let Some((index, _)) = self.get() else { return false };
        let mut prefix = BString::from(dir);
        prefix.push(b'/');
        index.prefixed_entries(prefix.as_bstr()).is_some_and(|entries| !entries.is_empty())
    }

    /// The blob id the index records for `path`, if its stat still matches the file.
    fn blob_if_unchanged(
        &self,
        path: &BStr,
        stat: &FileStat,
        kind: CachedKind,
    ) -> Option<ObjectId> {
        let (index, written) = self.get()?;
        let entry = index.entry_by_path(path)?;
        let mode_matches = match kind {
            CachedKind::File => entry.mode == gix::index::entry::Mode::FILE,
            CachedKind::Executable => entry.mode == gix::index::entry::Mode::FILE_EXECUTABLE,
            CachedKind::Symlink => entry.mode == gix::index::entry::Mode::SYMLINK,
            _ => false,
        };
        let s = &entry.stat;
        let same = mode_matches
            && i64::from(s.mtime.secs) == stat.mtime.secs
            && s.mtime.nsecs == stat.mtime.nanos
            && s.size == stat.size as u32
            && s.ino == stat.ino as u32
            && !stat.is_racy(*written);
        same.then_some(entry.id)
    }
}

struct Walker<'a> {
    root: &'a Path,
    global: &'a GlobalRules,
    cache: &'a StatCache,
    /// False when the ignore rules or size limit changed since the cache was written.
    listings_valid: bool,
    /// True when the user's index changed, which can change what is tracked.
    index_changed: bool,
    index: LazyIndex,
    max_new_file_size: u64,
    progress: &'a AtomicUsize,
    files_reused: AtomicUsize,
}

/// One directory as the walk found it, before hashing and tree building.
struct ScannedDir {
    rel: BString,
    stat: FileStat,
    gitignore: Option<FileStat>,
    depends_on_index: bool,
    /// Listed only for the tracked files inside (the directory itself is ignored).
    tracked_only: bool,
    entries: Vec<ScannedEntry>,
    subdirs: Vec<ScannedDir>,
    /// This directory is itself a repository (it has a `.git`).
    is_repository: bool,
    reserved_present: bool,
    listed: bool,
}

struct ScannedEntry {
    name: BString,
    kind: CachedKind,
    stat: FileStat,
    state: EntryState,
}

enum EntryState {
    Known(ObjectId),
    Pending,
    Skipped(String),
    Vanished,
}

/// A file whose content must be read and hashed.
struct HashJob {
    rel_path: BString,
    kind: CachedKind,
}

enum HashOutcome {
    Blob(ObjectId),
    Vanished,
    Unreadable(String),
}

impl Walker<'_> {
    fn abs(&self, rel: &BStr) -> PathBuf {
        if rel.is_empty() { self.root.to_owned() } else { self.root.join(OsStr::from_bytes(rel)) }
    }

    fn scan_dir(
        &self,
        rel: BString,
        stat: FileStat,
        parent_rules: Arc<DirRules>,
        parent_rules_changed: bool,
        mode: Mode,
    ) -> Result<ScannedDir> {
        let abs = self.abs(rel.as_bstr());
        let cached = self.cache.dirs.get(&rel);
        let gitignore_path = abs.join(".gitignore");
        let gitignore = std::fs::symlink_metadata(&gitignore_path)
            .ok()
            .filter(|meta| meta.is_file())
            .map(|meta| FileStat::from_metadata(&meta));
        let rules_changed = parent_rules_changed || cached.is_none_or(|c| c.gitignore != gitignore);
        let rules = match (gitignore, mode) {
            (Some(_), Mode::Normal) => match std::fs::read(&gitignore_path) {
                Ok(bytes) => parent_rules
                    .child(Some(&bytes), &gitignore_path, self.root)
                    .io_context(|| format!("reading {}", gitignore_path.display()))?,
                Err(_) => parent_rules,
            },
            _ => parent_rules,
        };
        let reusable = cached.filter(|c| {
            self.listings_valid
                && !rules_changed
                && c.stat == stat
                && !stat.is_racy(self.cache.written)
                && !(self.index_changed && c.depends_on_index)
        });
        let listed = reusable.is_none();
        let listing = match reusable {
            Some(record) => Listing::reuse(record),
            None => match self.read_listing(&rel, &abs, &rules, mode) {
                Some(listing) => listing,
                None => return Ok(ScannedDir::repository(rel, stat)),
            },
        };
        let mut scanned = ScannedDir {
            rel,
            stat,
            gitignore,
            depends_on_index: listing.depends_on_index,
            tracked_only: mode == Mode::OnlyTracked,
            entries: Vec::with_capacity(listing.names.len()),
            subdirs: Vec::new(),
            is_repository: false,
            reserved_present: listing.reserved_present,
            listed,
        };
        for (name, reason) in listing.refused {
            scanned.entries.push(ScannedEntry::skipped(name, reason));
        }
        let mut subdirs = Vec::new();
        for (name, hint) in listing.names {
            self.progress.fetch_add(1, Ordering::Relaxed);
            let rel_path = join(scanned.rel.as_bstr(), name.as_bstr());
            let meta = match std::fs::symlink_metadata(self.abs(rel_path.as_bstr())) {
                Ok(meta) => meta,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => {
                    scanned.entries.push(ScannedEntry::skipped(name, format!("unreadable: {err}")));
                    continue;
                }
            };
            let stat = FileStat::from_metadata(&meta);
            let file_type = meta.file_type();
            if file_type.is_dir() {
                if hint == CachedKind::Gitlink
                    && let Some(entry) = self.gitlink_entry(name.clone(), rel_path.as_bstr(), stat)
                {
                    scanned.entries.push(entry);
                    continue;
                }
                let child_mode =
                    if hint == CachedKind::IgnoredDir { Mode::OnlyTracked } else { mode };
                subdirs.push((rel_path, stat, child_mode));
                continue;
            }
            let kind = if file_type.is_symlink() {
                CachedKind::Symlink
            } else if file_type.is_file() {
                if stat.is_executable() { CachedKind::Executable } else { CachedKind::File }
            } else {
                continue; // FIFOs, sockets and devices are never snapshotted.
            };
            scanned.entries.push(self.classify_file(name, rel_path.as_bstr(), kind, stat, cached));
        }
        let results: Vec<Result<ScannedDir>> = subdirs
            .into_par_iter()
            .map(|(rel_path, stat, child_mode)| {
                self.scan_dir(rel_path, stat, Arc::clone(&rules), rules_changed, child_mode)
            })
            .collect();
        for result in results {
            let dir = result?;
            if dir.is_repository {
                let name = basename(dir.rel.as_bstr());
                let entry = self
                    .gitlink_entry(name.clone(), dir.rel.as_bstr(), dir.stat)
                    .unwrap_or_else(|| {
                        ScannedEntry::skipped(name, "nested repository could not be opened".into())
                    });
                scanned.entries.push(entry);
            } else {
                scanned.subdirs.push(dir);
            }
        }
        Ok(scanned)
    }

    /// The gitlink for a nested repository at `rel_path`; `None` when it is no repository.
    fn gitlink_entry(
        &self,
        name: BString,
        rel_path: &BStr,
        stat: FileStat,
    ) -> Option<ScannedEntry> {
        match gitlink_commit(&self.abs(rel_path)) {
            GitlinkState::Commit(id) => {
                Some(ScannedEntry::known(name, CachedKind::Gitlink, stat, id))
            }
            GitlinkState::Unborn => {
                Some(ScannedEntry::skipped(name, "nested repository has no commit yet".into()))
            }
            GitlinkState::NotARepository => None,
        }
    }

    fn classify_file(
        &self,
        name: BString,
        rel_path: &BStr,
        kind: CachedKind,
        stat: FileStat,
        cached: Option<&DirRecord>,
    ) -> ScannedEntry {
        let previous = cached.and_then(|record| {
            record
                .entries
                .binary_search_by(|e| cmp_names(&e.name, e.kind.is_dir(), &name, false))
                .ok()
                .map(|idx| &record.entries[idx])
        });
        if let Some(previous) = previous {
            let same_kind = previous.kind == kind
                || (previous.kind == CachedKind::TooLarge && kind != CachedKind::Symlink);
            if same_kind && previous.stat == stat && !stat.is_racy(self.cache.written) {
                if previous.kind == CachedKind::TooLarge {
                    return ScannedEntry::too_large(name, stat, self.max_new_file_size);
                }
                self.files_reused.fetch_add(1, Ordering::Relaxed);
                return ScannedEntry::known(name, kind, stat, previous.oid);
            }
        }
        if kind != CachedKind::Symlink
            && stat.size > self.max_new_file_size
            && !self.index.is_tracked(rel_path)
        {
            return ScannedEntry::too_large(name, stat, self.max_new_file_size);
        }
        ScannedEntry { name, kind, stat, state: EntryState::Pending }
    }

    /// Reads a directory and decides which entries a snapshot holds. Returns `None` when
    /// the directory is a repository of its own.
    fn read_listing(
        &self,
        rel: &BString,
        abs: &Path,
        rules: &DirRules,
        mode: Mode,
    ) -> Option<Listing> {
        let mut listing = Listing::default();
        let Ok(read) = std::fs::read_dir(abs) else {
            // Vanished or unreadable since its parent was listed: nothing to snapshot here.
            return Some(listing);
        };
        for entry in read {
            let Ok(entry) = entry else { continue };
            let name = BString::from(entry.file_name().as_bytes());
            if name == ".git" {
                if !rel.is_empty() {
                    return None;
                }
                continue;
            }
            if rel.is_empty() && name == RESERVED_DIR {
                listing.reserved_present = true;
                continue;
            }
            if temp::is_temporary(&entry.file_name()) {
                // A file cairn is writing, or one a killed cairn left: never the user's.
                if temp::is_abandoned(&name) {
                    temp::remove(&entry.path());
                }
                continue;
            }
            let Ok(file_type) = entry.file_type() else { continue };
            let is_dir = file_type.is_dir();
            let rel_path = join(rel.as_bstr(), name.as_bstr());
            let ignored = mode == Mode::OnlyTracked
                || rules.is_ignored(self.global, rel_path.as_bstr(), is_dir);
            let mut hint = if is_dir { CachedKind::Dir } else { CachedKind::File };
            if ignored {
                listing.depends_on_index = true;
                if is_dir {
                    if !self.index.has_tracked_below(rel_path.as_bstr()) {
                        continue;
                    }
                    hint = CachedKind::IgnoredDir;
                } else if !self.index.is_tracked(rel_path.as_bstr()) {
                    continue;
                }
            }
            // A name a restore would refuse is never recorded (Linux lets anyone create
            // `.GIT/x` or `a\b`). The byte pre-check passes nearly every name; the full
            // rule runs on the rest, and only for directories actually listed.
            if !crate::git::path::is_plainly_safe(&name) {
                let leaf = if file_type.is_symlink() { Leaf::Symlink } else { Leaf::Other };
                if let Err(rule) = check_component(name.as_bstr(), rel.is_empty(), leaf) {
                    listing.refused.push((name, format!("unsafe name: {rule}")));
                    continue;
                }
            }
            listing.names.push((name, hint));
        }
        listing.names.sort_by(|a, b| cmp_names(&a.0, a.1.is_dir(), &b.0, b.1.is_dir()));
        Some(listing)
    }
}

#[derive(Default)]
struct Listing {
    names: Vec<(BString, CachedKind)>,
    /// Entries left out because a restore would refuse their names, with the rule.
    refused: Vec<(BString, String)>,
    depends_on_index: bool,
    reserved_present: bool,
}

impl Listing {
    fn reuse(record: &DirRecord) -> Self {
        Listing {
            names: record.entries.iter().map(|e| (e.name.clone(), e.kind)).collect(),
            // Reported when the directory was listed; a reused listing is unchanged.
            refused: Vec::new(),
            depends_on_index: record.depends_on_index,
            // The root's listing is reused only while unchanged, and it had no `.cairn`
            // worth reporting again.
            reserved_present: false,
        }
    }
}

impl ScannedEntry {
    fn known(name: BString, kind: CachedKind, stat: FileStat, id: ObjectId) -> Self {
        ScannedEntry { name, kind, stat, state: EntryState::Known(id) }
    }

    fn skipped(name: BString, reason: String) -> Self {
        ScannedEntry {
            name,
            kind: CachedKind::File,
            stat: FileStat::default(),
            state: EntryState::Skipped(reason),
        }
    }

    fn too_large(name: BString, stat: FileStat, limit: u64) -> Self {
        let reason =
            format!("untracked file of {} bytes is over the {limit}-byte limit", stat.size);
        ScannedEntry { name, kind: CachedKind::TooLarge, stat, state: EntryState::Skipped(reason) }
    }
}

impl ScannedDir {
    fn repository(rel: BString, stat: FileStat) -> Self {
        ScannedDir {
            rel,
            stat,
            gitignore: None,
            depends_on_index: false,
            tracked_only: false,
            entries: Vec::new(),
            subdirs: Vec::new(),
            is_repository: true,
            reserved_present: false,
            listed: true,
        }
    }

    /// The `.gitattributes` files found, as paths from the root.
    fn attribute_files(&self, out: &mut Vec<BString>) {
        for entry in &self.entries {
            if entry.name == ".gitattributes" && entry.kind == CachedKind::File {
                out.push(join(self.rel.as_bstr(), entry.name.as_bstr()));
            }
        }
        for dir in &self.subdirs {
            dir.attribute_files(out);
        }
    }

    fn count_pending(&self) -> usize {
        let here = self.entries.iter().filter(|e| matches!(e.state, EntryState::Pending)).count();
        here + self.subdirs.iter().map(ScannedDir::count_pending).sum::<usize>()
    }

    /// Takes the blob id of each pending file from the user's index where its stat still
    /// matches; returns how many.
    fn resolve_from_index(&mut self, index: &LazyIndex) -> usize {
        let mut resolved = 0;
        for entry in &mut self.entries {
            if matches!(entry.state, EntryState::Pending) {
                let path = join(self.rel.as_bstr(), entry.name.as_bstr());
                if let Some(id) = index.blob_if_unchanged(path.as_bstr(), &entry.stat, entry.kind) {
                    entry.state = EntryState::Known(id);
                    resolved += 1;
                }
            }
        }
        resolved + self.subdirs.iter_mut().map(|dir| dir.resolve_from_index(index)).sum::<usize>()
    }

    fn collect_pending(&self, out: &mut Vec<HashJob>) {
        for entry in &self.entries {
            if matches!(entry.state, EntryState::Pending) {
                out.push(HashJob {
                    rel_path: join(self.rel.as_bstr(), entry.name.as_bstr()),
                    kind: entry.kind,
                });
            }
        }
        for dir in &self.subdirs {
            dir.collect_pending(out);
        }
    }

    /// Puts hash outcomes back in the order `collect_pending` took the jobs out.
    fn fill_pending(&mut self, outcomes: &mut impl Iterator<Item = HashOutcome>) {
        for entry in &mut self.entries {
            if matches!(entry.state, EntryState::Pending) {
                entry.state = match outcomes.next() {
                    Some(HashOutcome::Blob(id)) => EntryState::Known(id),
                    Some(HashOutcome::Unreadable(reason)) => EntryState::Skipped(reason),
                    Some(HashOutcome::Vanished) | None => EntryState::Vanished,
                };
            }
        }
        for dir in &mut self.subdirs {
            dir.fill_pending(outcomes);
        }
    }

    /// Writes the trees of this directory and below, reusing the cached tree id of every
    /// directory whose entries are unchanged; `None` when it holds nothing. Consumes the
    /// scanned tree and the old cache as it goes, which keeps a large scan's peak memory
    /// near one copy of the listing.
    fn build(self, out: &mut BuildOutput<'_>) -> Result<Option<ObjectId>> {
        if self.listed {
            out.counts.dirs_listed += 1;
        } else {
            out.counts.dirs_reused += 1;
        }
        let null = ObjectId::null(gix::hash::Kind::Sha1);
        let mut records = Vec::with_capacity(self.entries.len() + self.subdirs.len());
        for entry in self.entries {
            match entry.state {
                EntryState::Known(id) => records.push(EntryRecord {
                    name: entry.name,
                    kind: entry.kind,
                    stat: entry.stat,
                    oid: id,
                }),
                EntryState::Skipped(reason) => {
                    out.skipped.push(Skipped {
                        path: join(self.rel.as_bstr(), entry.name.as_bstr())
                            .to_str_lossy()
                            .into_owned(),
                        reason,
                    });
                    if entry.kind == CachedKind::TooLarge {
                        records.push(EntryRecord {
                            name: entry.name,
                            kind: entry.kind,
                            stat: entry.stat,
                            oid: null,
                        });
                    }
                }
                EntryState::Pending | EntryState::Vanished => {}
            }
        }
        for dir in self.subdirs {
            let name = basename(dir.rel.as_bstr());
            let kind = if dir.tracked_only { CachedKind::IgnoredDir } else { CachedKind::Dir };
            let stat = dir.stat;
            let subtree = dir.build(out)?;
            records.push(EntryRecord { name, kind, stat, oid: subtree.unwrap_or(null) });
        }
        // Git's tree order, so the records double as the tree's entries.
        records.sort_by(|a, b| cmp_names(&a.name, a.kind.is_dir(), &b.name, b.kind.is_dir()));
        let cached = out.old_dirs.remove(&self.rel);
        let tree = if !records.iter().any(|r| is_in_tree(&r)) {
            None
        } else {
            let unchanged = cached.and_then(|record| {
                record.tree.filter(|_| same_tree_entries(&record.entries, &records))
            });
            match unchanged {
                Some(id) => Some(id),
                None => {
                    out.counts.trees_written += 1;
                    let entries = records
                        .iter()
                        .filter(is_in_tree)
                        .map(|r| Entry {
                            mode: tree_mode(r.kind).into(),
                            filename: r.name.clone(),
                            oid: r.oid,
                        })
                        .collect();
                    Some(write_tree(out.repo, entries)?)
                }
            }
        };
        out.dirs.insert(
            self.rel,
            DirRecord {
                stat: self.stat,
                gitignore: self.gitignore,
                depends_on_index: self.depends_on_index,
                tree,
                entries: records,
            },
        );
        Ok(tree)
    }
}

struct BuildOutput<'a> {
    repo: &'a gix::Repository,
    /// The old cache's listings, taken out as their directories are built.
    old_dirs: HashMap<BString, DirRecord>,
    dirs: HashMap<BString, DirRecord>,
    skipped: Vec<Skipped>,
    counts: ScanCounts,
}

fn tree_mode(kind: CachedKind) -> EntryKind {
    match kind {
        CachedKind::Executable => EntryKind::BlobExecutable,
        CachedKind::Symlink => EntryKind::Link,
        CachedKind::Gitlink => EntryKind::Commit,
        CachedKind::Dir | CachedKind::IgnoredDir => EntryKind::Tree,
        CachedKind::File | CachedKind::TooLarge => EntryKind::Blob,
    }
}

/// Whether a record names an entry of the directory's tree (not an oversized file left
/// out, nor a directory with nothing to snapshot).
fn is_in_tree(record: &&EntryRecord) -> bool {
    record.kind != CachedKind::TooLarge && !record.oid.is_null()
}

/// Whether two listings give the same tree: the same names, modes and ids.
fn same_tree_entries(cached: &[EntryRecord], scanned: &[EntryRecord]) -> bool {
    let mut old = cached.iter().filter(is_in_tree);
    let mut new = scanned.iter().filter(is_in_tree);
    loop {
        match (old.next(), new.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) => {
                if a.name != b.name || a.oid != b.oid || tree_mode(a.kind) != tree_mode(b.kind) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

fn basename(path: &BStr) -> BString {
    BString::from(path.rsplit_str("/").next().unwrap_or(path.as_bytes()))
}

fn write_tree(repo: &gix::Repository, entries: Vec<Entry>) -> Result<ObjectId> {
    let tree = gix::objs::Tree { entries };
    Ok(repo.write_object(&tree).context(|| "writing a tree".into())?.detach())
}

/// Reads a file (or a symlink's target) and hashes it as a blob. The content comes back
/// too when `on_disk` does not hold that blob yet.
fn read_blob(
    on_disk: &dyn gix::objs::Exists,
    root: &Path,
    job: &HashJob,
) -> Result<(HashOutcome, Option<Vec<u8>>)> {
    let abs = root.join(OsStr::from_bytes(&job.rel_path));
    let content = if job.kind == CachedKind::Symlink {
        std::fs::read_link(&abs)
            .map(|target| std::os::unix::ffi::OsStringExt::into_vec(target.into_os_string()))
    } else {
        std::fs::read(&abs)
    };
    match content {
        Ok(bytes) => {
            let id = gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, &bytes)
                .context(|| format!("hashing {}", abs.display()))?;
            let new_content = (!on_disk.exists(&id)).then_some(bytes);
            Ok((HashOutcome::Blob(id), new_content))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok((HashOutcome::Vanished, None)),
        Err(err) => Ok((HashOutcome::Unreadable(format!("unreadable: {err}")), None)),
    }
}

fn store_blob(repo: &gix::Repository, id: ObjectId, content: &[u8]) -> Result<()> {
    gix::objs::Write::write_buf_with_known_id(&repo.objects, gix::objs::Kind::Blob, content, id)
        .context(|| format!("storing blob {id}"))?;
    Ok(())
}

enum GitlinkState {
    Commit(ObjectId),
    Unborn,
    NotARepository,
}

/// The commit a nested repository or submodule has checked out.
fn gitlink_commit(dir: &Path) -> GitlinkState {
    if std::fs::symlink_metadata(dir.join(".git")).is_err() {
        return GitlinkState::NotARepository;
    }
    let Ok(nested) = gix::open(dir) else { return GitlinkState::NotARepository };
    match nested.head_id() {
        Ok(id) => GitlinkState::Commit(id.detach()),
        Err(_) => GitlinkState::Unborn,
    }
}

/// Joins a directory path and a name with `/` (the root is `""`).
pub(crate) fn join(dir: &BStr, name: &BStr) -> BString {
    let mut out = BString::from(Vec::with_capacity(dir.len() + name.len() + 1));
    if !dir.is_empty() {
        out.push_str(dir);
        out.push(b'/');
    }
    out.push_str(name);
    out
}

/// Git's tree order: names compare bytewise, with directories as if followed by `/`.
pub(crate) fn cmp_names(a: &[u8], a_is_dir: bool, b: &[u8], b_is_dir: bool) -> std::cmp::Ordering {
    let common = a.len().min(b.len());
    a[..common].cmp(&b[..common]).then_with(|| {
        let a_next = a.get(common).copied().or(a_is_dir.then_some(b'/'));
        let b_next = b.get(common).copied().or(b_is_dir.then_some(b'/'));
        a_next.cmp(&b_next)
    })
}

/// Checks that a caller-supplied path is a plain relative workspace path whose names
/// [`RepoPath`] accepts, and returns it in `/`-separated form.
pub(crate) fn validate_rel_path(path: &Path) -> Result<BString> {
    let invalid = |reason: &str| Error::InvalidPath {
        path: path.display().to_string(),
        reason: reason.into(),
    };
    let mut out = BString::default();
    for component in path.components() {
        match component {
            std::path::Component::Normal(part) => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.push_str(part.as_bytes());
            }
            std::path::Component::CurDir => {}
            _ => return Err(invalid("must be relative to the workspace root, without '..'")),
        }
    }
    // A name a restore would refuse (`.git/x`, `.cairn/x`, `a\b`) is recorded by no step.
    RepoPath::new(out).map(|path| BString::from(path.as_bstr())).map_err(|err| Error::InvalidPath {
        path: path.display().to_string(),
        reason: err.rule.to_string(),
    })
}

/// What [`apply_paths`] produced.
#[derive(Debug, Clone)]
pub struct PathsSnapshot {
    pub tree: ObjectId,
    pub skipped: Vec<Skipped>,
}

/// The fast path: takes `base` (the tree of the previous snapshot) and brings just `paths`
/// up to date with the workspace, reading only those files and rewriting only the trees
/// above them. Returns `None` when a path names a directory, which needs a full scan.
pub fn apply_paths(
    repo: &gix::Repository,
    root: &Path,
    base: ObjectId,
    paths: &[PathBuf],
    max_new_file_size: u64,
) -> Result<Option<PathsSnapshot>> {
    let base_tree = repo.find_tree(base).context(|| format!("reading tree {base}"))?;
    let mut editor = base_tree.edit().context(|| "editing a tree".into())?;
    let mut global = None;
    let index = LazyIndex::new(repo.index_path());
    let on_disk = objects::presence(repo);
    let mut skipped = Vec::new();
    for path in paths {
        let rel = validate_rel_path(path)?;
        let abs = root.join(OsStr::from_bytes(&rel));
        let known = base_tree
            .lookup_entry_by_path(Path::new(OsStr::from_bytes(&rel)))
            .context(|| format!("looking up {rel} in {base}"))?
            .is_some();
        let meta = match std::fs::symlink_metadata(&abs) {
            Ok(meta) => meta,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if known {
                    editor.remove(&rel).context(|| format!("removing {rel}"))?;
                }
                continue;
            }
            Err(err) => return Err(Error::io(format!("reading {}", abs.display()), err)),
        };
        let stat = FileStat::from_metadata(&meta);
        let kind = if meta.file_type().is_symlink() {
            EntryKind::Link
        } else if meta.is_file() {
            if stat.is_executable() { EntryKind::BlobExecutable } else { EntryKind::Blob }
        } else if meta.is_dir() {
            return Ok(None);
        } else {
            continue;
        };
        if !known {
            let global = match &mut global {
                Some(global) => global,
                None => global
                    .insert(GlobalRules::load(repo).io_context(|| "reading ignore rules".into())?),
            };
            if is_ignored_path(root, global, rel.as_bstr())? && !index.is_tracked(rel.as_bstr()) {
                continue;
            }
            if kind != EntryKind::Link
                && stat.size > max_new_file_size
                && !index.is_tracked(rel.as_bstr())
            {
                skipped.push(Skipped {
                    path: rel.to_str_lossy().into_owned(),
                    reason: format!(
                        "untracked file of {} bytes is over the {max_new_file_size}-byte limit",
                        stat.size
                    ),
                });
                continue;
            }
        }
        let job = HashJob {
            rel_path: rel.clone(),
            kind: if kind == EntryKind::Link { CachedKind::Symlink } else { CachedKind::File },
        };
        let (outcome, new_content) = read_blob(&on_disk, root, &job)?;
        if let (HashOutcome::Blob(id), Some(content)) = (&outcome, new_content) {
            store_blob(repo, *id, &content)?;
        }
        match outcome {
            HashOutcome::Blob(id) => {
                editor.upsert(&rel, kind, id).context(|| format!("recording {rel}"))?;
            }
            HashOutcome::Vanished => {
                if known {
                    editor.remove(&rel).context(|| format!("removing {rel}"))?;
                }
            }
            HashOutcome::Unreadable(reason) => {
                skipped.push(Skipped { path: rel.to_str_lossy().into_owned(), reason })
            }
        }
    }
    let tree = editor.write().context(|| "writing trees".into())?.detach();
    Ok(Some(PathsSnapshot { tree, skipped }))
}

/// Whether `rel` or any directory above it is ignored, reading each `.gitignore` on the way.
fn is_ignored_path(root: &Path, global: &GlobalRules, rel: &BStr) -> Result<bool> {
    let mut rules = Arc::new(DirRules::default());
    let components: Vec<&[u8]> = rel.split_str("/").collect();
    let mut dir = BString::default();
    for (depth, component) in components.iter().enumerate() {
        let dir_abs =
            if dir.is_empty() { root.to_owned() } else { root.join(OsStr::from_bytes(&dir)) };
        let gitignore_path = dir_abs.join(".gitignore");
        if let Ok(bytes) = std::fs::read(&gitignore_path) {
            rules = rules
                .child(Some(&bytes), &gitignore_path, root)
                .io_context(|| format!("reading {}", gitignore_path.display()))?;
        }
        let path = join(dir.as_bstr(), component.as_bstr());
        let is_dir = depth + 1 < components.len();
        if rules.is_ignored(global, path.as_bstr(), is_dir) {
            return Ok(true);
        }
        dir = path;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_that_convert_content_are_told_from_those_that_do_not() {
        for converting in [
            &b"*.txt text\n"[..],
            b"* text=auto\n",
            b"*.sh eol=lf\n",
            b"*.bin filter=lfs diff=lfs merge=lfs -text\n",
            b"*.c ident\n",
            b"*.ps1 working-tree-encoding=UTF-16LE\n",
            b"[attr]mine text\n",
        ] {
            assert!(asks_for_conversion(converting), "{}", converting.as_bstr());
        }
        for plain in
            [&b"*.png binary\n"[..], b"*.txt -text\n", b"docs/** linguist-documentation\n", b""]
        {
            assert!(!asks_for_conversion(plain), "{}", plain.as_bstr());
        }
    }
}
