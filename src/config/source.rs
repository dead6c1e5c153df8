//! Where each configuration value came from: [`Source`], and [`Sourced`] pairing a
//! value with it, so `cairn config show` can say which file or flag set what.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// cairn's own default.
    Default,
    /// A built-in provider's definition.
    BuiltIn,
    /// The user's configuration file.
    UserFile(PathBuf),
    /// The file named by `CAIRN_CONFIG`, which replaces the user file.
    CairnConfig(PathBuf),
    /// The project's `cairn.toml`.
    ProjectFile(PathBuf),
    /// A command-line flag, e.g. `--model`.
    Flag(&'static str),
    /// Chosen because of the environment, e.g. `$ANTHROPIC_API_KEY is set`.
    Detected(String),
}

impl Source {
    /// A short machine-readable name: `default`, `built-in`, `user-file`, `cairn-config`,
    /// `project-file`, `flag` or `env`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::BuiltIn => "built-in",
            Source::UserFile(_) => "user-file",
            Source::CairnConfig(_) => "cairn-config",
            Source::ProjectFile(_) => "project-file",
            Source::Flag(_) => "flag",
            Source::Detected(_) => "env",
        }
    }

    pub(super) fn of<T>(&self, value: T) -> Sourced<T> {
        Sourced::new(value, self.clone())
    }

    pub(super) fn path(&self) -> Option<&Path> {
        match self {
            Source::UserFile(path) | Source::CairnConfig(path) | Source::ProjectFile(path) => {
                Some(path)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::BuiltIn => f.write_str("built-in"),
            Source::UserFile(path) => write!(f, "user config {}", path.display()),
            Source::CairnConfig(path) => write!(f, "$CAIRN_CONFIG {}", path.display()),
            Source::ProjectFile(path) => write!(f, "project config {}", path.display()),
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Detected(why) => write!(f, "detected: {why}"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Sourced<T> {
    pub fn new(value: T, source: Source) -> Self {
        Self { value, source }
    }
}
