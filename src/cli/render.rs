//! Diffs for humans: unified text diffs with `similar`, or a `--stat` summary, with
//! `.cairn/` hidden and color only on a terminal. File names and contents are escaped
//! for the terminal ([`terminal_safe`]) before any colour is added.

use std::fmt::Write as _;

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;

use crate::checkpoint::{self, Change};
use crate::text::{is_binary, terminal_safe};

use super::CommandError;

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const BOLD: &str = "\x1b[1m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

/// One file's difference.
struct FileDiff {
    path: String,
    old: Option<(EntryKind, ObjectId)>,
    new: Option<(EntryKind, ObjectId)>,
}

fn file_diffs(
    repo: &gix::Repository,
    from: Option<ObjectId>,
    to: Option<ObjectId>,
) -> Result<Vec<FileDiff>, CommandError> {
    let changes = checkpoint::diff_trees(repo, from, to)?;
    let mut files: Vec<FileDiff> = Vec::new();
    // Modifications arrive as writes of existing paths; additions and deletions may pair
    // up by path when a file's type changed.
    let old_side = match from {
        Some(tree) => {
            Some(repo.find_tree(tree).map_err(|e| CommandError::internal(e.to_string()))?)
        }
        None => None,
    };
    for change in changes {
        match change {
            Change::Delete { kind: EntryKind::Tree, .. } => {}
            Change::Delete { path, kind } => {
                let id = lookup(old_side.as_ref(), &path.to_str_lossy())?;
                files.push(FileDiff {
                    path: path.to_str_lossy().into_owned(),
                    old: id.map(|id| (kind, id)),
                    new: None,
                });
            }
            Change::Write { path, kind, id, existed } => {
                let path = path.to_str_lossy().into_owned();
                let old = if existed { lookup_entry(old_side.as_ref(), &path)? } else { None };
                if let Some(existing) = files.iter_mut().find(|f| f.path == path && f.new.is_none())
                {
                    existing.new = Some((kind, id));
                } else {
                    files.push(FileDiff { path, old, new: Some((kind, id)) });
                }
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn lookup(tree: Option<&gix::Tree<'_>>, path: &str) -> Result<Option<ObjectId>, CommandError> {
    Ok(lookup_entry(tree, path)?.map(|(_, id)| id))
}

fn lookup_entry(
    tree: Option<&gix::Tree<'_>>,
    path: &str,
) -> Result<Option<(EntryKind, ObjectId)>, CommandError> {
    let Some(tree) = tree else { return Ok(None) };
    let entry =
        tree.lookup_entry_by_path(path).map_err(|e| CommandError::internal(e.to_string()))?;
    Ok(entry.map(|e| (e.mode().kind(), e.oid().to_owned())))
}

fn content(
    repo: &gix::Repository,
    side: Option<(EntryKind, ObjectId)>,
) -> Result<Vec<u8>, CommandError> {
    match side {
        Some((EntryKind::Commit, id)) => Ok(format!("Subproject commit {id}\n").into_bytes()),
        Some((_, id)) => {
            Ok(repo.find_blob(id).map_err(|e| CommandError::internal(e.to_string()))?.data.clone())
        }
        None => Ok(Vec::new()),
    }
}

/// Renders the difference between two workspace trees (`.cairn/` is never shown).
pub fn render(
    repo: &gix::Repository,
    from: Option<ObjectId>,
    to: Option<ObjectId>,
    stat: bool,
    color: bool,
) -> Result<String, CommandError> {
    let paint = Paint(color);
    let mut out = String::new();
    let files = file_diffs(repo, from, to)?;
    let (mut total_added, mut total_removed) = (0, 0);
    for file in &files {
        let old = content(repo, file.old)?;
        let new = content(repo, file.new)?;
        if !stat {
            write_patch(&mut out, file, &old, &new, paint);
        } else if is_binary(&old) || is_binary(&new) {
            let _ = writeln!(out, " {} | binary", terminal_safe(&file.path));
        } else {
            let (added, removed) =
                crate::text::line_counts(&old.to_str_lossy(), &new.to_str_lossy());
            total_added += added;
            total_removed += removed;
            let _ = writeln!(
                out,
                " {} | {} {}",
                terminal_safe(&file.path),
                paint.apply(GREEN, &format!("+{added}")),
                paint.apply(RED, &format!("-{removed}"))
            );
        }
    }
    if stat {
        let _ = writeln!(
            out,
            " {} file{} changed, {total_added} insertion(s)(+), {total_removed} deletion(s)(-)",
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        );
    }
    Ok(out)
}

/// Whether output is colored, and the one way text gets its color.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn apply(self, code: &str, text: &str) -> String {
        if self.0 { format!("{code}{text}{RESET}") } else { text.to_string() }
    }
}

/// One file's part of a patch: its header, mode lines, and a unified diff of its text.
fn write_patch(out: &mut String, file: &FileDiff, old: &[u8], new: &[u8], paint: Paint) {
    let header = terminal_safe(&format!("diff --cairn a/{0} b/{0}", file.path)).into_owned();
    let _ = writeln!(out, "{}", paint.apply(BOLD, &header));
    match (file.old, file.new) {
        (None, Some((kind, _))) => {
            let _ = writeln!(out, "new file mode {:o}", kind as u16);
        }
        (Some((kind, _)), None) => {
            let _ = writeln!(out, "deleted file mode {:o}", kind as u16);
        }
        (Some((old_kind, _)), Some((new_kind, _))) if old_kind != new_kind => {
            let _ = writeln!(out, "old mode {:o}\nnew mode {:o}", old_kind as u16, new_kind as u16);
        }
        _ => {}
    }
    if is_binary(old) || is_binary(new) {
        let _ = writeln!(out, "Binary files differ");
        return;
    }
    let (old_text, new_text) = (old.to_str_lossy(), new.to_str_lossy());
    let diff = similar::TextDiff::from_lines(old_text.as_ref(), new_text.as_ref());
    let old_name = if file.old.is_some() { format!("a/{}", file.path) } else { "/dev/null".into() };
    let new_name = if file.new.is_some() { format!("b/{}", file.path) } else { "/dev/null".into() };
    for line in
        diff.unified_diff().context_radius(3).header(&old_name, &new_name).to_string().lines()
    {
        let safe = terminal_safe(line);
        let painted = if line.starts_with("+++") || line.starts_with("---") {
            paint.apply(BOLD, &safe)
        } else if line.starts_with('+') {
            paint.apply(GREEN, &safe)
        } else if line.starts_with('-') {
            paint.apply(RED, &safe)
        } else if line.starts_with("@@") {
            paint.apply(CYAN, &safe)
        } else {
            safe.into_owned()
        };
        let _ = writeln!(out, "{painted}");
    }
}
