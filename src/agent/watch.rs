//! Which workspace paths changed between steps, without scanning.
//!
//! A step must hold only its own changes: an edit the user makes in an editor belongs in a
//! `user-edits` step, never in the agent's. A file watcher collects every path touched;
//! before each model call the agent records them (through the snapshot fast path) as a
//! `user-edits` step when their content differs from the tip, and after a shell command it
//! records what the command touched the same way instead of scanning the workspace.
//!
//! Three rules keep that exact:
//! - **Only what a snapshot enters is watched** (on Linux, one watch per directory): the
//!   directories the last full scan entered, from the stat cache, and any directory created
//!   since, until the next scan says whether it counts. `.git`, and ignored trees such as
//!   `target/`, cost nothing. Elsewhere the platform watches the root recursively.
//! - **Set up off the critical path**: watches are added on a thread of their own, and until
//!   they all are, [`Watcher::take`] says [`Pending::Rescan`]. So does the first take after
//!   any watch was added late (the scan that follows covers what it may have missed).
//! - **Complete at every take**: the watcher's events arrive on another thread, so a take
//!   first writes a cookie file in a private watched directory and waits until the watcher
//!   has seen it (events come in order, as Watchman's cookies rely on), so no event from
//!   before the take is still on its way.
//!
//! A directory created or renamed, a `.gitignore` changed, too many paths at once, or a lost
//! event make the next take a rescan. Not seen by any watcher: writes through a shared
//! `mmap`, and writes through a hard link from outside the workspace.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher as _};

use crate::git::temp;

/// More paths than this at once (a build writing thousands of files) are cheaper to find
/// with one incremental scan than one by one.
const MAX_PATHS: usize = 512;

/// How long a take waits for its cookie before giving up and asking for a scan.
const COOKIE_TIMEOUT: Duration = Duration::from_secs(2);

/// What changed since the last [`Watcher::take`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// These workspace-relative paths may have changed.
    Paths(Vec<PathBuf>),
    /// Too much changed, events were lost, or the watcher is not ready: scan.
    Rescan,
}

#[derive(Default)]
struct Collected {
    paths: BTreeSet<PathBuf>,
    overflow: bool,
    /// Every directory that must be watched is.
    ready: bool,
    /// The events since the last take are complete (false until a take after `ready`, and
    /// again after a watch was added late).
    armed: bool,
    /// The watcher stopped working: every take is a rescan.
    failed: bool,
    /// The newest cookie the watcher's thread has seen.
    cookie_seen: u64,
}

/// Where the workspace-relative directories to watch come from (read on the watcher's
/// thread, off the caller's path).
type DirSource = Box<dyn FnOnce() -> Vec<PathBuf> + Send>;

/// What the watcher's thread handles, in the order it happened.
enum Message {
    Event(notify::Result<notify::Event>),
    Scanned(DirSource),
}

/// Hands notify's events to the watcher's thread, in the same queue as [`Message::Scanned`].
struct Forward(mpsc::Sender<Message>);

impl notify::EventHandler for Forward {
    fn handle_event(&mut self, event: notify::Result<notify::Event>) {
        let _ = self.0.send(Message::Event(event));
    }
}

/// What both sides see.
struct Shared {
    collected: Mutex<Collected>,
    cookie_arrived: Condvar,
}

impl Shared {
    fn lock(&self) -> Option<MutexGuard<'_, Collected>> {
        self.collected.lock().ok()
    }
}

/// Watches a workspace for changes.
pub struct Watcher {
    shared: Arc<Shared>,
    cookies: PathBuf,
    next_cookie: AtomicU64,
    messages: mpsc::Sender<Message>,
    /// Holds the cookie directory; removed on drop, or swept as abandoned (its name
    /// carries this process's id, see [`temp`]) when the process is killed.
    _cookie_dir: tempfile::TempDir,
}

impl Watcher {
    /// Starts watching `root` and, on Linux, the workspace-relative directories `dirs`
    /// returns; the cookie directory is made in `private_dir`. Fails only when the cookie
    /// directory or the thread cannot be made; a watcher that cannot start later makes
    /// every take a rescan.
    pub fn start(
        root: &Path,
        private_dir: &Path,
        dirs: impl FnOnce() -> Vec<PathBuf> + Send + 'static,
    ) -> std::io::Result<Watcher> {
        std::fs::create_dir_all(private_dir)?;
        let cookie_dir =
            tempfile::Builder::new().prefix(&temp::prefix()).tempdir_in(private_dir)?;
        let cookies = cookie_dir.path().canonicalize()?;
        let shared = Arc::new(Shared {
            collected: Mutex::new(Collected::default()),
            cookie_arrived: Condvar::new(),
        });
        let (messages, received) = mpsc::channel();
        let thread = WatchThread {
            root: root.to_path_buf(),
            canonical_root: root.canonicalize().unwrap_or_else(|_| root.to_path_buf()),
            cookies: cookies.clone(),
            shared: Arc::clone(&shared),
        };
        let forward = Forward(messages.clone());
        std::thread::Builder::new()
            .name("cairn-watch".into())
            .spawn(move || thread.run(forward, Box::new(dirs), received))?;
        Ok(Watcher {
            shared,
            cookies,
            next_cookie: AtomicU64::new(1),
            messages,
            _cookie_dir: cookie_dir,
        })
    }

