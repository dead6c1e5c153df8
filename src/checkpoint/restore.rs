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
use std::path::Path;

use gix::ObjectId;
use gix::bstr::{BStr, ByteSlice};
use gix::objs::tree::{EntryKind, EntryMode};

use super::error::{Error, Result};
use super::snapshot::{RESERVED_DIR, cmp_names};
use crate::git::path::{self, RepoPath, Rule, UnsafePath};
use crate::git::{Context, IoContext};

/// One difference between two trees, as a path to delete or a file to write. Every path
/// and mode in it was checked as the diff read its trees (see [`crate::git::path`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Delete { path: RepoPath, kind: EntryKind },
    Write { path: RepoPath, kind: EntryKind, id: ObjectId, existed: bool },
}

impl Change {
    pub fn path(&self) -> &BStr {
        match self {
            Change::Delete { path, .. } | Change::Write { path, .. } => path.as_bstr(),
        }
    }
}

/// The file-level changes that turn tree `from` into tree `to` (either may be absent).
/// The root's `.cairn` entry is left out. Fails with [`Error::UnsafePath`] on an entry
/// either side adds, changes or removes whose name or mode is unsafe, or on a tree that
/// cannot be read; unchanged subtrees are not read at all.
pub fn diff_trees(
    repo: &gix::Repository,
    from: Option<ObjectId>,
    to: Option<ObjectId>,
) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    diff_into(repo, RepoPath::root(), from, to, Reserved::Skip, &mut out)?;
    Ok(out)
}

/// Like [`diff_trees`], with the changes inside `.cairn/` (the agent's state) as well.
pub fn diff_step_trees(
    repo: &gix::Repository,
    from: Option<ObjectId>,
    to: Option<ObjectId>,
) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    diff_into(repo, RepoPath::root(), from, to, Reserved::Include, &mut out)?;
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
    name: gix::bstr::BString,
    mode: EntryMode,
    id: ObjectId,
}

impl TreeEntry {
    fn is_tree(&self) -> bool {
        self.mode.is_tree()
    }

    /// The entry's path under `prefix` and its kind, once both are checked.
    fn checked(&self, prefix: &RepoPath, reserved: Reserved) -> Result<(RepoPath, EntryKind)> {
        let refuse = |rule| UnsafePath { path: joined(prefix, self.name.as_bstr()), rule };
        let kind = path::check_mode(self.mode).map_err(refuse)?;
        if reserved == Reserved::Include && prefix.as_bstr().is_empty() && self.name == RESERVED_DIR
        {
            if kind != EntryKind::Tree {
                return Err(refuse(Rule::Reserved).into());
            }
            return Ok((RepoPath::state_dir(), kind));
        }
        let path = prefix.join(self.name.as_bstr(), path::leaf_of(kind))?;
        Ok((path, kind))
    }
}

/// `prefix/name` as text, for naming a refused entry.
fn joined(prefix: &RepoPath, name: &BStr) -> gix::bstr::BString {
    super::snapshot::join(prefix.as_bstr(), name)
}

/// The entries of tree `id` (at `at`), which must decode and be in git's order with no
/// name twice: the diff below walks two sorted lists side by side.
fn read_tree(
    repo: &gix::Repository,
    at: &RepoPath,
    id: Option<ObjectId>,
) -> Result<Vec<TreeEntry>> {
    let Some(id) = id else { return Ok(Vec::new()) };
    let malformed = || UnsafePath { path: at.as_bstr().to_owned(), rule: Rule::MalformedTree };
    let tree = repo.find_tree(id).map_err(|_| malformed())?;
    let decoded = tree.decode().map_err(|_| malformed())?;
    let entries: Vec<TreeEntry> = decoded
        .entries
        .iter()
        .map(|e| TreeEntry { name: e.filename.to_owned(), mode: e.mode, id: e.oid.to_owned() })
        .collect();
    let in_order = entries.windows(2).all(|pair| {
        cmp_names(&pair[0].name, pair[0].is_tree(), &pair[1].name, pair[1].is_tree())
            == std::cmp::Ordering::Less
    });
    // A file `a` and a directory `a` sort apart (`a` < `a-b` < `a/`), so order alone does
    // not catch a name given twice; git's fsck calls it duplicateEntries.
    let mut names = std::collections::HashSet::with_capacity(entries.len());
    let unique = entries.iter().all(|entry| names.insert(entry.name.as_slice()));
    if !in_order || !unique {
        return Err(UnsafePath { path: at.as_bstr().to_owned(), rule: Rule::UnsortedTree }.into());
    }
    Ok(entries)
}

