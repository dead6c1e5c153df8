//! What the commands share: opening the store, mapping library errors to messages with
//! hints, color and progress on a terminal.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::checkpoint::{self, Store, StoreOptions};
use crate::config::{Config, ConfigError, Env, Flags};

use super::CommandError;

/// Opens the store for the current directory, with the snapshot settings of its
/// configuration (the defaults when that does not load: reading commands must not fail
/// for it, and the commands that use the rest of the configuration report its errors).
pub fn open_store() -> Result<Store, CommandError> {
    let cwd = std::env::current_dir()?;
    let (store, _) = open_configured(&cwd, &Env::from_process(), &Flags::default())?;
    Ok(store)
}

/// Opens the store for the repository holding `dir` and loads its project's configuration,
/// finding the repository once for both (each hook call and checkpoint is a process of
/// its own). The store takes the configuration's snapshot settings when it loads, and
/// keeps the built-in ones ([`StoreOptions::default`]) when it does not, for the caller
/// to report.
pub fn open_configured(
    dir: &Path,
    env: &Env,
    flags: &Flags,
) -> Result<(Store, Result<Config, ConfigError>), checkpoint::Error> {
    let mut store = Store::discover(dir, StoreOptions::default())?;
    let config = crate::config::load(Some(&store.project()), env, flags);
    if let Ok(config) = &config {
        store.set_options(StoreOptions::from_config(config));
    }
    Ok((store, config))
}

impl From<crate::history::land::Error> for CommandError {
    fn from(err: crate::history::land::Error) -> Self {
        use crate::history::land::Error as E;
        let hint = match &err {
            E::Checkpoint(_) => None,
            E::DetachedHead => Some("`git switch <branch>`, then land"),
            E::Conflict(_) => Some(
                "rebase by hand: `git diff HEAD refs/cairn/sessions/<id> -- . ':!.cairn'` shows the session's side",
            ),
            E::UnrecordedChanges(_) => Some(
                "record them (`cairn checkpoint`), or stash or commit them first; land then takes exactly the session",
            ),
            E::NothingToLand => None,
            E::StagedChanges => Some(
                "commit or unstage them (`git restore --staged .`) first; land rewrites the index",
            ),
        };
        let out = match err {
            E::Checkpoint(err) => return err.into(),
            other => CommandError::user_error(other),
        };
        match hint {
            Some(hint) => out.with_hint(hint),
            None => out,
        }
    }
}

impl From<crate::history::share::Error> for CommandError {
    fn from(err: crate::history::share::Error) -> Self {
        use crate::history::share::Error as E;
        match err {
            E::Checkpoint(err) => err.into(),
            E::Memory(err) => err.into(),
            E::UnknownRemote(_) => CommandError::user_error(err).with_hint(
                "name a remote (`git remote -v` lists them), or add one with `git remote add`",
            ),
            E::Git { .. } => {
                CommandError::user_error(err).with_hint("git's own message above says why")
            }
            E::NoGit(_) => CommandError::internal_error(err),
            E::NoMemory => CommandError::user_error(err),
        }
    }
}

impl From<crate::memory::Error> for CommandError {
    fn from(err: crate::memory::Error) -> Self {
        use crate::memory::Error as E;
        match err {
            E::Git(err) => err.into(),
            E::NoSuchFact { .. } => CommandError::user_error(err)
                .with_hint("`cairn memory show` lists the facts by name"),
            E::Io { .. } | E::UserRepository { .. } => CommandError::internal_error(err),
            _ => CommandError::user_error(err),
        }
    }
}

impl From<crate::git::Error> for CommandError {
    fn from(err: crate::git::Error) -> Self {
        checkpoint::Error::from(err).into()
    }
}