    /// Everything collected since the last call, and resets.
    pub fn take(&self) -> Pending {
        if !self.settle() {
            return Pending::Rescan;
        }
        let Some(mut collected) = self.shared.lock() else { return Pending::Rescan };
        let complete = collected.armed && !collected.overflow;
        collected.armed = true;
        collected.overflow = false;
        let paths = std::mem::take(&mut collected.paths);
        if complete { Pending::Paths(paths.into_iter().collect()) } else { Pending::Rescan }
    }

    /// Tells the watcher that a full scan just ran; `dirs` gives the workspace-relative
    /// directories it entered. The watcher stops watching the others and starts on the new
    /// ones, after which the next take is a rescan. Does nothing where the watch is
    /// recursive.
    pub fn scanned(&self, dirs: impl FnOnce() -> Vec<PathBuf> + Send + 'static) {
        if cfg!(target_os = "linux") {
            let _ = self.messages.send(Message::Scanned(Box::new(dirs)));
        }
    }

    /// Waits until every event and message from before now has been handled; false when
    /// the watcher is not ready, failed, or the cookie did not arrive in time.
    fn settle(&self) -> bool {
        match self.shared.lock() {
            Some(collected) if collected.ready && !collected.failed => {}
            _ => return false,
        }
        let cookie = self.next_cookie.fetch_add(1, Ordering::Relaxed);
        let path = self.cookies.join(cookie.to_string());
        if std::fs::write(&path, b"").is_err() {
            return false;
        }
        let arrived = self.shared.lock().and_then(|collected| {
            self.shared
                .cookie_arrived
                .wait_timeout_while(collected, COOKIE_TIMEOUT, |c| {
                    c.cookie_seen < cookie && !c.failed
                })
                .ok()
                .map(|(collected, _)| collected.cookie_seen >= cookie)
        });
        let _ = std::fs::remove_file(&path);
        arrived == Some(true)
    }
}

/// The watcher's own thread: it owns the watches and handles every message in order.
struct WatchThread {
    root: PathBuf,
    canonical_root: PathBuf,
    cookies: PathBuf,
    shared: Arc<Shared>,
}

/// The platform's watcher and the directories it watches (absolute paths).
struct Watches {
    inner: notify::RecommendedWatcher,
    dirs: BTreeSet<PathBuf>,
}

impl WatchThread {
    /// Adds the watches, then handles messages until the [`Watcher`] is dropped.
    fn run(self, forward: Forward, dirs: DirSource, received: mpsc::Receiver<Message>) {
        let Ok(mut watches) = self.set_up(forward, dirs) else {
            if let Some(mut collected) = self.shared.lock() {
                collected.failed = true;
            }
            self.shared.cookie_arrived.notify_all();
            return;
        };
        if let Some(mut collected) = self.shared.lock() {
            collected.ready = true;
        }
        for message in received {
            match message {
                Message::Event(Ok(event)) => self.handle(&mut watches, event),
                Message::Event(Err(_)) => self.overflow(),
                Message::Scanned(dirs) => self.rewatch(&mut watches, dirs()),
            }
        }
    }

    fn set_up(&self, forward: Forward, dirs: DirSource) -> notify::Result<Watches> {
        let mut watches =
            Watches { inner: notify::recommended_watcher(forward)?, dirs: BTreeSet::new() };
        watches.inner.watch(&self.cookies, RecursiveMode::NonRecursive)?;
        if cfg!(target_os = "linux") {
            watches.inner.watch(&self.root, RecursiveMode::NonRecursive)?;
            watches.dirs.insert(self.root.clone());
            for dir in dirs() {
                let dir = self.root.join(dir);
                // A directory removed since the scan is seen as removed by its parent.
                if watches.inner.watch(&dir, RecursiveMode::NonRecursive).is_ok() {
                    watches.dirs.insert(dir);
                }
            }
        } else {
            watches.inner.watch(&self.root, RecursiveMode::Recursive)?;
        }
        Ok(watches)
    }

