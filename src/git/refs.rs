//! Ref names and ref moves. Every move is a compare-and-swap against the value the caller
//! last saw, and writes a reflog entry (forced: git only keeps reflogs for `refs/heads`
//! and a few others by default).
//!
//! A move is durable before it is visible: gix writes the new value to `<ref>.lock` and
//! renames it into place, fsyncing neither, so cairn takes the transaction in its two
//! halves and fsyncs the lock file between them, and the ref's directory after the rename
//! (git's `core.fsync=reference`). The reflog append is not fsynced (gix offers no hook
//! for it); a crash can lose a reflog line, never the ref.

use std::time::Duration;

use gix::ObjectId;
use gix::lock::acquire::Fail;
use gix::refs::Target;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};

use super::{Context, Error, IoContext, Result};

pub const SESSIONS_PREFIX: &str = "refs/cairn/sessions/";
pub const ARCHIVE_PREFIX: &str = "refs/cairn/archive/";
/// Project memory (tier 3); each step records its tree under `.cairn/memory/project/`.
pub const MEMORY_REF: &str = "refs/cairn/memory";

pub fn session_ref(id: &str) -> String {
    format!("{SESSIONS_PREFIX}{id}")
}

/// Moves `name` from `expected` (`None`: it must not exist yet) to `new`.
pub fn compare_and_swap(
    repo: &gix::Repository,
    name: &str,
    expected: Option<ObjectId>,
    new: ObjectId,
    reflog_message: &str,
    committer: gix::actor::SignatureRef<'_>,
) -> Result<()> {
    let full_name: gix::refs::FullName =
        name.try_into().context(|| format!("'{name}' is not a valid ref name"))?;
    let edit = RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: true,
                message: reflog_message.replace('\n', " ").into(),
            },
            expected: match expected {
                Some(id) => PreviousValue::MustExistAndMatch(Target::Object(id)),
                None => PreviousValue::MustNotExist,
            },
            new: Target::Object(new),
        },
        name: full_name,
        deref: false,
    };
    let mut retried = false;
    loop {
        let err = match commit_durably(repo, edit.clone(), committer) {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        let found = read_ref(repo, name)?;
        if found != expected {
            let show = |id: Option<ObjectId>| id.map_or("nothing".to_string(), |id| id.to_string());
            return Err(Error::ConcurrentUpdate {
                name: name.to_string(),
                expected: show(expected),
                found: show(found),
            });
        }
        if !retried && clear_abandoned_lock(repo, name) {
            retried = true;
            continue;
        }
        return Err(err);
    }
}

/// How long a ref update waits for another writer's lock: git's defaults for
/// `core.filesRefLockTimeout` and `core.packedRefsTimeout`.
const REF_LOCK_WAIT: Duration = Duration::from_millis(100);
const PACKED_REFS_LOCK_WAIT: Duration = Duration::from_millis(1000);