impl From<checkpoint::Error> for CommandError {
    fn from(err: checkpoint::Error) -> Self {
        use checkpoint::Error as E;
        let hint = match &err {
            E::NotARepository(_) => {
                Some("run `cairn init` to create one here (the equivalent of `git init`)")
            }
            E::BareRepository(_) => {
                Some("run cairn inside a clone or a worktree of it (`git worktree add`)")
            }
            E::UnknownCheckpoint(_) | E::UnknownSession(_) => {
                Some("`cairn sessions` lists sessions; `cairn log SESSION` lists their steps")
            }
            E::AmbiguousCheckpoint { .. } => Some("type more of the session id"),
            E::InvalidCheckpointName { .. } => {
                Some("name a checkpoint as SESSION, SESSION@N, @, @~K, or a git revision of a step")
            }
            E::NoCurrentSession => {
                Some("start one with `cairn checkpoint --new`, or name a session")
            }
            E::ConcurrentUpdate { .. }
            | E::SessionBusy { .. }
            | E::Git(crate::git::Error::ConcurrentUpdate { .. }) => {
                Some("another cairn process is working on it; try again")
            }
            E::NotAStep { .. } => Some(
                "cairn refs must point at cairn step commits; `git log` the ref to see what moved it",
            ),
            E::Git(crate::git::Error::CorruptPack { .. }) => Some(
                "no pack was changed or removed; `git fsck` lists the objects that can no longer \
                 be read, and a clone or backup of the repository can supply them",
            ),
            E::UnsafeStep { .. } | E::UnsafePath(_) => Some(
                "nothing was changed; a session holding such a path was made by hand, not by cairn \
                 (`git ls-tree -r <step>` shows its tree)",
            ),
            _ => None,
        };
        let mut out = if err.is_user_error() {
            CommandError::user_error(err)
        } else {
            CommandError::internal_error(err)
        };
        if let Some(hint) = hint {
            out = out.with_hint(hint);
        }
        out
    }
}

/// The session a name resolves to (any checkpoint form), or the current session.
pub fn session_or_current(store: &Store, name: Option<&str>) -> Result<String, CommandError> {
    Ok(match name {
        Some(name) => store.resolve(name)?.session,
        None => store.current_session()?.ok_or(checkpoint::Error::NoCurrentSession)?,
    })
}

/// Whether to color stdout: a terminal, and `NO_COLOR` unset.
pub fn color_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether to color stderr: a terminal, and `NO_COLOR` unset.
pub fn color_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Runs `work`, showing a spinner with a count on stderr if it takes longer than a
/// second and stderr is a terminal. Piped output stays clean.
pub fn with_progress<T>(label: &str, counter: &Arc<AtomicUsize>, work: impl FnOnce() -> T) -> T {
    if !std::io::stderr().is_terminal() {
        return work();
    }
    counter.store(0, Ordering::Relaxed);
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let done = Arc::clone(&done);
        let counter = Arc::clone(counter);
        let label = label.to_string();
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_secs(1) {
                if done.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let bar = indicatif::ProgressBar::new_spinner();
            while !done.load(Ordering::Relaxed) {
                bar.set_message(format!("{label}: {} files", counter.load(Ordering::Relaxed)));
                bar.tick();
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        })
    };
    let out = work();
    done.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    out
}

/// Prints a value as one line of JSON.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), CommandError> {
    let text = serde_json::to_string(value).map_err(CommandError::internal_error)?;
    println!("{text}");
    Ok(())
}

/// A timestamp for humans: `2026-11-24 15:30`.
pub fn format_time(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// A timestamp for programs: RFC 3339 in UTC, `2026-11-24T15:30:00Z`, as `session.toml`
/// writes them. `None` for seconds outside the range of a calendar date.
pub fn rfc3339(seconds: i64) -> Option<String> {
    jiff::Timestamp::from_second(seconds)
        .ok()
        .map(|time| time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// A size for humans: `512 B`, `12.3 KiB`, `4.5 MiB`.
pub fn format_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let value = bytes as f64;
    if value < KIB {
        format!("{bytes} B")
    } else if value < KIB * KIB {
        format!("{:.1} KiB", value / KIB)
    } else {
        format!("{:.1} MiB", value / (KIB * KIB))
    }
}

/// Warns about each path a restore left as it was, with why; the path and the reason
/// quote a tree's names, so both are printed terminal-safe.
pub fn report_kept(kept: &[(String, String)]) {
    for (path, reason) in kept {
        let (path, reason) = (crate::text::terminal_safe(path), crate::text::terminal_safe(reason));
        eprintln!("warning: left {path} as it is: {reason}");
    }
}