fn diff_into(
    repo: &gix::Repository,
    prefix: RepoPath,
    from: Option<ObjectId>,
    to: Option<ObjectId>,
    reserved: Reserved,
    out: &mut Vec<Change>,
) -> Result<()> {
    let at_root = prefix.as_bstr().is_empty();
    let keep =
        |e: &TreeEntry| reserved == Reserved::Include || !(at_root && e.name == RESERVED_DIR);
    let old: Vec<TreeEntry> = read_tree(repo, &prefix, from)?.into_iter().filter(keep).collect();
    let new: Vec<TreeEntry> = read_tree(repo, &prefix, to)?.into_iter().filter(keep).collect();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let order = match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) => cmp_names(&a.name, a.is_tree(), &b.name, b.is_tree()),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                removed(repo, &prefix, &old[i], reserved, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                added(repo, &prefix, &new[j], reserved, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (a, b) = (&old[i], &new[j]);
                if a.id != b.id || a.mode != b.mode {
                    a.checked(&prefix, reserved)?;
                    let (path, kind) = b.checked(&prefix, reserved)?;
                    if kind == EntryKind::Tree {
                        diff_into(repo, path, Some(a.id), Some(b.id), Reserved::Include, out)?;
                    } else {
                        out.push(Change::Write { path, kind, id: b.id, existed: true });
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
    prefix: &RepoPath,
    entry: &TreeEntry,
    reserved: Reserved,
    out: &mut Vec<Change>,
) -> Result<()> {
    let (path, kind) = entry.checked(prefix, reserved)?;
    if kind == EntryKind::Tree {
        diff_into(repo, path.clone(), Some(entry.id), None, Reserved::Include, out)?;
    }
    out.push(Change::Delete { path, kind });
    Ok(())
}

fn added(
    repo: &gix::Repository,
    prefix: &RepoPath,
    entry: &TreeEntry,
    reserved: Reserved,
    out: &mut Vec<Change>,
) -> Result<()> {
    let (path, kind) = entry.checked(prefix, reserved)?;
    if kind == EntryKind::Tree {
        diff_into(repo, path, None, Some(entry.id), Reserved::Include, out)
    } else {
        out.push(Change::Write { path, kind, id: entry.id, existed: false });
        Ok(())
    }
}

/// Checks every entry of tree `new` that is not in tree `old` as it is (same name, mode
/// and id), descending only into subtrees that differ: names, modes, and that each tree
/// decodes in git's order. `old` must itself have been checked (or be `None`); the root
/// `.cairn` is read as cairn's state and checked too. `checked` remembers the trees
/// already found sound (with whether they were at the root, where `.cairn` is reserved),
/// so a walk over many steps reads each new tree once.
pub fn check_tree(
    repo: &gix::Repository,
    old: Option<ObjectId>,
    new: ObjectId,
    checked: &mut std::collections::HashSet<(ObjectId, bool)>,
) -> Result<()> {
    check_tree_at(repo, &RepoPath::root(), old, new, checked)
}

fn check_tree_at(
    repo: &gix::Repository,
    at: &RepoPath,
    old: Option<ObjectId>,
    new: ObjectId,
    checked: &mut std::collections::HashSet<(ObjectId, bool)>,
) -> Result<()> {
    let key = (new, at.as_bstr().is_empty());
    if old == Some(new) || checked.contains(&key) {
        return Ok(());
    }
    let old_entries: std::collections::HashMap<(gix::bstr::BString, bool), (EntryMode, ObjectId)> =
        match old {
            // An old tree that cannot be read just gives no shortcut.
            Some(old) => read_tree(repo, at, Some(old))
                .unwrap_or_default()
                .into_iter()
                .map(|e| ((e.name.clone(), e.is_tree()), (e.mode, e.id)))
                .collect(),
            None => Default::default(),
        };
    for entry in read_tree(repo, at, Some(new))? {
        let before = old_entries.get(&(entry.name.clone(), entry.is_tree()));
        if before == Some(&(entry.mode, entry.id)) {
            continue;
        }
        let (path, kind) = entry.checked(at, Reserved::Include)?;
        if kind == EntryKind::Tree {
            let old_subtree = before.filter(|(mode, _)| mode.is_tree()).map(|(_, id)| *id);
            check_tree_at(repo, &path, old_subtree, entry.id, checked)?;
        }
    }
    checked.insert(key);
    Ok(())
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
///
/// Nothing is ever written or removed through a symlink: every directory above a path is
/// checked with `lstat`, from the root down, to be a real directory, and a missing one is
/// created one level at a time (never `create_dir_all`, which follows links). A symlink
/// the target tree replaces with a directory is removed by its own deletion first, so
/// what is left in the way is something the snapshot did not hold (an ignored file, or on
/// a case-insensitive file system a link `A` standing for a directory `a/`), and the path
/// is left as it is and reported. Checking by path rather than through `openat` handles
/// keeps the one rename-into-place code path; it defends against hostile trees, not
/// against another process swapping directories for links while cairn writes.
pub fn apply_changes(repo: &gix::Repository, root: &Path, changes: &[Change]) -> Result<Applied> {
    let mut applied = Applied::default();
    for change in changes.iter().filter(|c| matches!(c, Change::Delete { .. })) {
        let Change::Delete { path, kind } = change else { continue };
        refuse_reserved(path)?;
        if let Some(blocker) = not_a_directory(root, path, Create::No)? {
            applied.kept.push((path.to_string(), blocker));
            continue;
        }
        let abs = path.under(root);
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
            Err(err) => return Err(Error::io(format!("removing {}", abs.display()), err)),
        }
    }
    for change in changes {
        let Change::Write { path, kind, id, existed } = change else { continue };
        refuse_reserved(path)?;
        // A gitlink is never checked out: no nested `.git` is ever created.
        if *kind == EntryKind::Commit {
            applied.kept.push((path.to_string(), "nested repository left as it is".into()));
            continue;
        }
        let abs = path.under(root);
        if !existed && std::fs::symlink_metadata(&abs).is_ok() {
            applied
                .kept
                .push((path.to_string(), "a file the snapshot did not hold is in the way".into()));
            continue;
        }
        if let Some(blocker) = not_a_directory(root, path, Create::Missing)? {
            applied.kept.push((path.to_string(), blocker));
            continue;
        }
        let blob = repo.find_blob(*id).context(|| format!("reading blob {id} for {path}"))?;
        write_entry(&abs, *kind, &blob.data).io_context(|| format!("writing {}", abs.display()))?;
        applied.written += 1;
    }
    Ok(applied)
}

/// A path in the root `.cairn` is cairn's state, never the workspace's.
fn refuse_reserved(path: &RepoPath) -> Result<()> {
    if path.is_reserved() {
        return Err(UnsafePath { path: path.as_bstr().to_owned(), rule: Rule::Reserved }.into());
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Create {
    No,
    Missing,
}

/// Checks every directory above `path`, from the root down, with `lstat`: each must be a
/// real directory (creating the missing ones one level at a time when asked). Returns why
/// not when something else is in the way: a symlink is never followed.
fn not_a_directory(root: &Path, path: &RepoPath, create: Create) -> Result<Option<String>> {
    let components: Vec<&BStr> = path.components().collect();
    let mut current = root.to_path_buf();
    let mut rel = String::new();
    for component in &components[..components.len().saturating_sub(1)] {
        current.push(OsStr::from_bytes(component));
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(&component.to_str_lossy());
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) if meta.file_type().is_symlink() => {
                return Ok(Some(format!(
                    "{rel} is a symlink the snapshot did not hold; cairn never writes through one"
                )));
            }
            Ok(_) => return Ok(Some(format!("{rel} is a file the snapshot did not hold"))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if create == Create::No {
                    return Ok(None); // Nothing below it to remove.
                }
                match std::fs::create_dir(&current) {
                    Ok(()) => {}
                    // Made by another writer meanwhile: checked again on the next pass.
                    Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                        return not_a_directory(root, path, create);
                    }
                    Err(err) => {
                        return Err(Error::io(format!("creating {}", current.display()), err));
                    }
                }
            }
            Err(err) => return Err(Error::io(format!("reading {}", current.display()), err)),
        }
    }
    Ok(None)
}

/// Writes one file or symlink atomically: a temporary sibling, then a rename over `abs`
/// (whose parent [`not_a_directory`] has checked). A rename replaces a symlink at `abs`
/// itself, never what it points at.
fn write_entry(abs: &Path, kind: EntryKind, data: &[u8]) -> std::io::Result<()> {
    // Named for this process, so a snapshot never records it and the next run removes
    // it if a kill leaves it behind (see `temp`).
    let temp = crate::git::temp::sibling(abs);
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

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    use super::*;

    fn repo() -> (tempfile::TempDir, gix::Repository) {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("git").args(["init", "-q"]).current_dir(dir.path()).status();
        assert!(status.unwrap().success());
        let repo = gix::open(dir.path()).unwrap();
        (dir, repo)
    }

    /// Writes an object of `kind` with exactly `bytes`, as an attacker would.
    fn raw(dir: &Path, kind: &str, bytes: &[u8]) -> ObjectId {
        let mut child = Command::new("git")
            .args(["hash-object", "-t", kind, "--literally", "-w", "--stdin"])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        ObjectId::from_hex(String::from_utf8(out.stdout).unwrap().trim().as_bytes()).unwrap()
    }

    fn tree(dir: &Path, entries: &[(&str, &[u8], ObjectId)]) -> ObjectId {
        let mut bytes = Vec::new();
        for (mode, name, id) in entries {
            bytes.extend_from_slice(format!("{mode} ").as_bytes());
            bytes.extend_from_slice(name);
            bytes.push(0);
            bytes.extend_from_slice(id.as_bytes());
        }
        raw(dir, "tree", &bytes)
    }

    fn refused(result: Result<()>) -> UnsafePath {
        match result {
            Err(crate::checkpoint::Error::UnsafePath(path)) => path,
            other => panic!("expected an unsafe path, got {other:?}"),
        }
    }

    #[test]
    fn truncated_and_unsorted_trees_are_refused_by_path() {
        let (dir, repo) = repo();
        let blob = raw(dir.path(), "blob", b"x\n");
        let mut cut = b"100644 file\0".to_vec();
        cut.extend_from_slice(&blob.as_bytes()[..7]);
        let truncated = raw(dir.path(), "tree", &cut);
        let root = tree(dir.path(), &[("40000", b"sub", truncated)]);
        let err = refused(check_tree(&repo, None, root, &mut Default::default()));
        assert_eq!((err.path.as_slice(), err.rule), (&b"sub"[..], Rule::MalformedTree));

        let unsorted = tree(dir.path(), &[("100644", b"b", blob), ("100644", b"a", blob)]);
        let err = refused(check_tree(&repo, None, unsorted, &mut Default::default()));
        assert_eq!(err.rule, Rule::UnsortedTree);
        let twice = tree(dir.path(), &[("100644", b"a", blob), ("100644", b"a", blob)]);
        let err = refused(check_tree(&repo, None, twice, &mut Default::default()));
        assert_eq!(err.rule, Rule::UnsortedTree);
        let empty = tree(dir.path(), &[]);
        let file_and_dir = tree(
            dir.path(),
            &[("100644", b"a", blob), ("100644", b"a-b", blob), ("40000", b"a", empty)],
        );
        let err = refused(check_tree(&repo, None, file_and_dir, &mut Default::default()));
        assert_eq!(err.rule, Rule::UnsortedTree);
    }

    #[test]
    fn only_what_differs_from_the_checked_tree_is_read() {
        let (dir, repo) = repo();
        let blob = raw(dir.path(), "blob", b"x\n");
        // A subtree that would be refused, standing in for one checked earlier: a walk
        // that skips unchanged subtrees never opens it.
        let bad = tree(dir.path(), &[("100644", b"..", blob)]);
        let old = tree(dir.path(), &[("40000", b"kept", bad)]);
        let new = tree(dir.path(), &[("100644", b"added", blob), ("40000", b"kept", bad)]);
        assert!(check_tree(&repo, Some(old), new, &mut Default::default()).is_ok());
        let err = refused(check_tree(&repo, None, new, &mut Default::default()));
        assert_eq!((err.path.as_slice(), err.rule), (&b"kept/.."[..], Rule::ParentDir));
    }

    #[test]
    fn a_symlinked_parent_is_reported_and_nothing_is_created_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let path = RepoPath::new("link/deeper/file").unwrap();
        let blocker = not_a_directory(&root, &path, Create::Missing).unwrap().unwrap();
        assert!(blocker.starts_with("link is a symlink"), "{blocker}");
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none(), "nothing made outside");

        let fresh = RepoPath::new("new/deeper/file").unwrap();
        assert_eq!(not_a_directory(&root, &fresh, Create::Missing).unwrap(), None);
        assert!(root.join("new/deeper").is_dir(), "missing parents are created inside");
    }
}
