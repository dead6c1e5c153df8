//! The bottom-up tree build of a scan, reusing the tree id of every unchanged directory.

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::tree::{Entry, EntryKind};

use super::stat_cache::{CacheWriter, CachedKind, DirHead, DirRecord, EntryRecord};
use super::walk::{EntryState, ScannedDir};
use super::{ScanCounts, Skipped, basename, cmp_names, join};
use crate::checkpoint::error::Result;
use crate::git::Context;

impl<'c> ScannedDir<'c> {
    /// Writes the trees of this directory and below, reusing the cached tree id of every
    /// directory whose entries are unchanged, and the next stat cache's records with them;
    /// `None` when it holds nothing. The tree ids of the cache must have been checked
    /// ([`ScannedDir::verify_cached_ids`]).
    pub(super) fn build(self, out: &mut BuildOutput<'_, 'c>) -> Result<Option<ObjectId>> {
        if self.listed {
            out.counts.dirs_listed += 1;
        } else {
            out.counts.dirs_reused += 1;
        }
        let null = ObjectId::null(gix::hash::Kind::Sha1);
        let mut subdirs = Vec::with_capacity(self.subdirs.len());
        for dir in self.subdirs {
            let name = basename(dir.rel.as_bstr());
            let kind = if dir.tracked_only { CachedKind::IgnoredDir } else { CachedKind::Dir };
            let stat = dir.stat;
            let subtree = dir.build(out)?;
            subdirs.push(EntryRecord { name, kind, stat, oid: subtree.unwrap_or(null) });
        }
        if self.files_as_cached
            && let Some(record) = self.cached
            && same_subdirs(&record, &subdirs)
        {
            out.writer.copy_record(&record);
            return Ok(record.tree);
        }
        let files = match (self.files_as_cached, self.cached) {
            (true, Some(record)) => {
                record.entries().filter(|e| !e.kind.is_dir()).map(|e| e.to_record()).collect()
            }
            _ => Vec::new(),
        };
        let mut records = files;
        records.reserve(self.files.len() + subdirs.len());
        for entry in self.files {
            match entry.state {
                EntryState::Known(id) | EntryState::Cached(id) => records.push(EntryRecord {
                    name: entry.name,
                    kind: entry.kind,
                    stat: entry.stat,
                    oid: id,
                }),
                EntryState::LeftOut => records.push(EntryRecord {
                    name: entry.name,
                    kind: entry.kind,
                    stat: entry.stat,
                    oid: null,
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
        records.extend(subdirs);
        // Git's tree order, so the records double as the tree's entries.
        records.sort_by(|a, b| cmp_names(&a.name, a.kind.is_dir(), &b.name, b.kind.is_dir()));
        let tree = if !records.iter().any(|r| is_in_tree(&r)) {
            None
        } else {
            let unchanged = self
                .cached
                .and_then(|record| record.tree.filter(|_| same_tree_entries(&record, &records)));
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
        let head = DirHead {
            stat: self.stat,
            gitignore: self.gitignore,
            depends_on_index: self.depends_on_index,
            tree,
        };
        out.writer.write_dir(&self.rel, &head, &records);
        Ok(tree)
    }
}

pub(super) struct BuildOutput<'a, 'c> {
    pub(super) repo: &'a gix::Repository,
    /// The next stat cache, a directory at a time.
    pub(super) writer: CacheWriter<'c>,
    pub(super) skipped: Vec<Skipped>,
    pub(super) counts: ScanCounts,
}

/// Whether the subdirectories just built are, in name, kind, metadata and tree, those of
/// the cached record (whose files are known to be unchanged).
fn same_subdirs(record: &DirRecord<'_>, subdirs: &[EntryRecord]) -> bool {
    let mut cached = record.entries().filter(|e| e.kind.is_dir());
    let mut built = subdirs.iter();
    loop {
        match (cached.next(), built.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) => {
                if a.name != b.name || a.kind != b.kind || a.stat != b.stat || a.oid != b.oid {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

pub(super) fn tree_mode(kind: CachedKind) -> EntryKind {
    match kind {
        CachedKind::Executable => EntryKind::BlobExecutable,
        CachedKind::Symlink => EntryKind::Link,
        CachedKind::Gitlink => EntryKind::Commit,
        CachedKind::Dir | CachedKind::IgnoredDir => EntryKind::Tree,
        CachedKind::File | CachedKind::TooLarge | CachedKind::Ignored => EntryKind::Blob,
    }
}

/// Whether a record names an entry of the directory's tree (not an oversized file left
/// out, nor a directory with nothing to snapshot).
pub(super) fn is_in_tree(record: &&EntryRecord) -> bool {
    record.kind != CachedKind::TooLarge && !record.oid.is_null()
}

/// Whether a cached listing and a scanned one give the same tree: the same names, modes
/// and ids.
pub(super) fn same_tree_entries(cached: &DirRecord<'_>, scanned: &[EntryRecord]) -> bool {
    let mut old = cached.entries().filter(|e| e.kind != CachedKind::TooLarge && !e.oid.is_null());
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
pub(super) fn write_tree(repo: &gix::Repository, entries: Vec<Entry>) -> Result<ObjectId> {
    let tree = gix::objs::Tree { entries };
    Ok(repo.write_object(&tree).context(|| "writing a tree".into())?.detach())
}
