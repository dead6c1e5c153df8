//! Temporary files, and sweeping up those of a killed cairn.
//!
//! cairn writes every file it replaces (workspace files on rewind and for the agent's
//! tools, the stat cache, packs) to a temporary name and renames it into place, so a
//! reader never sees half a file. A process killed between the two leaves the temporary
//! file behind; in the workspace a later snapshot would record it as the user's. So every
//! temporary name carries its writer's process id — `.cairn-tmp-<pid>-<random>` — and
//! cairn skips such names when snapshotting and removes them once that process is gone.

use std::ffi::OsStr;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PREFIX: &str = ".cairn-tmp-";

/// The prefix of this process's temporary names (for `tempfile::Builder::prefix`).
pub fn prefix() -> String {
    format!("{PREFIX}{}-", std::process::id())
}

/// A fresh temporary name for this process.
pub fn name() -> String {
    format!("{}{:08x}", prefix(), fastrand::u32(..))
}

/// A temporary sibling of `path`, in the same directory (so the rename stays atomic).
pub fn sibling(path: &Path) -> PathBuf {
    path.parent().unwrap_or(Path::new(".")).join(name())
}

/// The process that wrote a temporary file called `name`; `None` for any other name.
pub fn owner(name: &[u8]) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX.as_bytes())?;
    let end = rest.iter().position(|&b| b == b'-')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// Whether `name` is a temporary file whose writer is no longer running.
pub fn is_abandoned(name: &[u8]) -> bool {
    owner(name).is_some_and(|pid| !alive(pid))
}

/// Whether process `pid` exists (signal 0 checks without sending anything).
pub(crate) fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: kill with signal 0 only checks that the process exists.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// An exclusive lock file holding its owner's process id, removed on drop. One left by a
/// killed process is taken over at once; one whose owner cannot be read (being written
/// this instant, or damaged) only after `stale_after`.
pub struct PidLock(PathBuf);

impl PidLock {
    /// Takes the lock at `path`, or `None` when a live process holds it.
    pub fn try_acquire(path: &Path, stale_after: Duration) -> std::io::Result<Option<PidLock>> {
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut file) => {
                    let lock = PidLock(path.to_owned());
                    file.write_all(std::process::id().to_string().as_bytes())?;
                    return Ok(Some(lock));
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(path)
                        .ok()
                        .and_then(|text| text.trim().parse::<u32>().ok());
                    let stale = match owner {
                        Some(pid) => !alive(pid),
                        None => std::fs::metadata(path)
                            .and_then(|m| m.modified())
                            .ok()
                            .and_then(|t| t.elapsed().ok())
                            .is_some_and(|age| age > stale_after),
                    };
                    if !stale {
                        return Ok(None);
                    }
                    let _ = std::fs::remove_file(path);
                }
                Err(err) => return Err(err),
            }
        }
        Ok(None)
    }
}

impl Drop for PidLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Removes the abandoned temporary files and directories directly inside `dir`.
pub fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if is_abandoned(name.as_bytes()) {
            remove(&dir.join(&name));
        }
    }
}

/// Flushes the file at `path` to stable storage (its data and metadata).
pub fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// Flushes directory `dir` to stable storage, which makes the names created, renamed or
/// removed in it durable (a rename alone can be lost on a crash).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Removes a file, or a directory with everything in it.
pub fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Whether a workspace entry called `name` is one of cairn's temporary files (never
/// snapshotted, whoever wrote it).
pub fn is_temporary(name: &OsStr) -> bool {
    owner(name.as_bytes()).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_writer_and_only_dead_writers_files_are_abandoned() {
        let ours = name();
        assert_eq!(owner(ours.as_bytes()), Some(std::process::id()));
        assert!(!is_abandoned(ours.as_bytes()));
        // pid_max is at most 2^22 on Linux; this one cannot be running.
        assert!(is_abandoned(b".cairn-tmp-99999999-0000abcd"));
        for other in [&b"notes.txt"[..], b".cairn-tmp-", b".cairn-tmp-x-1", b".cairn-tmp-12"] {
            assert_eq!(owner(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn sweeping_removes_abandoned_files_and_directories_only() {
        let dir = tempfile::tempdir().unwrap();
        let dead_file = dir.path().join(".cairn-tmp-99999999-00000001");
        let dead_dir = dir.path().join(".cairn-tmp-99999999-00000002");
        let live = dir.path().join(name());
        let user = dir.path().join("user.txt");
        for file in [&dead_file, &live, &user] {
            std::fs::write(file, "x").unwrap();
        }
        std::fs::create_dir(&dead_dir).unwrap();
        std::fs::write(dead_dir.join("pack-1.idx"), "x").unwrap();
        sweep(dir.path());
        assert!(!dead_file.exists() && !dead_dir.exists());
        assert!(live.exists() && user.exists());
    }
}
