//! Errors as the command line reports them.
//!
//! Like jj's `command_error.rs`, this separates a user's mistake (a message and a hint
//! saying what to do) from a usage error and an internal failure (the message, the chain
//! of causes underneath, and how to report it as a bug).

use std::error::Error as StdError;
use std::fmt;

/// Any underlying error, kept whole so its chain of causes can be printed.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The exit status of an internal failure, distinct from the other statuses a command
/// ends with:
///
/// | status | meaning |
/// |---|---|
/// | 0 | success |
/// | 1 | a user's mistake (or a headless turn that failed, or a failed fetch) |
/// | 2 | a usage error |
/// | 3 | `cairn run` stopped at `--max-steps` |
/// | 4 | an internal failure: something failed underneath that the user did not cause |
/// | 5 | a `cairn run` or `cairn resume` turn ended unfinished (a refusal, a limit) |
/// | 101 | a panic (a bug in cairn) |
/// | 130 | interrupted |
/// | 141 | the output pipe was closed |
pub const INTERNAL_EXIT: u8 = 4;

/// What went wrong, in the terms the command line reports it.
#[derive(Debug)]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
    /// The failure underneath, printed as `caused by:` lines.
    source: Option<BoxError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Something the user can fix: a bad name, a missing repository, a conflict.
    User,
    /// The command line itself was wrong.
    Usage,
    /// Something failed that the user did not cause (I/O, a corrupt object).
    Internal,
}

impl CommandError {
    fn new(kind: ErrorKind, message: String, source: Option<BoxError>) -> Self {
        Self { kind, message, hint: None, source }
    }

    pub fn user(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::User, message.into(), None)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message.into(), None)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message.into(), None)
    }

    /// A user's mistake reported by a library error: its message, and its causes.
    pub fn user_error(err: impl Into<BoxError>) -> Self {
        let err = err.into();
        Self::new(ErrorKind::User, err.to_string(), Some(err))
    }

    /// An internal failure reported by a library error: its message, and its causes.
    pub fn internal_error(err: impl Into<BoxError>) -> Self {
        let err = err.into();
        Self::new(ErrorKind::Internal, err.to_string(), Some(err))
    }

    /// Keeps `source` as the cause of this error.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ErrorKind::User => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Internal => INTERNAL_EXIT,
        }
    }

    /// The causes to print, outermost first. A cause whose text is already part of what
    /// was printed (`{context}: {source}` messages, a wrapper that only adds context) is
    /// not repeated.
    fn causes(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut shown = self.message.clone();
        let mut next: Option<&(dyn StdError + 'static)> = match &self.source {
            Some(source) => Some(source.as_ref()),
            None => None,
        };
        while let Some(cause) = next {
            let text = cause.to_string();
            if !text.is_empty() && !shown.contains(&text) {
                out.push(text.clone());
                shown = text;
            }
            next = cause.source();
        }
        out
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        for cause in self.causes() {
            write!(f, "\ncaused by: {cause}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        if self.kind == ErrorKind::Internal {
            write!(f, "\n{}", super::panic::report_request())?;
        }
        Ok(())
    }
}

impl From<std::io::Error> for CommandError {
    fn from(err: std::io::Error) -> Self {
        CommandError::internal_error(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("writing the pack: {source}")]
    struct Inline {
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("recording step 3")]
    struct Outer {
        #[source]
        source: Inline,
    }

    #[test]
    fn an_internal_failure_lists_its_causes_once_then_how_to_report_it() {
        let io = std::io::Error::other("disk full");
        let err = CommandError::internal_error(Outer { source: Inline { source: io } });
        let text = err.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "error: recording step 3");
        assert_eq!(lines[1], "caused by: writing the pack: disk full");
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[2].contains("bug in cairn"), "{text}");
        assert_eq!(err.exit_code(), INTERNAL_EXIT);
    }

    #[test]
    fn a_users_mistake_has_its_hint_and_no_bug_report() {
        let err = CommandError::user("no checkpoint named 'x'").with_hint("`cairn sessions`");
        assert_eq!(err.to_string(), "error: no checkpoint named 'x'\nhint: `cairn sessions`");
        assert_eq!(err.exit_code(), 1);
        assert_eq!(CommandError::usage("bad").exit_code(), 2);
    }
}