    fn overflow(&self) {
        if let Some(mut collected) = self.shared.lock() {
            collected.overflow = true;
            collected.paths.clear();
        }
    }

    fn handle(&self, watches: &mut Watches, event: notify::Event) {
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        let created = matches!(
            event.kind,
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::To))
        );
        let removed = matches!(
            event.kind,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From))
        );
        let renamed = matches!(
            event.kind,
            EventKind::Modify(ModifyKind::Name(RenameMode::Both | RenameMode::Any))
        );
        let mut rescan = false;
        let mut rels = Vec::new();
        for path in &event.paths {
            if let Ok(cookie) = path.strip_prefix(&self.cookies) {
                if let Some(number) = cookie.to_str().and_then(|name| name.parse::<u64>().ok())
                    && let Some(mut collected) = self.shared.lock()
                {
                    collected.cookie_seen = collected.cookie_seen.max(number);
                    self.shared.cookie_arrived.notify_all();
                }
                continue;
            }
            let Some(rel) = self.relative(path) else { continue };
            if cfg!(target_os = "linux") {
                if removed || renamed {
                    rescan |= forget_dirs_under(watches, path);
                }
                let is_dir = std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir());
                if (created || renamed) && is_dir {
                    watch_tree(watches, path);
                    rescan = true;
                }
            }
            // New ignore rules can bring in files no watch saw, or drop some: a scan
            // settles which count.
            rescan |= rel.file_name().is_some_and(|name| name == ".gitignore");
            rels.push(rel);
        }
        let Some(mut collected) = self.shared.lock() else { return };
        collected.paths.extend(rels);
        if event.need_rescan() || rescan || collected.paths.len() > MAX_PATHS {
            collected.overflow = true;
            collected.paths.clear();
        }
    }

    /// After a full scan: watches exactly the root and the directories it entered. A watch
    /// added now may have missed changes since the scan, so the next take is a rescan.
    fn rewatch(&self, watches: &mut Watches, dirs: Vec<PathBuf>) {
        let wanted: BTreeSet<PathBuf> = std::iter::once(self.root.clone())
            .chain(dirs.into_iter().map(|dir| self.root.join(dir)))
            .collect();
        let gone: Vec<PathBuf> = watches.dirs.difference(&wanted).cloned().collect();
        for dir in gone {
            let _ = watches.inner.unwatch(&dir);
            watches.dirs.remove(&dir);
        }
        let mut added = false;
        for dir in wanted {
            if !watches.dirs.contains(&dir)
                && watches.inner.watch(&dir, RecursiveMode::NonRecursive).is_ok()
            {
                watches.dirs.insert(dir);
                added = true;
            }
        }
        if added && let Some(mut collected) = self.shared.lock() {
            collected.armed = false;
        }
    }

    /// The workspace-relative form of an event's path, if a snapshot could hold it.
    fn relative(&self, path: &Path) -> Option<PathBuf> {
        let rel = path
            .strip_prefix(&self.root)
            .or_else(|_| path.strip_prefix(&self.canonical_root))
            .ok()?;
        is_workspace_path(rel).then(|| rel.to_path_buf())
    }
}

/// Watches a directory that appeared and the directories inside it (made before the
/// watch was in place), except repositories' `.git`.
fn watch_tree(watches: &mut Watches, dir: &Path) {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        if watches.dirs.contains(&dir)
            || watches.inner.watch(&dir, RecursiveMode::NonRecursive).is_err()
        {
            continue;
        }
        watches.dirs.insert(dir.clone());
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) && entry.file_name() != ".git" {
                pending.push(entry.path());
            }
        }
    }
}

