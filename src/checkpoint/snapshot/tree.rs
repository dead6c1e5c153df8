//! The bottom-up tree build of a scan, reusing the tree id of every unchanged directory.

use std::collections::HashMap;

use gix::ObjectId;
use gix::bstr::{BString, ByteSlice};
use gix::objs::tree::{Entry, EntryKind};

use super::stat_cache::{CachedKind, DirRecord, EntryRecord};
use super::walk::{EntryState, ScannedDir};
use super::{ScanCounts, Skipped, basename, cmp_names, join};
use crate::checkpoint::error::Result;
use crate::git::Context;

impl ScannedDir {
    /// Writes the trees of this directory and below, reusing the cached tree id of every
    /// directory whose entries are unchanged; `None` when it holds nothing. Consumes the
    /// scanned tree and the old cache as it goes, which keeps a large scan's peak memory
    /// near one copy of the listing.
    pub(super) fn build(self, out: &mut BuildOutput<'_>) -> Result<Option<ObjectId>> {
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

pub(super) struct BuildOutput<'a> {
    pub(super) repo: &'a gix::Repository,
    /// The old cache's listings, taken out as their directories are built.
    pub(super) old_dirs: HashMap<BString, DirRecord>,
    pub(super) dirs: HashMap<BString, DirRecord>,
    pub(super) skipped: Vec<Skipped>,
    pub(super) counts: ScanCounts,
}

pub(super) fn tree_mode(kind: CachedKind) -> EntryKind {
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
pub(super) fn is_in_tree(record: &&EntryRecord) -> bool {
    record.kind != CachedKind::TooLarge && !record.oid.is_null()
}

/// Whether two listings give the same tree: the same names, modes and ids.
pub(super) fn same_tree_entries(cached: &[EntryRecord], scanned: &[EntryRecord]) -> bool {
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
pub(super) fn write_tree(repo: &gix::Repository, entries: Vec<Entry>) -> Result<ObjectId> {
    let tree = gix::objs::Tree { entries };
    Ok(repo.write_object(&tree).context(|| "writing a tree".into())?.detach())
}
