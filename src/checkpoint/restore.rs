//! Making the workspace equal a snapshot, touching only the paths that differ.
//!
//! The changes come from comparing two trees (the workspace as just snapshotted, and the
//! target), descending only into subtrees whose ids differ, so the cost follows the size
//! of the difference. Deletions come from the tree, never from listing the disk, so an
//! ignored file is never removed; a write never replaces a file the snapshot did not hold
//! (an ignored or oversized file), which is reported instead. Files are written to a
//! temporary name and renamed into place, so none is ever left half-written.

use std::ffi::OsStr;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::bstr::{BStr, BString, ByteSlice};
use gix::objs::tree::EntryKind;

use super::error::{Context, IoContext, Result};
use super::snapshot::{RESERVED_DIR, cmp_names, join};

/// One difference between two trees, as a path to delete or a file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Delete { path: BString, kind: EntryKind },
    Write { path: BString, kind: EntryKind, id: ObjectId, existed: bool },
}

impl Change {
    pub fn path(&self) -> &BStr {
        match self {
            Change::Delete { path, .. } | Change::Write { path, .. } => path.as_bstr(),
        }
    }
}

/// The file-level changes that turn tree `from` into tree `to` (either may be absent).
/// The root's `.cairn` entry is left out.
pub fn diff_trees(
    repo: &gix::Repository,
    from: Option<ObjectId>,
    to: Option<ObjectId>,
) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    diff_into(repo, BString::default(), from, to, Reserved::Skip, &mut out)?;
    Ok(out)
}

/// Like [`diff_trees`], with the changes inside `.cairn/` (the agent's state) as well.
pub fn diff_step_trees(
    repo: &gix::Repository,
    from: Option<ObjectId>,
    to: Option<ObjectId>,
) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    diff_into(repo, BString::default(), from, to, Reserved::Include, &mut out)?;
    Ok(out)
}

/// Whether a diff descends into the root's `.cairn` (only the root can hold it, so calls
/// below the root pass `Include`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reserved {
    Skip,
    Include,
}

struct TreeEntry {
    name: BString,
    kind: EntryKind,
    id: ObjectId,
}

fn read_tree(repo: &gix::Repository, id: Option<ObjectId>) -> Result<Vec<TreeEntry>> {
    let Some(id) = id else { return Ok(Vec::new()) };
    let tree = repo.find_tree(id).context(|| format!("reading tree {id}"))?;
    let decoded = tree.decode().context(|| format!("decoding tree {id}"))?;
    Ok(decoded
        .entries
        .iter()
        .map(|e| TreeEntry {
            name: e.filename.to_owned(),
            kind: e.mode.kind(),
            id: e.oid.to_owned(),
        })
        .collect())
}

