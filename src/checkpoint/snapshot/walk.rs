//! The parallel directory walk: which entries a snapshot holds, which of them the stat
//! cache vouches for, and which must be hashed.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gix::ObjectId;
use gix::bstr::{BStr, BString, ByteSlice};
use rayon::prelude::*;

use super::ignore::{DirRules, GlobalRules};
use super::index::LazyIndex;
use super::stat::{DirStat, FileStat, Timestamp};
use super::stat_cache::{CachedEntry, CachedKind, DirRecord, StatCache};
use super::{HashJob, HashOutcome, RESERVED_DIR, basename, cmp_names, join};
use crate::checkpoint::error::Result;
use crate::git::IoContext;
use crate::git::path::{Leaf, check_component};
use crate::git::temp;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Normal,
    /// Inside an ignored directory: only paths tracked in the index count.
    OnlyTracked,
}

pub(super) struct Walker<'a> {
    pub(super) root: &'a Path,
    pub(super) global: &'a GlobalRules,
    pub(super) cache: &'a StatCache,
    /// False when the ignore rules or size limit changed since the cache was written.
    pub(super) listings_valid: bool,
    /// True when the user's index changed, which can change what is tracked.
    pub(super) index_changed: bool,
    pub(super) index: LazyIndex,
    pub(super) max_new_file_size: u64,
    pub(super) progress: &'a AtomicUsize,
    pub(super) files_reused: AtomicUsize,
}

/// One directory as the walk found it, before hashing and tree building.
pub(super) struct ScannedDir<'c> {
    pub(super) rel: BString,
    pub(super) stat: FileStat,
    pub(super) gitignore: Option<FileStat>,
    pub(super) depends_on_index: bool,
    /// Listed only for the tracked files inside (the directory itself is ignored).
    pub(super) tracked_only: bool,
    /// What the stat cache knew of this directory; its tree is forgotten when the
    /// repository no longer has it.
    pub(super) cached: Option<DirRecord<'c>>,
    /// The files are exactly those of `cached`: same names, kinds and metadata. The common
    /// case, which costs no copy of the names; `files` is then empty.
    pub(super) files_as_cached: bool,
    /// Files and gitlinks.
    pub(super) files: Vec<ScannedEntry>,
    pub(super) subdirs: Vec<ScannedDir<'c>>,
    /// This directory is itself a repository (it has a `.git`).
    pub(super) is_repository: bool,
    pub(super) reserved_present: bool,
    pub(super) listed: bool,
}

pub(super) struct ScannedEntry {
    pub(super) name: BString,
    pub(super) kind: CachedKind,
    pub(super) stat: FileStat,
    pub(super) state: EntryState,
}

pub(super) enum EntryState {
    Known(ObjectId),
    /// Known from the stat cache, which vouches for the id only while the directory's
    /// cached tree is in the repository (see [`ScannedDir::verify_cached_ids`]).
    Cached(ObjectId),
    Pending,
    Skipped(String),
    Vanished,
    /// Kept in the stat cache, never in a tree (an ignored entry nothing tracked is in).
    LeftOut,
}

/// A subdirectory to scan: its path, metadata and mode.
type Subdir = (BString, FileStat, Mode);

impl<'a> Walker<'a> {
    pub(super) fn abs(&self, rel: &BStr) -> PathBuf {
        if rel.is_empty() { self.root.to_owned() } else { self.root.join(OsStr::from_bytes(rel)) }
    }

