//! Sessions: starting, opening and forking them, the worktree's current session, and
//! finding sessions by id, prefix or the agent that recorded them.

use gix::ObjectId;

use super::error::{Error, Result};
use super::{
    Changes, Checkpoint, SessionInfo, StepKind, StepRecord, Store, WorkspacePart, address, step,
};
use crate::git::IoContext;
use crate::git::{refs, temp};

/// A session as the caller holds it: its identity and the tip it last saw.
#[derive(Debug, Clone)]
pub struct Session {
    pub info: SessionInfo,
    /// The newest step's commit; `None` until the first step is recorded.
    pub tip: Option<ObjectId>,
    /// The number of the newest step (0 before the first).
    pub steps: u64,
    pub(super) messages: usize,
}

impl Session {
    /// How many messages the session's conversation has recorded.
    pub fn message_count(&self) -> usize {
        self.messages
    }
}

/// A session as `cairn sessions` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionSummary {
    pub id: String,
    pub title: String,
    pub steps: u64,
    pub base: Option<String>,
    pub tip: String,
    pub created: String,
    /// Time of the newest step, seconds since the epoch.
    pub updated: i64,
    /// The agent that recorded the session, when it was not cairn itself.
    pub agent: Option<String>,
}

impl Store {
    /// Begins a new session on top of the current `HEAD`. Nothing is written until its
    /// first step is recorded.
    pub fn start_session(
        &self,
        title: &str,
        model: Option<String>,
        agent: Option<String>,
    ) -> Result<Session> {
        let now = jiff::Timestamp::now();
        let mut id = step::new_session_id(now);
        while refs::read_ref(&self.repo, &refs::session_ref(&id))?.is_some() {
            id = step::new_session_id(now);
        }
        let base = self.repo.head_id().ok().map(|id| id.to_string());
        // Redacted before it is cut to a title, or a cut key would no longer match.
        let title = match self.options.redact_secrets {
            true => crate::secrets::redact(title).0,
            false => title.to_string(),
        };
        let info = SessionInfo {
            schema: crate::transcript::SCHEMA_VERSION,
            id,
            title: crate::title::session_title(&title),
            created: now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            base,
            model,
            agent,
            agent_session: None,
            cairn_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        Ok(Session { info, tip: None, steps: 0, messages: 0 })
    }

    /// Opens an existing session at its tip.
    pub fn open_session(&self, id: &str) -> Result<Session> {
        let tip = refs::read_ref(&self.repo, &refs::session_ref(id))?
            .ok_or_else(|| Error::UnknownSession(id.into()))?;
        self.session_at(id, tip)
    }

    /// A session handle positioned at `commit` (one of its steps).
    pub(super) fn session_at(&self, id: &str, commit: ObjectId) -> Result<Session> {
        let trailers = self.trailers(commit, &format!("session {id}"))?;
        let cairn = self.cairn_tree(commit)?;
        let info = self.read_session_info(commit, cairn)?;
        let messages = self.messages_in(cairn)?;
        Ok(Session { info, tip: Some(commit), steps: trailers.step, messages })
    }

    /// How many messages the conversation holds at step `commit`.
    pub fn message_count(&self, commit: ObjectId) -> Result<usize> {
        self.messages_in(self.cairn_tree(commit)?)
    }

    pub(super) fn messages_in(&self, cairn: Option<ObjectId>) -> Result<usize> {
        match cairn {
            Some(tree) => self.subtree_len(tree, step::MESSAGES_DIR),
            None => Ok(0),
        }
    }

    /// Starts a new session whose first step is a copy of `from` (workspace and
    /// conversation) with `from` as its parent, leaving the original session untouched.
    pub fn fork_session(&self, from: &Checkpoint) -> Result<Session> {
        let original = self.session_at(&from.session, from.commit)?;
        let title = format!("fork of {}@{}: {}", from.session, from.step, original.info.title);
        let mut session =
            self.start_session(&title, original.info.model.clone(), original.info.agent.clone())?;
        session.info.base = Some(from.commit.to_string());
        // The first step carries the conversation so far, reusing its blobs.
        session.messages = original.messages;
        let cairn = self.cairn_tree(from.commit)?;
        let mut record = StepRecord::new(StepKind::Manual, title.clone(), Changes::Unchanged);
        record.details.insert("forked_from".into(), serde_json::json!({"session": from.session, "step": from.step, "commit": from.commit.to_string()}));
        let workspace = WorkspacePart {
            tree: self.commit_tree(from.commit)?,
            skipped: Vec::new(),
            reserved_path_present: false,
            stat_cache: None,
        };
        self.commit_step_over(&mut session, record, workspace, cairn)?;
        Ok(session)
    }

    /// The session this worktree last ran or resumed.
    pub fn current_session(&self) -> Result<Option<String>> {
        match std::fs::read_to_string(self.worktree_dir.join("current-session")) {
            Ok(id) => Ok(Some(id.trim().to_string()).filter(|id| !id.is_empty())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(Error::io("reading the current session", err)),
        }
    }

    pub fn set_current_session(&self, id: &str) -> Result<()> {
        // The agent calls this after every step; rewriting the same id would cost a file
        // creation each time.
        if self.current_session().ok().flatten().as_deref() == Some(id) {
            return Ok(());
        }
        std::fs::create_dir_all(&self.worktree_dir)
            .io_context(|| format!("creating {}", self.worktree_dir.display()))?;
        let path = self.worktree_dir.join("current-session");
        let mut file = tempfile::Builder::new()
            .prefix(&temp::prefix())
            .tempfile_in(&self.worktree_dir)
            .io_context(|| "recording the current session".into())?;
        std::io::Write::write_all(&mut file, format!("{id}\n").as_bytes())
            .io_context(|| "recording the current session".into())?;
        file.persist(&path).map_err(|err| Error::io("recording the current session", err.error))?;
        Ok(())
    }

    /// All sessions, newest first.
    pub fn sessions(&self) -> Result<Vec<SessionSummary>> {
        let mut out = Vec::new();
        for (name, tip) in refs::list(&self.repo, refs::SESSIONS_PREFIX)? {
            let id = name.trim_start_matches(refs::SESSIONS_PREFIX).to_string();
            let summary = self.step_summary(tip)?;
            let info = self.read_session_info(tip, self.cairn_tree(tip)?)?;
            out.push(SessionSummary {
                id,
                title: info.title,
                steps: summary.step,
                base: info.base,
                tip: tip.to_string(),
                created: info.created,
                updated: summary.time,
                agent: info.agent,
            });
        }
        out.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(out)
    }

    /// Whether session `id` was started in this clone (its ref's oldest reflog entry is
    /// the step that created it) and no remote ever moved it: `cairn fetch` writes
    /// [`refs::FETCHED_FROM`] or [`refs::FAST_FORWARD_FROM`], plain `git fetch` writes no
    /// reflog for `refs/cairn/`. A session whose reflog was expired counts as not started
    /// here.
    pub fn created_here(&self, id: &str) -> Result<bool> {
        let messages = refs::reflog_messages(&self.repo, &refs::session_ref(id))?;
        let Some((first, later)) = messages.split_first() else { return Ok(false) };
        let fetched = |message: &String| {
            message.starts_with(refs::FETCHED_FROM) || message.starts_with(refs::FAST_FORWARD_FROM)
        };
        Ok(first.starts_with("cairn: step 1 (") && !later.iter().any(fetched))
    }

    /// The newest session that `agent` recorded for its own session `agent_session` (as
    /// `cairn hook` names them in `session.toml`), if any. Reads every session's
    /// `session.toml`; sessions whose state cannot be read are passed over.
    pub fn find_agent_session(&self, agent: &str, agent_session: &str) -> Result<Option<String>> {
        let mut found: Option<String> = None;
        for (name, tip) in refs::list(&self.repo, refs::SESSIONS_PREFIX)? {
            let Ok(cairn) = self.cairn_tree(tip) else { continue };
            let Ok(info) = self.read_session_info(tip, cairn) else { continue };
            if info.agent.as_deref() != Some(agent)
                || info.agent_session.as_deref() != Some(agent_session)
            {
                continue;
            }
            let id = name.trim_start_matches(refs::SESSIONS_PREFIX).to_string();
            if found.as_ref().is_none_or(|newest| &id > newest) {
                found = Some(id);
            }
        }
        Ok(found)
    }

    /// Resolves a checkpoint name: a session id or prefix, `<session>@<n>`, `@`,
    /// `@~k`, or a git revision naming a cairn step.
    pub fn resolve(&self, name: &str) -> Result<Checkpoint> {
        address::resolve(self, name)
    }
}
