//! Which cairn session an agent's session continues.
//!
//! The truth is in the sessions themselves: a session started by `cairn hook` names the
//! agent and its session id in `.cairn/session.toml` (`agent`, `agent_session`), so the
//! mapping survives clones, fetches and a deleted cache. A lookup reads the cache
//! `<git common dir>/cairn/hooks/<agent>/<agent session>` first (one file, the cairn session
//! id) and checks it against the session it names; when the cache is missing or stale it
//! searches the sessions' `session.toml`s and writes the cache again.
//!
//! Beside the entry, `<agent session>.pending-compact` keeps a Gemini `PreCompress` until
//! the next hook call says whether a compression followed (see `compression`).
//!
//! Hooks of one agent session are serialized by a lock file beside the cache entry, so two
//! hooks that fire together (parallel tool calls) neither start two sessions nor race on
//! the session ref.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::checkpoint::{self, Session, Store};
use crate::git::temp::PidLock;

use super::AgentKind;
use super::compression::Pending;

/// How long a hook waits for another hook of the same agent session.
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// A lock whose owner cannot be read, older than this, was left by a crashed process.
const STALE_LOCK: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(20);

/// One agent session's entry in the cache.
pub(super) struct Entry {
    dir: PathBuf,
    key: String,
}

/// When a hook of `agent` last recorded a step in this repository: the newest cache
/// entry, each rewritten by every hook call that records.
pub fn last_recorded(store: &Store, agent: AgentKind) -> Option<std::time::SystemTime> {
    let dir = store.private_dir().join("hooks").join(agent.name());
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|entry| !entry.file_name().to_string_lossy().contains('.'))
        .filter_map(|entry| entry.metadata().ok()?.modified().ok())
        .max()
}

impl Entry {
    pub(super) fn new(store: &Store, agent: AgentKind, agent_session: &str) -> Entry {
        Entry { dir: store.private_dir().join("hooks").join(agent.name()), key: key(agent_session) }
    }

    /// The session this agent session continues, if it has one.
    pub(super) fn lookup(
        &self,
        store: &Store,
        agent: AgentKind,
        agent_session: &str,
    ) -> checkpoint::Result<Option<Session>> {
        let belongs = |session: &Session| {
            session.info.agent.as_deref() == Some(agent.name())
                && session.info.agent_session.as_deref() == Some(agent_session)
        };
        if let Ok(cached) = std::fs::read_to_string(self.dir.join(&self.key)) {
            match store.open_session(cached.trim()) {
                Ok(session) if belongs(&session) => return Ok(Some(session)),
                // Deleted, or not that session: fall back to searching.
                Ok(_) | Err(checkpoint::Error::UnknownSession(_)) => {}
                Err(checkpoint::Error::InvalidCheckpointName { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        let Some(id) = store.find_agent_session(agent.name(), agent_session)? else {
            return Ok(None);
        };
        let session = store.open_session(&id)?;
        self.remember(&id);
        Ok(Some(session))
    }

    /// Writes the cache entry. Only a cache: failing to write it costs a search next time.
    pub(super) fn remember(&self, session: &str) {
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
            std::io::Write::write_all(&mut file, format!("{session}\n").as_bytes())?;
            file.persist(self.dir.join(&self.key)).map_err(|err| err.error)?;
            Ok(())
        };
        let _ = write();
    }

    /// Keeps a Gemini `PreCompress` until the next hook call of this agent session.
    pub(super) fn save_pending(&self, pending: &Pending) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(pending).map_err(std::io::Error::other)?;
        std::fs::create_dir_all(&self.dir)?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::io::Write::write_all(&mut file, &bytes)?;
        file.persist(self.pending_path()).map_err(|err| err.error)?;
        Ok(())
    }

    /// The `PreCompress` kept by [`Entry::save_pending`], removed; one that cannot be read
    /// is dropped.
    pub(super) fn take_pending(&self) -> Option<Pending> {
        let path = self.pending_path();
        let bytes = std::fs::read(&path).ok()?;
        let _ = std::fs::remove_file(&path);
        serde_json::from_slice(&bytes).ok()
    }

    fn pending_path(&self) -> PathBuf {
        self.dir.join(format!("{}.pending-compact", self.key))
    }

    /// Waits for, then holds, the lock on this agent session's hooks.
    pub(super) fn lock(&self) -> Result<PidLock, LockError> {
        std::fs::create_dir_all(&self.dir).map_err(|err| LockError::Io(self.dir.clone(), err))?;
        let path = self.dir.join(format!("{}.lock", self.key));
        let started = Instant::now();
        loop {
            match PidLock::try_acquire(&path, STALE_LOCK) {
                Ok(Some(lock)) => return Ok(lock),
                Ok(None) if started.elapsed() > LOCK_WAIT => return Err(LockError::Busy(path)),
                Ok(None) => std::thread::sleep(POLL),
                Err(err) => return Err(LockError::Io(path, err)),
            }
        }
    }
}

#[derive(Debug)]
pub enum LockError {
    Busy(PathBuf),
    Io(PathBuf, std::io::Error),
}

/// The cache file name for an agent session id: the id itself when it is a plain name
/// (agents use UUIDs), else a hash of it. A plain name has no `.`, so no id can name
/// another's `.lock` or `.pending-compact`.
fn key(agent_session: &str) -> String {
    let plain = !agent_session.is_empty()
        && agent_session.len() <= 128
        && agent_session.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    if plain {
        return agent_session.to_string();
    }
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    hasher.update(agent_session.as_bytes());
    match hasher.try_finalize() {
        Ok(id) => format!("sha1-{}", id.to_hex()),
        // Hashing in memory does not fail in practice; keep a usable, lossy name if it does.
        Err(_) => agent_session
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(128)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::key;

    #[test]
    fn keys_are_plain_file_names() {
        assert_eq!(
            key("8c35adc1-0b7e-4c1a-9d3b-2f0e6a1b7c90"),
            "8c35adc1-0b7e-4c1a-9d3b-2f0e6a1b7c90"
        );
        for odd in
            ["../etc/passwd", ".hidden", "a/b", "", "spaces here", "a.lock", "a.pending-compact"]
        {
            let k = key(odd);
            assert!(k.starts_with("sha1-") && k.len() == 45, "{odd:?} → {k}");
        }
        assert_ne!(key("a/b"), key("a_b"));
    }
}