fn diff_into(
    repo: &gix::Repository,
    prefix: BString,
    from: Option<ObjectId>,
    to: Option<ObjectId>,
    reserved: Reserved,
    out: &mut Vec<Change>,
) -> Result<()> {
    let skip_reserved = |e: &TreeEntry| {
        reserved == Reserved::Include || !(prefix.is_empty() && e.name == RESERVED_DIR)
    };
    let old: Vec<TreeEntry> = read_tree(repo, from)?.into_iter().filter(skip_reserved).collect();
    let new: Vec<TreeEntry> = read_tree(repo, to)?.into_iter().filter(skip_reserved).collect();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let order = match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) => {
                cmp_names(&a.name, a.kind == EntryKind::Tree, &b.name, b.kind == EntryKind::Tree)
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                removed(repo, &prefix, &old[i], out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                added(repo, &prefix, &new[j], out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (a, b) = (&old[i], &new[j]);
                if a.id != b.id || a.kind != b.kind {
                    let path = join(prefix.as_bstr(), a.name.as_bstr());
                    if a.kind == EntryKind::Tree {
                        diff_into(repo, path, Some(a.id), Some(b.id), reserved, out)?;
                    } else {
                        out.push(Change::Write { path, kind: b.kind, id: b.id, existed: true });
                    }
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

fn removed(
    repo: &gix::Repository,
    prefix: &BString,
    entry: &TreeEntry,
    out: &mut Vec<Change>,
) -> Result<()> {
    let path = join(prefix.as_bstr(), entry.name.as_bstr());
    if entry.kind == EntryKind::Tree {
        diff_into(repo, path.clone(), Some(entry.id), None, Reserved::Include, out)?;
    }
    out.push(Change::Delete { path, kind: entry.kind });
    Ok(())
}

fn added(
    repo: &gix::Repository,
    prefix: &BString,
    entry: &TreeEntry,
    out: &mut Vec<Change>,
) -> Result<()> {
    let path = join(prefix.as_bstr(), entry.name.as_bstr());
    if entry.kind == EntryKind::Tree {
        diff_into(repo, path, None, Some(entry.id), Reserved::Include, out)
    } else {
        out.push(Change::Write { path, kind: entry.kind, id: entry.id, existed: false });
        Ok(())
    }
}

/// What applying changes did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub written: usize,
    pub deleted: usize,
    /// Paths left as they were, with the reason (a file the snapshot did not hold was in
    /// the way, or a nested repository, which cairn cannot check out).
    pub kept: Vec<(String, String)>,
}

/// Applies `changes` (from [`diff_trees`]) to the workspace at `root`: deletions first
/// (deepest first), then writes.
pub fn apply(repo: &gix::Repository, root: &Path, changes: &[Change]) -> Result<Applied> {
    let mut applied = Applied::default();
    for change in changes.iter().filter(|c| matches!(c, Change::Delete { .. })) {
        let Change::Delete { path, kind } = change else { continue };
        let abs = abs_path(root, path.as_bstr());
        match kind {
            EntryKind::Tree => {
                // Removed only if nothing is left: ignored files keep their directory.
                let _ = std::fs::remove_dir(&abs);
                continue;
            }
            EntryKind::Commit => {
                applied.kept.push((path.to_string(), "nested repository left in place".into()));
                continue;
            }
            _ => {}
        }
        match std::fs::remove_file(&abs) {
            Ok(()) => applied.deleted += 1,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).io_context(|| format!("removing {}", abs.display())),
        }
    }
    for change in changes {
        let Change::Write { path, kind, id, existed } = change else { continue };
        let abs = abs_path(root, path.as_bstr());
        if *kind == EntryKind::Commit {
            applied.kept.push((path.to_string(), "nested repository left as it is".into()));
            continue;
        }
        if !existed && std::fs::symlink_metadata(&abs).is_ok() {
            applied
                .kept
                .push((path.to_string(), "a file the snapshot did not hold is in the way".into()));
            continue;
        }
        if let Some(blocker) = blocking_ancestor(root, path.as_bstr()) {
            applied
                .kept
                .push((path.to_string(), format!("{blocker} is a file the snapshot did not hold")));
            continue;
        }
        let blob = repo.find_blob(*id).context(|| format!("reading blob {id} for {path}"))?;
        write_entry(&abs, *kind, &blob.data).io_context(|| format!("writing {}", abs.display()))?;
        applied.written += 1;
    }
    Ok(applied)
}

fn abs_path(root: &Path, rel: &BStr) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
}

/// The first ancestor of `rel` that exists on disk as something other than a directory.
fn blocking_ancestor(root: &Path, rel: &BStr) -> Option<String> {
    let mut current = root.to_path_buf();
    let components: Vec<&[u8]> = rel.split_str("/").collect();
    for component in &components[..components.len().saturating_sub(1)] {
        current.push(OsStr::from_bytes(component));
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if !meta.is_dir() => {
                return Some(current.strip_prefix(root).ok()?.display().to_string());
            }
            _ => {}
        }
    }
    None
}

/// Writes one file or symlink atomically: a temporary sibling, then a rename over `abs`.
fn write_entry(abs: &Path, kind: EntryKind, data: &[u8]) -> std::io::Result<()> {
    let parent = abs.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    // Named for this process, so a snapshot never records it and the next run removes
    // it if a kill leaves it behind (see `temp`).
    let temp = super::temp::sibling(abs);
    let result = (|| {
        if kind == EntryKind::Link {
            std::os::unix::fs::symlink(OsStr::from_bytes(data), &temp)?;
        } else {
            let mode = if kind == EntryKind::BlobExecutable { 0o777 } else { 0o666 };
            let mut file =
                std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&temp)?;
            file.write_all(data)?;
        }
        if std::fs::symlink_metadata(abs).is_ok_and(|m| m.is_dir()) {
            std::fs::remove_dir(abs)?;
        }
        std::fs::rename(&temp, abs)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
