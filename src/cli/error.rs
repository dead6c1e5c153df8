//! Errors as the command line reports them.
//!
//! Like jj's `command_error.rs`, this separates a user's mistake (exit 1, a message and a
//! hint saying what to do) from a usage error (exit 2) and an internal failure (exit 1,
//! reported as a bug in cairn or the environment).

use std::fmt;

/// What went wrong, in the terms the command line reports it.
#[derive(Debug)]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
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
    pub fn user(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::User, message: message.into(), hint: None }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Usage, message: message.into(), hint: None }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Internal, message: message.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ErrorKind::Usage => 2,
            ErrorKind::User | ErrorKind::Internal => 1,
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl From<std::io::Error> for CommandError {
    fn from(err: std::io::Error) -> Self {
        CommandError::internal(err.to_string())
    }
}