    /// Scans the directory at `rel` and, in parallel, those below it: its listing comes
    /// from the stat cache while the directory and the rules above it are unchanged.
    pub(super) fn scan_dir(
        &self,
        rel: BString,
        stat: FileStat,
        parent_rules: Arc<DirRules>,
        parent_rules_changed: bool,
        mode: Mode,
    ) -> Result<ScannedDir<'a>> {
        let abs = self.abs(rel.as_bstr());
        let dir = DirStat::open(&abs);
        let cached = self.cache.dir(&rel);
        // The directory's names are as cached: creating, deleting or renaming an entry
        // changes its metadata (a file's content can change unseen, a name cannot).
        let same_names = cached.is_some_and(|c| c.stat == stat && !stat.is_racy(c.written));
        // So one that had no `.gitignore` still has none, and need not look.
        let (gitignore, rules) = if same_names && cached.is_some_and(|c| c.gitignore.is_none()) {
            (None, parent_rules)
        } else {
            self.dir_rules(&dir, &abs, parent_rules, mode)?
        };
        let rules_changed = parent_rules_changed || cached.is_none_or(|c| c.gitignore != gitignore);
        let reusable = cached.filter(|c| {
            same_names
                && self.listings_valid
                && !rules_changed
                && !(self.index_changed && c.depends_on_index)
        });
        let mut scanned = ScannedDir {
            rel,
            stat,
            gitignore,
            depends_on_index: false,
            tracked_only: mode == Mode::OnlyTracked,
            cached,
            files_as_cached: false,
            files: Vec::new(),
            subdirs: Vec::new(),
            is_repository: false,
            reserved_present: false,
            listed: reusable.is_none(),
        };
        let subdirs = match reusable {
            Some(record) => {
                scanned.depends_on_index = record.depends_on_index;
                self.visit_cached(&mut scanned, &dir, record, mode)
            }
            None => {
                let previous = scanned.cached.filter(|_| !self.index_changed);
                let Some(listing) = self.read_listing(&scanned.rel, &abs, &rules, mode, previous)
                else {
                    return Ok(ScannedDir::repository(scanned.rel, stat));
                };
                scanned.depends_on_index = listing.depends_on_index;
                scanned.reserved_present = listing.reserved_present;
                self.visit_listed(&mut scanned, &dir, listing, mode)
            }
        };
        self.scan_subdirs(&mut scanned, subdirs, &rules, rules_changed)?;
        Ok(scanned)
    }

    /// The directory's `.gitignore` (its stat) and the rules that hold inside it.
    fn dir_rules(
        &self,
        dir: &DirStat,
        abs: &Path,
        parent_rules: Arc<DirRules>,
        mode: Mode,
    ) -> Result<(Option<FileStat>, Arc<DirRules>)> {
        let gitignore = dir.lstat(b".gitignore").ok().filter(|stat| stat.file_type().is_file());
        let rules = match (gitignore, mode) {
            (Some(_), Mode::Normal) => {
                let gitignore_path = abs.join(".gitignore");
                match std::fs::read(&gitignore_path) {
                    Ok(bytes) => parent_rules
                        .child(Some(&bytes), &gitignore_path, self.root)
                        .io_context(|| format!("reading {}", gitignore_path.display()))?,
                    Err(_) => parent_rules,
                }
            }
            _ => parent_rules,
        };
        Ok((gitignore, rules))
    }

    /// `lstat`s the entries of an unchanged directory's cached listing. While every file
    /// is as the cache has it, nothing is copied; the first that is not turns the files
    /// into a list of their own. Returns the subdirectories to scan.
    fn visit_cached(
        &self,
        scanned: &mut ScannedDir<'a>,
        dir: &DirStat,
        record: DirRecord<'a>,
        mode: Mode,
    ) -> Vec<Subdir> {
        self.progress.fetch_add(record.entry_count(), Ordering::Relaxed);
        let mut subdirs = Vec::new();
        let mut files: Option<Vec<ScannedEntry>> = None;
        let mut unchanged = 0;
        for (position, entry) in record.entries().enumerate() {
            if entry.kind == CachedKind::Ignored {
                // Still there (the listing is unchanged) and still untracked (so is the
                // index): nothing to look at.
                if let Some(list) = files.as_mut() {
                    list.push(ScannedEntry::cached(entry));
                }
                continue;
            }
            let stat = dir.lstat(entry.name);
            if files.is_none() {
                if let Ok(current) = &stat {
                    if entry.kind.is_dir() && current.file_type().is_dir() {
                        let child_mode = if entry.kind == CachedKind::IgnoredDir {
                            Mode::OnlyTracked
                        } else {
                            mode
                        };
                        subdirs.push((
                            join(scanned.rel.as_bstr(), entry.name),
                            *current,
                            child_mode,
                        ));
                        continue;
                    }
                    if entry.kind.is_blob()
                        && file_kind(current) == Some(entry.kind)
                        && entry.stat == *current
                        && !current.is_racy(record.written)
                    {
                        unchanged += 1;
                        continue;
                    }
                }
                // The first difference: the files so far, as the cache has them.
                let mut list = Vec::with_capacity(record.entry_count());
                for before in record.entries().take(position).filter(|e| !e.kind.is_dir()) {
                    list.push(ScannedEntry::cached(before));
                }
                files = Some(list);
            }
            let Some(list) = files.as_mut() else { continue };
            let entry_stat = match stat {
                Ok(stat) => stat,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => {
                    list.push(ScannedEntry::skipped(entry.name.to_owned(), unreadable(&err)));
                    continue;
                }
            };
            let name = entry.name.to_owned();
            if let Some(subdir) = self.visit_entry(
                scanned.rel.as_bstr(),
                list,
                name,
                entry.kind,
                entry_stat,
                Some((entry, record.written)),
                mode,
            ) {
                subdirs.push(subdir);
            }
        }
        self.files_reused.fetch_add(unchanged, Ordering::Relaxed);
        match files {
            Some(list) => scanned.files = list,
            None => scanned.files_as_cached = true,
        }
        subdirs
    }

    /// `lstat`s each name of a directory just listed; returns the subdirectories to scan.
    fn visit_listed(
        &self,
        scanned: &mut ScannedDir<'_>,
        dir: &DirStat,
        listing: Listing,
        mode: Mode,
    ) -> Vec<Subdir> {
        self.progress.fetch_add(listing.names.len(), Ordering::Relaxed);
        let previous: Vec<CachedEntry<'_>> =
            scanned.cached.map(|record| record.entries().collect()).unwrap_or_default();
        let written = scanned.cached.map(|record| record.written).unwrap_or_default();
        let mut list = Vec::with_capacity(listing.names.len() + listing.refused.len());
        for (name, reason) in listing.refused {
            list.push(ScannedEntry::skipped(name, reason));
        }
        for (name, is_dir) in listing.ignored {
            list.push(ScannedEntry::left_out(name, is_dir));
        }
        let mut subdirs = Vec::new();
        for (name, hint) in listing.names {
            let stat = match dir.lstat(&name) {
                Ok(stat) => stat,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => {
                    list.push(ScannedEntry::skipped(name, unreadable(&err)));
                    continue;
                }
            };
            let cached = previous
                .binary_search_by(|e| cmp_names(e.name, e.kind.is_dir(), &name, false))
                .ok()
                .map(|idx| (previous[idx], written));
            if let Some(subdir) =
                self.visit_entry(scanned.rel.as_bstr(), &mut list, name, hint, stat, cached, mode)
            {
                subdirs.push(subdir);
            }
        }
        scanned.files = list;
        subdirs
    }

    /// Files (and gitlinks) go into `list`; a subdirectory to scan is returned.
    #[allow(clippy::too_many_arguments, reason = "one entry's whole context")]
    fn visit_entry(
        &self,
        dir: &BStr,
        list: &mut Vec<ScannedEntry>,
        name: BString,
        hint: CachedKind,
        stat: FileStat,
        cached: Option<(CachedEntry<'_>, Timestamp)>,
        mode: Mode,
    ) -> Option<Subdir> {
        let rel_path = join(dir, name.as_bstr());
        if stat.file_type().is_dir() {
            if hint == CachedKind::Gitlink
                && let Some(entry) = self.gitlink_entry(name, rel_path.as_bstr(), stat)
            {
                list.push(entry);
                return None;
            }
            let child_mode = if hint == CachedKind::IgnoredDir { Mode::OnlyTracked } else { mode };
            return Some((rel_path, stat, child_mode));
        }
        // FIFOs, sockets and devices are never snapshotted.
        let kind = file_kind(&stat)?;
        list.push(self.classify_file(name, rel_path.as_bstr(), kind, stat, cached));
        None
    }

    /// Scans `subdirs` in parallel into `scanned`; one that turns out to be a repository
    /// of its own becomes a gitlink entry instead.
    fn scan_subdirs(
        &self,
        scanned: &mut ScannedDir<'a>,
        subdirs: Vec<Subdir>,
        rules: &Arc<DirRules>,
        rules_changed: bool,
    ) -> Result<()> {
        let results: Vec<Result<ScannedDir<'a>>> = subdirs
            .into_par_iter()
            .map(|(rel_path, stat, child_mode)| {
                self.scan_dir(rel_path, stat, Arc::clone(rules), rules_changed, child_mode)
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
                scanned.scanned_files().push(entry);
            } else {
                scanned.subdirs.push(dir);
            }
        }
        Ok(())
    }

    /// The gitlink for a nested repository at `rel_path`; `None` when it is no repository.
    pub(super) fn gitlink_entry(
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

    pub(super) fn classify_file(
        &self,
        name: BString,
        rel_path: &BStr,
        kind: CachedKind,
        stat: FileStat,
        previous: Option<(CachedEntry<'_>, Timestamp)>,
    ) -> ScannedEntry {
        if let Some((previous, written)) = previous {
            let same_kind = previous.kind == kind
                || (previous.kind == CachedKind::TooLarge && kind != CachedKind::Symlink);
            if same_kind && previous.stat == stat && !stat.is_racy(written) {
                if previous.kind == CachedKind::TooLarge {
                    return ScannedEntry::too_large(name, stat, self.max_new_file_size);
                }
                self.files_reused.fetch_add(1, Ordering::Relaxed);
                return ScannedEntry { name, kind, stat, state: EntryState::Cached(previous.oid) };
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
    pub(super) fn read_listing(
        &self,
        rel: &BString,
        abs: &Path,
        rules: &DirRules,
        mode: Mode,
        previous: Option<DirRecord<'_>>,
    ) -> Option<Listing> {
        let mut listing = Listing::default();
        let previous: Vec<CachedEntry<'_>> =
            previous.map(|record| record.entries().collect()).unwrap_or_default();
        // Whether an ignored name has something tracked at or below it, as the last listing
        // found when the name was of the same kind; the index is unchanged since.
        let decided = |name: &BStr, is_dir: bool| {
            [true, false].into_iter().find_map(|as_dir| {
                let idx = previous
                    .binary_search_by(|e| cmp_names(e.name, e.kind.is_dir(), name, as_dir))
                    .ok()?;
                match previous[idx].kind {
                    CachedKind::Ignored if previous[idx].stat.file_type().is_dir() == is_dir => {
                        Some(false)
                    }
                    CachedKind::IgnoredDir if is_dir => Some(true),
                    _ => None,
                }
            })
        };
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
                let tracked = match decided(name.as_bstr(), is_dir) {
                    Some(tracked) => tracked,
                    None if is_dir => self.index.has_tracked_below(rel_path.as_bstr()),
                    None => self.index.is_tracked(rel_path.as_bstr()),
                };
                if !tracked {
                    listing.ignored.push((name, is_dir));
                    continue;
                }
                if is_dir {
                    hint = CachedKind::IgnoredDir;
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
pub(super) struct Listing {
    pub(super) names: Vec<(BString, CachedKind)>,
    /// Entries left out because a restore would refuse their names, with the rule.
    pub(super) refused: Vec<(BString, String)>,
    /// Ignored entries with nothing tracked at or below them, and whether each is a
    /// directory.
    pub(super) ignored: Vec<(BString, bool)>,
    pub(super) depends_on_index: bool,
    pub(super) reserved_present: bool,
}

impl ScannedEntry {
    fn is_pending(&self) -> bool {
        matches!(self.state, EntryState::Pending)
    }

    fn cached(entry: CachedEntry<'_>) -> Self {
        let CachedEntry { name, kind, stat, oid } = entry;
        let state =
            if kind == CachedKind::Ignored { EntryState::LeftOut } else { EntryState::Cached(oid) };
        ScannedEntry { name: name.to_owned(), kind, stat, state }
    }

    /// An ignored entry nothing tracked is in; its stat says only whether it is a
    /// directory, which is what its record vouches for.
    fn left_out(name: BString, is_dir: bool) -> Self {
        let mode = if is_dir { libc::S_IFDIR } else { libc::S_IFREG };
        let stat = FileStat { mode, ..FileStat::default() };
        ScannedEntry { name, kind: CachedKind::Ignored, stat, state: EntryState::LeftOut }
    }

    pub(super) fn known(name: BString, kind: CachedKind, stat: FileStat, id: ObjectId) -> Self {
        ScannedEntry { name, kind, stat, state: EntryState::Known(id) }
    }

    pub(super) fn skipped(name: BString, reason: String) -> Self {
        ScannedEntry {
            name,
            kind: CachedKind::File,
            stat: FileStat::default(),
            state: EntryState::Skipped(reason),
        }
    }

    pub(super) fn too_large(name: BString, stat: FileStat, limit: u64) -> Self {
        let reason =
            format!("untracked file of {} bytes is over the {limit}-byte limit", stat.size);
        ScannedEntry { name, kind: CachedKind::TooLarge, stat, state: EntryState::Skipped(reason) }
    }
}

impl<'c> ScannedDir<'c> {
    pub(super) fn repository(rel: BString, stat: FileStat) -> Self {
        ScannedDir {
            rel,
            stat,
            gitignore: None,
            depends_on_index: false,
            tracked_only: false,
            cached: None,
            files_as_cached: false,
            files: Vec::new(),
            subdirs: Vec::new(),
            is_repository: true,
            reserved_present: false,
            listed: true,
        }
    }

    /// The files as a list of their own, copied from the cache record if need be.
    pub(super) fn scanned_files(&mut self) -> &mut Vec<ScannedEntry> {
        if std::mem::take(&mut self.files_as_cached)
            && let Some(record) = self.cached
        {
            let cached = record.entries().filter(|e| !e.kind.is_dir()).map(ScannedEntry::cached);
            self.files = cached.collect();
        }
        &mut self.files
    }

    /// Checks the ids taken from the stat cache against the repository (`on_disk`): a
    /// directory's cached tree, while there, vouches for every id of its record; where it
    /// is gone, each blob id is probed, and files whose blob is gone become pending.
    pub(super) fn verify_cached_ids(&mut self, on_disk: &dyn gix::objs::Exists) {
        let tree_gone =
            self.cached.is_some_and(|r| r.tree.is_none_or(|tree| !on_disk.exists(&tree)));
        if tree_gone {
            if let Some(record) = &mut self.cached {
                record.tree = None;
            }
            for entry in self.scanned_files() {
                if let EntryState::Cached(id) = entry.state
                    && entry.kind.is_blob()
                    && !on_disk.exists(&id)
                {
                    entry.state = EntryState::Pending;
                }
            }
        }
        for dir in &mut self.subdirs {
            dir.verify_cached_ids(on_disk);
        }
    }

    /// The `.gitattributes` files found, as paths from the root.
    pub(super) fn attribute_files(&self, out: &mut Vec<BString>) {
        let is_attributes =
            |name: &BStr, kind| name == ".gitattributes" && kind == CachedKind::File;
        let found = match self.cached.filter(|_| self.files_as_cached) {
            Some(record) => record.entries().any(|e| is_attributes(e.name, e.kind)),
            None => self.files.iter().any(|e| is_attributes(e.name.as_bstr(), e.kind)),
        };
        if found {
            out.push(join(self.rel.as_bstr(), b".gitattributes".as_bstr()));
        }
        for dir in &self.subdirs {
            dir.attribute_files(out);
        }
    }

    pub(super) fn count_pending(&self) -> usize {
        let here = self.files.iter().filter(|e| e.is_pending()).count();
        here + self.subdirs.iter().map(ScannedDir::count_pending).sum::<usize>()
    }

    /// Takes the blob id of each pending file from the user's index where its stat still
    /// matches; returns how many.
    pub(super) fn resolve_from_index(&mut self, index: &LazyIndex) -> usize {
        let mut resolved = 0;
        for entry in self.files.iter_mut().filter(|e| e.is_pending()) {
            let path = join(self.rel.as_bstr(), entry.name.as_bstr());
            if let Some(id) = index.blob_if_unchanged(path.as_bstr(), &entry.stat, entry.kind) {
                entry.state = EntryState::Known(id);
                resolved += 1;
            }
        }
        resolved + self.subdirs.iter_mut().map(|dir| dir.resolve_from_index(index)).sum::<usize>()
    }

    pub(super) fn collect_pending(&self, out: &mut Vec<HashJob>) {
        for entry in self.files.iter().filter(|e| e.is_pending()) {
            out.push(HashJob {
                rel_path: join(self.rel.as_bstr(), entry.name.as_bstr()),
                kind: entry.kind,
            });
        }
        for dir in &self.subdirs {
            dir.collect_pending(out);
        }
    }

    /// Puts hash outcomes back in the order `collect_pending` took the jobs out.
    pub(super) fn fill_pending(&mut self, outcomes: &mut impl Iterator<Item = HashOutcome>) {
        for entry in self.files.iter_mut().filter(|e| e.is_pending()) {
            entry.state = match outcomes.next() {
                Some(HashOutcome::Blob(id)) => EntryState::Known(id),
                Some(HashOutcome::Unreadable(reason)) => EntryState::Skipped(reason),
                Some(HashOutcome::Vanished) | None => EntryState::Vanished,
            };
        }
        for dir in &mut self.subdirs {
            dir.fill_pending(outcomes);
        }
    }
}

/// The kind of snapshot entry a non-directory is; `None` for FIFOs, sockets and devices.
fn file_kind(stat: &FileStat) -> Option<CachedKind> {
    let file_type = stat.file_type();
    if file_type.is_symlink() {
        Some(CachedKind::Symlink)
    } else if file_type.is_file() {
        Some(if stat.is_executable() { CachedKind::Executable } else { CachedKind::File })
    } else {
        None
    }
}

fn unreadable(err: &std::io::Error) -> String {
    format!("unreadable: {err}")
}

pub(super) enum GitlinkState {
    Commit(ObjectId),
    Unborn,
    NotARepository,
}

/// The commit a nested repository or submodule has checked out.
pub(super) fn gitlink_commit(dir: &Path) -> GitlinkState {
    if std::fs::symlink_metadata(dir.join(".git")).is_err() {
        return GitlinkState::NotARepository;
    }
    let Ok(nested) = gix::open(dir) else { return GitlinkState::NotARepository };
    match nested.head_id() {
        Ok(id) => GitlinkState::Commit(id.detach()),
        Err(_) => GitlinkState::Unborn,
    }
}
