//! Which workspace paths changed between steps, without scanning.
//!
//! A step must hold only its own changes: an edit the user makes in an editor belongs in a
//! `user-edits` step, never in the agent's. A file watcher collects every path touched;
//! before each model call and each shell command the agent records them (through the
//! snapshot fast path) as a `user-edits` step when their content differs from the tip.
//! The agent's own edits show up too, but they already match the tip and so add nothing.
//! Where no watcher can run, or events were lost, the caller falls back to a full scan.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::{EventKind, RecursiveMode, Watcher as _};

/// More paths than this at once (a build writing thousands of files) are cheaper to find
/// with one incremental scan than one by one.
const MAX_PATHS: usize = 512;

/// What changed since the last [`Watcher::take`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// These workspace-relative paths may have changed.
    Paths(Vec<PathBuf>),
    /// Too much changed, or events were lost: scan.
    Rescan,
}

#[derive(Default)]
struct Collected {
    paths: BTreeSet<PathBuf>,
    overflow: bool,
}

/// Watches a workspace for changes.
pub struct Watcher {
    _inner: notify::RecommendedWatcher,
    collected: Arc<Mutex<Collected>>,
}

impl Watcher {
    /// Starts watching `root` recursively. Fails where the platform cannot watch (for
    /// example when inotify watches are exhausted); callers then scan instead.
    pub fn start(root: &Path) -> notify::Result<Watcher> {
        let collected = Arc::new(Mutex::new(Collected::default()));
        let sink = Arc::clone(&collected);
        let root_owned = root.to_path_buf();
        let canonical_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let mut inner =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(mut collected) = sink.lock() else { return };
                match event {
                    Ok(event) => {
                        if event.need_rescan() {
                            collected.overflow = true;
                        }
                        if matches!(event.kind, EventKind::Access(_)) {
                            return;
                        }
                        for path in event.paths {
                            let rel = path
                                .strip_prefix(&root_owned)
                                .or_else(|_| path.strip_prefix(&canonical_root))
                                .map(Path::to_path_buf);
                            if let Ok(rel) = rel
                                && is_workspace_path(&rel)
                            {
                                collected.paths.insert(rel);
                            }
                        }
                        if collected.paths.len() > MAX_PATHS {
                            collected.overflow = true;
                            collected.paths.clear();
                        }
                    }
                    Err(_) => collected.overflow = true,
                }
            })?;
        inner.watch(root, RecursiveMode::Recursive)?;
        Ok(Watcher { _inner: inner, collected })
    }

    /// Everything collected since the last call, and resets.
    pub fn take(&self) -> Pending {
        let Ok(mut collected) = self.collected.lock() else { return Pending::Rescan };
        let taken = std::mem::take(&mut *collected);
        if taken.overflow {
            Pending::Rescan
        } else {
            Pending::Paths(taken.paths.into_iter().collect())
        }
    }
}

/// Paths inside `.git` or cairn's reserved `.cairn` are never part of a snapshot.
fn is_workspace_path(rel: &Path) -> bool {
    let mut components = rel.components();
    match components.next() {
        Some(Component::Normal(first)) => {
            first != ".git"
                && first != ".cairn"
                && !rel.components().any(|c| c.as_os_str() == ".git")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_workspace_paths_count() {
        assert!(is_workspace_path(Path::new("src/lib.rs")));
        assert!(!is_workspace_path(Path::new(".git/index")));
        assert!(!is_workspace_path(Path::new("vendor/dep/.git/HEAD")));
        assert!(!is_workspace_path(Path::new(".cairn/x")));
        assert!(!is_workspace_path(Path::new("")));
    }

    #[test]
    fn edits_are_collected_and_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let watcher = Watcher::start(dir.path()).unwrap();
        std::fs::write(dir.path().join("a.txt"), "x").unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "x").unwrap();
        let first = collect_until(&watcher, "a.txt");
        assert!(!first.iter().any(|p| p.starts_with(".git")), "{first:?}");

        // One write raises several events (create, modify, close) that may straggle in;
        // drain until the watcher is quiet, then a new edit must come alone.
        let mut quiet_takes = 0;
        for _ in 0..200 {
            match watcher.take() {
                Pending::Paths(paths) if paths.is_empty() => quiet_takes += 1,
                _ => quiet_takes = 0,
            }
            if quiet_takes == 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(quiet_takes, 3, "the watcher never went quiet");
        std::fs::write(dir.path().join("b.txt"), "y").unwrap();
        let second = collect_until(&watcher, "b.txt");
        assert!(!second.contains(&PathBuf::from("a.txt")), "a.txt was taken already: {second:?}");
    }

    /// Takes from the watcher until `name` shows up (events arrive asynchronously; bounded).
    fn collect_until(watcher: &Watcher, name: &str) -> Vec<PathBuf> {
        let mut seen = Vec::new();
        for _ in 0..500 {
            if let Pending::Paths(paths) = watcher.take() {
                seen.extend(paths);
            }
            if seen.iter().any(|p| p == Path::new(name)) {
                return seen;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("{name} never showed up: {seen:?}");
    }
}
