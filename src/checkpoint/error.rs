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
    /// `refs/notes/...` moved under `cairn land --notes` between its read and its update.
    #[error("git: updating {notes_ref}: another process moved it at the same time; try again")]
    NotesMoved {
        notes_ref: String,
        #[source]
        source: crate::git::Error,
    },
    #[error("{}", git_message(.0))]
    Git(#[source] crate::git::Error),
}

/// A git-layer failure as the user reads it: what cairn was doing and, for a failure
/// underneath (gix's or the system's), its own words.
fn git_message(err: &crate::git::Error) -> String {
    match err {
        crate::git::Error::Gix { context, source } => format!("git: {context}: {source}"),
        crate::git::Error::Io { context, source } => format!("{context}: {source}"),
        other => other.to_string(),
    }
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
            Error::Io { .. } => false,
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

    pub(super) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::{Context as _, IoContext as _};

    #[test]
    fn failures_underneath_read_as_before_and_keep_their_cause() {
        let gix: Error =
            "x".parse::<gix::ObjectId>().context(|| "reading x".into()).unwrap_err().into();
        let cause = "x".parse::<gix::ObjectId>().unwrap_err().to_string();
        assert_eq!(gix.to_string(), format!("git: reading x: {cause}"));
        let source = std::error::Error::source(&gix).expect("the git error");
        assert!(std::error::Error::source(source).is_some(), "gix's error is kept");
        assert!(!gix.is_user_error());

        let missing = std::fs::read("/nonexistent/cairn").io_context(|| "reading it".into());
        let io: Error = missing.unwrap_err().into();
        assert!(io.to_string().starts_with("reading it: "), "{io}");
        assert!(std::error::Error::source(&io).is_some());
    }
}
