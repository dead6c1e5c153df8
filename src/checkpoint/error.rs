//! The errors of the checkpoint layer.
//!
//! Each variant says what happened in a user's terms; `is_user_error` tells the command
//! line whether the user can fix it (a bad name, a missing repository) or whether something
//! failed underneath (I/O, a corrupt object).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not inside a git repository: {}", .0.display())]
    NotARepository(PathBuf),
    /// A repository was found (or may have been) but could not be opened: permissions,
    /// a broken config.
    #[error("cannot open the git repository at {}", .dir.display())]
    OpenRepository {
        dir: PathBuf,
        #[source]
        source: crate::git::BoxError,
    },
    #[error("{} is a bare repository; cairn needs a working tree", .0.display())]
    BareRepository(PathBuf),
    #[error("no checkpoint named '{0}'")]
    UnknownCheckpoint(String),
    #[error("'{name}' is ambiguous; it could be any of: {}", .candidates.join(", "))]
    AmbiguousCheckpoint { name: String, candidates: Vec<String> },
    #[error("'{name}' is not a valid checkpoint name: {reason}")]
    InvalidCheckpointName { name: String, reason: String },
    /// A notes ref points at something other than a commit of notes (a fetch could leave
    /// it so).
    #[error("{name} is not a notes ref (it points to {target})")]
    NotANotesRef {
        name: String,
        target: String,
        #[source]
        source: crate::git::BoxError,
    },
    #[error("{what} points at {commit}, which is not a cairn step")]
    NotAStep { what: String, commit: String },
    #[error(
        "'{name}' is not one of the steps of session {session} (nor of its archived history): \
         rewinding to it would move the session outside its own history; \
         run `cairn resume {name} --fork` to start a new session from it"
    )]
    NotInHistory { name: String, session: String },
    #[error(
        "'{name}' names a session that `cairn fetch` quarantined as unsafe ({quarantine}); \
         cairn will not restore it. Inspect it with git only: \
         `git log --stat {quarantine}`, `git ls-tree -r {quarantine}`"
    )]
    Quarantined { name: String, quarantine: String },
    #[error("session {0} does not exist")]
    UnknownSession(String),
    #[error("there is no current session in this worktree")]
    NoCurrentSession,
    #[error("session {session} was written by a newer cairn (schema {schema}); upgrade cairn")]
    NewerSchema { session: String, schema: i64 },
    #[error("the corrupt state of step {commit}: {reason}")]
    CorruptState { commit: String, reason: String },
    #[error("session {session} was moved by another process (expected {expected}, found {found})")]
    ConcurrentUpdate { session: String, expected: String, found: String },
    #[error("session {session} is busy: process {pid} is recording a step")]
    SessionBusy { session: String, pid: u32 },
    #[error("unsafe path {0}")]
    UnsafePath(#[from] crate::git::path::UnsafePath),
    #[error("refusing session {session}: step {step} holds an unsafe path {:?} ({})", .path.path, .path.rule)]
    UnsafeStep { session: String, step: u64, path: crate::git::path::UnsafePath },
    #[error("invalid path '{path}': {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("git: {context}: {message}")]
    Gix { context: String, message: String },
    #[error(transparent)]
    Git(crate::git::Error),
}

/// A session ref moved under us is named as the session; any other git failure is kept
/// whole.
impl From<crate::git::Error> for Error {
    fn from(err: crate::git::Error) -> Self {
        match err {
            crate::git::Error::ConcurrentUpdate { name, expected, found }
                if name.starts_with(crate::git::refs::SESSIONS_PREFIX) =>
            {
                let session = name.trim_start_matches(crate::git::refs::SESSIONS_PREFIX);
                Error::ConcurrentUpdate { session: session.to_string(), expected, found }
            }
            other => Error::Git(other),
        }
    }
}

impl Error {
    /// Whether the user can act on this error (as opposed to an internal failure).
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Io { .. } | Error::Gix { .. } => false,
            Error::Git(err) => err.is_user_error(),
            _ => true,
        }
    }

    /// An unsafe path found while reading step `step` of `session`, named as such.
    pub fn in_step(self, session: &str, step: u64) -> Self {
        match self {
            Error::UnsafePath(path) => {
                Error::UnsafeStep { session: session.to_string(), step, path }
            }
            other => other,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}

/// Attaches a description of what was being done to a gix or I/O error.
pub(crate) trait Context<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|err| Error::Gix { context: context(), message: err.to_string() })
    }
}

/// Like [`Context`], for I/O errors, keeping the source error.
pub(crate) trait IoContext<T> {
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io { context: context(), source })
    }
}