/// Applies one ref edit, its new value on stable storage before the rename that makes it
/// the ref's (see the module doc).
fn commit_durably(
    repo: &gix::Repository,
    edit: RefEdit,
    committer: gix::actor::SignatureRef<'_>,
) -> Result<()> {
    let name = edit.name.as_bstr().to_string();
    let lock = repo.common_dir().join(format!("{}.lock", edit.name.as_bstr()));
    let prepared = repo
        .refs
        .transaction()
        .prepare(
            Some(edit),
            Fail::AfterDurationWithBackoff(REF_LOCK_WAIT),
            Fail::AfterDurationWithBackoff(PACKED_REFS_LOCK_WAIT),
        )
        .context(|| format!("updating {name}"))?;
    match super::temp::sync_file(&lock) {
        // No lock file: gix found nothing to write to the loose ref.
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(err).io_context(|| format!("syncing {}", lock.display()));
        }
        _ => {}
    }
    prepared.commit(Some(committer)).context(|| format!("updating {name}"))?;
    if let Some(dir) = lock.parent() {
        super::temp::sync_dir(dir).io_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

/// A lock on one of cairn's refs older than this was left by a killed process: git and
/// cairn hold one for the milliseconds a ref update takes.
const ABANDONED_REF_LOCK: std::time::Duration = std::time::Duration::from_secs(2);

/// Removes the locks under `refs/cairn/` that killed processes left on refs no update
/// has come back to (an archive ref is only ever created once).
pub fn sweep_abandoned_locks(repo: &gix::Repository) {
    let mut dirs = vec![repo.common_dir().join("refs/cairn")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "lock")
                && lock_age(&path).is_some_and(|age| age >= ABANDONED_REF_LOCK)
            {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

fn lock_age(lock: &std::path::Path) -> Option<std::time::Duration> {
    let modified = std::fs::metadata(lock).and_then(|m| m.modified()).ok()?;
    Some(modified.elapsed().unwrap_or_default())
}

/// Waits out a lock on `name` held by another process and removes one a killed process
/// left (only under `refs/cairn/`, which only cairn writes); returns whether the update
/// is worth trying again.
fn clear_abandoned_lock(repo: &gix::Repository, name: &str) -> bool {
    if !name.starts_with("refs/cairn/") {
        return false;
    }
    let lock = repo.common_dir().join(format!("{name}.lock"));
    let started = std::time::Instant::now();
    while started.elapsed() < ABANDONED_REF_LOCK * 2 {
        // Gone: its holder finished.
        let Some(age) = lock_age(&lock) else { return true };
        if age >= ABANDONED_REF_LOCK {
            return std::fs::remove_file(&lock).is_ok();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// The object a ref points at, or `None` if there is no such ref.
pub fn read_ref(repo: &gix::Repository, name: &str) -> Result<Option<ObjectId>> {
    let reference = repo.try_find_reference(name).context(|| format!("reading {name}"))?;
    Ok(reference.and_then(|r| r.target().try_id().map(ToOwned::to_owned)))
}

/// How the reflog entry of a session ref moved by `cairn fetch` begins (the remote's name
/// follows): one for a session that arrived new, one for a local session fast-forwarded
/// to the remote's tip.
pub const FETCHED_FROM: &str = "cairn: fetched from ";
pub const FAST_FORWARD_FROM: &str = "cairn: fast-forward from ";

/// The messages of `name`'s reflog entries, oldest first (empty when it has no reflog, as
/// after `git fetch` or `git reflog expire`).
pub fn reflog_messages(repo: &gix::Repository, name: &str) -> Result<Vec<String>> {
    let Some(reference) = repo.try_find_reference(name).context(|| format!("reading {name}"))?
    else {
        return Ok(Vec::new());
    };
    let mut log = reference.log_iter();
    let Some(entries) = log.all().context(|| format!("reading the reflog of {name}"))? else {
        return Ok(Vec::new());
    };
    entries
        .map(|line| {
            line.map(|line| line.message.to_string())
                .context(|| format!("reading the reflog of {name}"))
        })
        .collect()
}

/// All refs under `prefix`, as (name, target) pairs sorted by name.
pub fn list(repo: &gix::Repository, prefix: &str) -> Result<Vec<(String, ObjectId)>> {
    let platform = repo.references().context(|| "listing refs".into())?;
    let iter = platform.prefixed(prefix).context(|| format!("listing {prefix}"))?;
    let mut out = Vec::new();
    for reference in iter {
        let reference = reference.context(|| format!("listing {prefix}"))?;
        if let Some(id) = reference.target().try_id() {
            out.push((reference.name().as_bstr().to_string(), id.to_owned()));
        }
    }
    out.sort();
    Ok(out)
}

/// Deletes `name` if it still points at `expected`.
pub fn delete(repo: &gix::Repository, name: &str, expected: ObjectId) -> Result<()> {
    let full_name: gix::refs::FullName =
        name.try_into().context(|| format!("'{name}' is not a valid ref name"))?;
    let edit = RefEdit {
        change: Change::Delete {
            expected: PreviousValue::MustExistAndMatch(Target::Object(expected)),
            log: RefLog::AndReference,
        },
        name: full_name,
        deref: false,
    };
    repo.edit_reference(edit).context(|| format!("deleting {name}"))?;
    Ok(())
}