/// Drops the watches of `path` and below it (a directory removed or renamed away; a
/// renamed directory's watch would go on reporting the old name). True if there were.
fn forget_dirs_under(watches: &mut Watches, path: &Path) -> bool {
    // Paths order by component, so `path` and everything below it are one run.
    let under: Vec<PathBuf> = watches
        .dirs
        .range(path.to_path_buf()..)
        .take_while(|dir| dir.starts_with(path))
        .cloned()
        .collect();
    for dir in &under {
        let _ = watches.inner.unwatch(dir);
        watches.dirs.remove(dir);
    }
    !under.is_empty()
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

    /// Takes until the watcher is set up and armed (the first takes are rescans).
    fn armed(watcher: &Watcher) {
        for _ in 0..500 {
            if watcher.take() != Pending::Rescan {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the watcher never became ready");
    }

    /// A watcher of `dir` whose cookies live where cairn keeps them, in `.git/cairn`.
    fn start(
        dir: &tempfile::TempDir,
        dirs: impl FnOnce() -> Vec<PathBuf> + Send + 'static,
    ) -> Watcher {
        Watcher::start(dir.path(), &dir.path().join(".git/cairn"), dirs).unwrap()
    }

    fn paths(pending: Pending) -> Vec<PathBuf> {
        match pending {
            Pending::Paths(paths) => paths,
            Pending::Rescan => panic!("a rescan where paths were expected"),
        }
    }

    #[test]
    fn a_take_holds_every_edit_made_before_it_and_each_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        let watcher = start(&dir, || vec![PathBuf::from("src")]);
        armed(&watcher);
        std::fs::write(dir.path().join("a.txt"), "x").unwrap();
        std::fs::write(dir.path().join("src/b.rs"), "y").unwrap();
        // No waiting: the take's cookie guarantees both writes are in.
        assert_eq!(paths(watcher.take()), [PathBuf::from("a.txt"), PathBuf::from("src/b.rs")]);
        assert_eq!(paths(watcher.take()), Vec::<PathBuf>::new());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn directories_the_scan_did_not_enter_are_not_watched() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["src", "target/debug", ".git"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let watcher = start(&dir, || vec![PathBuf::from("src")]);
        armed(&watcher);
        std::fs::write(dir.path().join("target/debug/out.o"), "o").unwrap();
        std::fs::write(dir.path().join(".git/index"), "i").unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), "l").unwrap();
        assert_eq!(paths(watcher.take()), [PathBuf::from("src/lib.rs")]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_new_directory_means_a_rescan_and_is_watched_from_then_on() {
        let dir = tempfile::tempdir().unwrap();
        let watcher = start(&dir, Vec::new);
        armed(&watcher);
        std::fs::create_dir_all(dir.path().join("new/deep")).unwrap();
        std::fs::write(dir.path().join("new/deep/a.txt"), "a").unwrap();
        assert_eq!(watcher.take(), Pending::Rescan);
        std::fs::write(dir.path().join("new/deep/b.txt"), "b").unwrap();
        assert_eq!(paths(watcher.take()), [PathBuf::from("new/deep/b.txt")]);

        // The scan that followed did not enter it (say it is ignored): no more watch, and
        // the first take after a late watch is a rescan again.
        watcher.scanned(Vec::new);
        assert_eq!(paths(watcher.take()), Vec::<PathBuf>::new());
        std::fs::write(dir.path().join("new/deep/c.txt"), "c").unwrap();
        assert_eq!(paths(watcher.take()), Vec::<PathBuf>::new());
        watcher.scanned(|| vec![PathBuf::from("new"), PathBuf::from("new/deep")]);
        assert_eq!(watcher.take(), Pending::Rescan);
        std::fs::write(dir.path().join("new/deep/d.txt"), "d").unwrap();
        assert_eq!(paths(watcher.take()), [PathBuf::from("new/deep/d.txt")]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_renamed_directory_is_watched_under_its_new_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("old")).unwrap();
        let watcher = start(&dir, || vec![PathBuf::from("old")]);
        armed(&watcher);
        std::fs::rename(dir.path().join("old"), dir.path().join("new")).unwrap();
        assert_eq!(watcher.take(), Pending::Rescan);
        std::fs::write(dir.path().join("new/a.txt"), "a").unwrap();
        assert_eq!(paths(watcher.take()), [PathBuf::from("new/a.txt")]);
    }

    #[test]
    fn the_cookie_directory_is_named_for_this_process_and_removed_with_the_watcher() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join(".git/cairn");
        let cookie_dirs = || -> Vec<_> {
            std::fs::read_dir(&private).unwrap().map(|entry| entry.unwrap().file_name()).collect()
        };
        let watcher = start(&dir, Vec::new);
        armed(&watcher);
        let made = cookie_dirs();
        assert_eq!(made.len(), 1, "{made:?}");
        // A killed process's is swept by the next cairn, as every temporary name is.
        assert_eq!(temp::owner(made[0].as_encoded_bytes()), Some(std::process::id()));
        drop(watcher);
        assert_eq!(cookie_dirs(), Vec::<std::ffi::OsString>::new());
    }

    #[test]
    fn a_changed_gitignore_means_a_rescan() {
        let dir = tempfile::tempdir().unwrap();
        let watcher = start(&dir, Vec::new);
        armed(&watcher);
        std::fs::write(dir.path().join(".gitignore"), "target/\n").unwrap();
        assert_eq!(watcher.take(), Pending::Rescan);
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        assert_eq!(paths(watcher.take()), [PathBuf::from("a.txt")]);
    }
}
