//! The fast path: a snapshot from a known set of changed paths, reading only those files
//! and rewriting only the trees above them.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gix::ObjectId;
use gix::bstr::{BStr, BString, ByteSlice, ByteVec};
use gix::objs::tree::EntryKind;

use super::ignore::{DirRules, GlobalRules};
use super::index::LazyIndex;
use super::stat::FileStat;
use super::stat_cache::CachedKind;
use super::{HashJob, HashOutcome, Skipped, join, read_blob, store_blob};
use crate::checkpoint::error::{Error, Result};
use crate::git::objects;
use crate::git::path::RepoPath;
use crate::git::{Context, IoContext};

/// Checks that a caller-supplied path is a plain relative workspace path whose names
/// [`RepoPath`] accepts, and returns it in `/`-separated form.
fn validate_rel_path(path: &Path) -> Result<BString> {
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
    let on_disk = objects::presence(repo);
    let mut paths_ctx = PathsContext {
        repo,
        root,
        on_disk: &on_disk,
        index: LazyIndex::new(repo.index_path()),
        global: None,
        max_new_file_size,
        skipped: Vec::new(),
    };
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
        if known || paths_ctx.admits_new(rel.as_bstr(), kind, &stat)? {
            paths_ctx.record_file(&mut editor, &rel, kind, known)?;
        }
    }
    let tree = editor.write().context(|| "writing trees".into())?.detach();
    Ok(Some(PathsSnapshot { tree, skipped: paths_ctx.skipped }))
}

/// What [`apply_paths`] consults and collects besides the tree it edits.
struct PathsContext<'a> {
    repo: &'a gix::Repository,
    root: &'a Path,
    on_disk: &'a dyn gix::objs::Exists,
    index: LazyIndex,
    /// Loaded for the first path the base tree does not hold.
    global: Option<GlobalRules>,
    max_new_file_size: u64,
    skipped: Vec<Skipped>,
}

impl PathsContext<'_> {
    /// Whether a path the base tree does not hold enters the snapshot: not when it is
    /// ignored and untracked, nor when it is an untracked file over the size limit (which
    /// is reported as skipped).
    fn admits_new(&mut self, rel: &BStr, kind: EntryKind, stat: &FileStat) -> Result<bool> {
        let global = match &mut self.global {
            Some(global) => global,
            None => self
                .global
                .insert(GlobalRules::load(self.repo).io_context(|| "reading ignore rules".into())?),
        };
        if is_ignored_path(self.root, global, rel)? && !self.index.is_tracked(rel) {
            return Ok(false);
        }
        let limit = self.max_new_file_size;
        if kind != EntryKind::Link && stat.size > limit && !self.index.is_tracked(rel) {
            self.skipped.push(Skipped {
                path: rel.to_str_lossy().into_owned(),
                reason: format!(
                    "untracked file of {} bytes is over the {limit}-byte limit",
                    stat.size
                ),
            });
            return Ok(false);
        }
        Ok(true)
    }

    /// Hashes the file (or symlink) at `rel` and records it in `editor`; one that vanished
    /// meanwhile is removed, an unreadable one reported as skipped.
    fn record_file(
        &mut self,
        editor: &mut gix::object::tree::Editor<'_>,
        rel: &BString,
        kind: EntryKind,
        known: bool,
    ) -> Result<()> {
        let job = HashJob {
            rel_path: rel.clone(),
            kind: if kind == EntryKind::Link { CachedKind::Symlink } else { CachedKind::File },
        };
        let (outcome, new_content) = read_blob(self.on_disk, self.root, &job)?;
        if let (HashOutcome::Blob(id), Some(content)) = (&outcome, new_content) {
            store_blob(self.repo, *id, &content)?;
        }
        match outcome {
            HashOutcome::Blob(id) => {
                editor.upsert(rel, kind, id).context(|| format!("recording {rel}"))?;
            }
            HashOutcome::Vanished => {
                if known {
                    editor.remove(rel).context(|| format!("removing {rel}"))?;
                }
            }
            HashOutcome::Unreadable(reason) => {
                self.skipped.push(Skipped { path: rel.to_str_lossy().into_owned(), reason })
            }
        }
        Ok(())
    }
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
