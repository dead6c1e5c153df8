//! Which repositories the user trusts: `trusted.toml` next to the user config file,
//! written only by `cairn trust`. A trusted repository's `cairn.toml` applies in full;
//! any other's applies only its harmless keys (see [`super::Config`]).
//!
//! Trust is recorded by the repository's canonical path and its `remote.origin.url` at
//! the time, and holds only while both match: a clone re-pointed at another origin is a
//! different project, as in Codex's trusted projects and Claude Code's folder trust. The
//! file lives in the user's configuration directory and is never read from a project, so
//! a repository cannot trust itself.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::file::line_column;
use super::{ConfigError, Env, user_file};

/// The trust file's name, in the directory of the user config file.
pub const FILE_NAME: &str = "trusted.toml";

/// A repository as configuration sees it: its top directory and where its origin points.
/// The caller finds both (this module knows nothing of git).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub root: PathBuf,
    /// `remote.origin.url`, if the repository has one.
    pub origin_url: Option<String>,
}

/// Whether a project's `cairn.toml` applies in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    Trusted,
    Untrusted,
    /// Trusted once, but its origin URL has changed since, so the trust is void.
    OriginChanged {
        trusted: Option<String>,
        now: Option<String>,
    },
}

impl Trust {
    pub fn is_trusted(&self) -> bool {
        matches!(self, Trust::Trusted)
    }

    /// `trusted`, `untrusted` or `origin-changed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Trust::Trusted => "trusted",
            Trust::Untrusted => "untrusted",
            Trust::OriginChanged { .. } => "origin-changed",
        }
    }
}

/// One trusted repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The canonical path of the repository's top directory.
    pub path: PathBuf,
    /// Its `remote.origin.url` when it was trusted; absent when it had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// RFC 3339 time of `cairn trust`.
    pub trusted_at: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default)]
    trusted: Vec<Entry>,
}

/// The trust file, read strictly like every configuration file.
#[derive(Debug, Clone)]
pub struct TrustFile {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

/// `text` with control characters escaped, for URLs and paths read from a repository's
/// own files before they reach a terminal.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

/// The trust file's path: next to the user file (or to the file `CAIRN_CONFIG` names).
pub fn location(env: &Env) -> Option<PathBuf> {
    let source = user_file(env)?;
    let user = source.path()?;
    Some(user.parent().unwrap_or(Path::new(".")).join(FILE_NAME))
}

/// The path trust is recorded under: `root` with symlinks resolved, so two spellings of
/// one directory are one project. A path that cannot be resolved is kept as given.
pub fn canonical(root: &Path) -> PathBuf {
    std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf())
}

impl TrustFile {
    /// Reads the trust file at `path`; a missing file trusts nothing.
    pub fn load(path: &Path) -> Result<TrustFile, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(ConfigError::Read { path: path.to_owned(), source }),
        };
        let shape: FileShape = toml::from_str(&text).map_err(|err| {
            let (line, column) = line_column(&text, err.span().map_or(0, |span| span.start));
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message: err.message().to_owned(),
            }
        })?;
        Ok(TrustFile { path: path.to_owned(), entries: shape.trusted })
    }

    /// The trust file of the user `env` describes; `None` without a home.
    pub fn for_user(env: &Env) -> Result<Option<TrustFile>, ConfigError> {
        location(env).map(|path| TrustFile::load(&path)).transpose()
    }

    /// Whether `project` is trusted.
    pub fn verdict(&self, project: &Project) -> Trust {
        let path = canonical(&project.root);
        match self.entries.iter().find(|entry| entry.path == path) {
            None => Trust::Untrusted,
            Some(entry) if entry.origin == project.origin_url => Trust::Trusted,
            Some(entry) => Trust::OriginChanged {
                trusted: entry.origin.clone(),
                now: project.origin_url.clone(),
            },
        }
    }

    /// Trusts `project` as it is now, replacing what was recorded for its path.
    pub fn trust(&mut self, project: &Project) {
        let path = canonical(&project.root);
        self.entries.retain(|entry| entry.path != path);
        self.entries.push(Entry {
            path,
            origin: project.origin_url.clone(),
            trusted_at: jiff::Timestamp::now().to_string(),
        });
        self.entries.sort_by(|a, b| a.path.cmp(&b.path));
    }

    /// Forgets the trust of the repository at `root`; whether there was any.
    pub fn revoke(&mut self, root: &Path) -> bool {
        let path = canonical(root);
        let before = self.entries.len();
        self.entries.retain(|entry| entry.path != path);
        self.entries.len() != before
    }

    /// Writes the file whole, through a temporary file renamed over it, so a crash leaves
    /// the old list or the new one and never half of one.
    pub fn save(&self) -> Result<(), ConfigError> {
        let io = |source: std::io::Error| ConfigError::Read { path: self.path.clone(), source };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let shape = FileShape { trusted: self.entries.clone() };
        let body = toml::to_string(&shape).map_err(|err| io(std::io::Error::other(err)))?;
        let text = format!(
            "# Repositories whose cairn.toml cairn applies in full, by path and origin URL.\n\
             # Written by `cairn trust`; `cairn trust --revoke` removes an entry.\n\n{body}"
        );
        let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        std::io::Write::write_all(&mut temp, text.as_bytes()).map_err(io)?;
        temp.as_file().sync_all().map_err(io)?;
        temp.persist(&self.path).map_err(|err| io(err.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_holds_for_the_path_and_origin_it_was_given_and_is_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let file_path = dir.path().join(FILE_NAME);
        let mut file = TrustFile::load(&file_path).unwrap();
        let project = Project { root: repo.clone(), origin_url: Some("git@h:a/b.git".into()) };
        assert_eq!(file.verdict(&project), Trust::Untrusted);
        file.trust(&project);
        file.save().unwrap();
        let file = TrustFile::load(&file_path).unwrap();
        assert_eq!(file.verdict(&project), Trust::Trusted);
        // Another spelling of the same directory is the same project.
        let dotted = Project { root: repo.join("."), ..project.clone() };
        assert_eq!(file.verdict(&dotted), Trust::Trusted);
        let moved = Project { origin_url: Some("https://evil/x.git".into()), ..project.clone() };
        assert_eq!(
            file.verdict(&moved),
            Trust::OriginChanged {
                trusted: Some("git@h:a/b.git".into()),
                now: Some("https://evil/x.git".into())
            }
        );
        let mut file = file;
        assert!(file.revoke(&repo));
        assert!(!file.revoke(&repo));
        assert_eq!(file.verdict(&project), Trust::Untrusted);
    }

    #[test]
    fn a_malformed_trust_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "[[trusted]]\npath = \"/x\"\nall = true\n").unwrap();
        let err = TrustFile::load(&path).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:3:1:", path.display())), "{err}");
    }
}
