//! `cairn gc`: what cairn keeps that can go. Archive refs (rewound-away tips) older than a
//! window, caches of worktrees that no longer exist, files a crash left behind, and
//! cairn's small packs merged into one. Session refs are never touched, and nothing the user
//! owns is.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::checkpoint::{Result, Store};
use crate::git::{objects, refs};

/// Files a crash may leave (gix's and tempfile's temporaries) are removed once this old:
/// younger ones may belong to a process at work.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// What [`gc`] removed (or, in a dry run, would remove).
#[derive(Debug, Default, Clone, Serialize)]
pub struct GcReport {
    pub archives: Vec<RemovedArchive>,
    /// Stale caches and abandoned temporary files.
    pub files: Vec<PathBuf>,
    /// How many of cairn's packs were merged into one.
    pub packs_merged: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemovedArchive {
    pub name: String,
    pub commit: String,
    pub age_days: u64,
}

impl GcReport {
    pub fn is_empty(&self) -> bool {
        self.archives.is_empty() && self.files.is_empty() && self.packs_merged == 0
    }
}

/// Removes archive refs older than `keep`, stale caches and abandoned temporary files,
/// and merges cairn's small packs. With `dry_run`, only reports what it would remove.
pub fn gc(store: &Store, keep: Duration, dry_run: bool) -> Result<GcReport> {
    let now = SystemTime::now();
    let mut report = GcReport::default();
    for (name, commit) in refs::list(store.repo(), refs::ARCHIVE_PREFIX)? {
        let Some(age) = archive_age(&name, now) else { continue };
        if age <= keep {
            continue;
        }
        if !dry_run {
            refs::delete(store.repo(), &name, commit)?;
        }
        report.archives.push(RemovedArchive {
            name,
            commit: commit.to_string(),
            age_days: age.as_secs() / 86_400,
        });
    }
    report.files = stale_files(store, now);
    if !dry_run {
        for path in &report.files {
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
        }
        report.packs_merged =
            objects::consolidate(store.repo(), &store.pack_registry(), objects::Merge::All)?;
    }
    Ok(report)
}

/// Caches of linked worktrees that are gone, and temporaries a crash left in cairn's
/// directory or in `objects/pack`.
fn stale_files(store: &Store, now: SystemTime) -> Vec<PathBuf> {
    let mut stale = Vec::new();
    let common = store.repo().common_dir();
    let mut dirs = vec![store.private_dir().to_path_buf(), common.join("objects/pack")];
    for entry in read_dir(&store.private_dir().join("worktrees")) {
        let name = entry.file_name().to_string_lossy().into_owned();
        match name.strip_prefix("linked-") {
            Some(worktree) if !common.join("worktrees").join(worktree).is_dir() => {
                stale.push(entry.path());
            }
            _ => dirs.push(entry.path()),
        }
    }
    for dir in dirs {
        for entry in read_dir(&dir) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let leftover = name.starts_with(".tmp")
                || crate::git::temp::owner(name.as_bytes()).is_some()
                || name == objects::LOCK_FILE;
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age > ABANDONED_AFTER);
            if leftover && old {
                stale.push(entry.path());
            }
        }
    }
    stale.sort();
    stale
}

/// An archive ref is named `refs/cairn/archive/<session>/<unix-seconds>`.
fn archive_age(name: &str, now: SystemTime) -> Option<Duration> {
    let seconds: u64 = name.rsplit('/').next()?.parse().ok()?;
    now.duration_since(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)).ok()
}

fn read_dir(dir: &Path) -> impl Iterator<Item = std::fs::DirEntry> + use<> {
    std::fs::read_dir(dir).into_iter().flatten().filter_map(std::result::Result::ok)
}

/// Parses a retention window such as `30d`, `2w`, `12h` or `90m`.
pub fn parse_keep(text: &str) -> std::result::Result<Duration, String> {
    let span: jiff::Span = text
        .trim()
        .parse()
        .map_err(|err| format!("'{text}' is not a duration like 30d, 2w or 12h ({err})"))?;
    let relative = jiff::SpanRelativeTo::days_are_24_hours();
    let duration = span
        .to_duration(relative)
        .map_err(|err| format!("'{text}' cannot be used as a window: {err}"))?;
    duration.try_into().map_err(|_| format!("'{text}' is negative; give how long to keep archives"))
}
