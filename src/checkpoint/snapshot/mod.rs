//! Snapshots: the workspace as a git tree, without touching the workspace, `HEAD` or the
//! index.
//!
//! A snapshot holds every file git would track (tracked plus untracked, minus ignored),
//! with executable bits, symlinks stored as links, and nested repositories as gitlinks.
//! Two ways in:
//!
//! - [`scan`] walks the whole workspace in three phases: a parallel walk that `lstat`s
//!   entries and compares them with the [stat cache](stat_cache), skipping the
//!   `readdir` of directories whose metadata is unchanged and copying nothing of a
//!   directory whose files are all unchanged; parallel hashing of the files that changed;
//!   and a bottom-up tree build that reuses the tree id (and the cache record) of every
//!   directory whose entries are unchanged, writing the next cache as it goes. Its cost
//!   follows what changed, plus one `lstat` per entry.
//! - [`apply_paths`] is the fast path for callers that know what they changed (the agent's
//!   edit tools): it reads only those paths and rewrites only the trees above them.

mod apply;
mod attributes;
pub mod fsmonitor;
mod ignore;
mod index;
mod scan;
mod stat;
mod stat_cache;
mod tree;
mod walk;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::bstr::{BStr, BString, ByteSlice, ByteVec};
use serde::{Deserialize, Serialize};

use super::error::Result;
use crate::git::Context;
use stat_cache::CachedKind;

pub use apply::{PathsSnapshot, apply_paths};
pub use scan::{ScanContext, scan, scan_with_watchman};

/// The directories the full scan that wrote the stat cache at `cache_path` entered,
/// relative to the workspace root (the root left out); none without a cache.
pub fn scanned_dirs(cache_path: &Path) -> Vec<PathBuf> {
    let mut dirs = stat_cache::list_dirs(cache_path);
    dirs.sort_unstable();
    dirs.dedup();
    dirs.into_iter().map(|rel| PathBuf::from(OsStr::from_bytes(&rel))).collect()
}

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
    /// Whether the user's index was read (for an ignored name, an oversized file, or the
    /// blob ids of many files the stat cache did not know).
    pub index_read: bool,
}

/// What a snapshot learnt for the next one: the refreshed stat cache of a full scan and
/// Watchman's state ([`fsmonitor`]), to be saved once the objects they name are persisted.
pub struct StatCacheUpdate {
    cache: Option<stat_cache::PendingCache>,
    monitor: Option<(fsmonitor::MonitorState, PathBuf)>,
}

impl StatCacheUpdate {
    pub fn save(self) {
        // A cache that cannot be written only costs speed next time; the snapshot stands.
        if let Some(cache) = self.cache {
            let _ = cache.save();
        }
        if let Some((state, path)) = self.monitor {
            state.save(&path);
        }
    }
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

fn basename(path: &BStr) -> BString {
    BString::from(path.rsplit_str("/").next().unwrap_or(path.as_bytes()))
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
/// Joins a directory path and a name with `/` (the root is `""`).
pub(super) fn join(dir: &BStr, name: &BStr) -> BString {
    let mut out = BString::from(Vec::with_capacity(dir.len() + name.len() + 1));
    if !dir.is_empty() {
        out.push_str(dir);
        out.push(b'/');
    }
    out.push_str(name);
    out
}

/// Git's tree order: names compare bytewise, with directories as if followed by `/`.
pub(super) fn cmp_names(a: &[u8], a_is_dir: bool, b: &[u8], b_is_dir: bool) -> std::cmp::Ordering {
    let common = a.len().min(b.len());
    a[..common].cmp(&b[..common]).then_with(|| {
        let a_next = a.get(common).copied().or(a_is_dir.then_some(b'/'));
        let b_next = b.get(common).copied().or(b_is_dir.then_some(b'/'));
        a_next.cmp(&b_next)
    })
}
