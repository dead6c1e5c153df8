//! Memory in four tiers, all versioned files (README.md, "Memory").
//!
//! Tiers 1 and 2 (`notes.md`, `session.md`) live in each step's `.cairn/memory/` and are
//! handled by the agent. This module holds tiers 3 and 4: facts as files in git history
//! ([`store`]), ranked search over all tiers ([`search`]), and the operations the agent
//! and `cairn memory` share: remember, forget, the guidance injected at session start,
//! reverting one session's writes on rewind, and merging a remote's memory.

pub mod fact;
mod index_file;
pub mod search;
pub mod store;
mod trailers;

use std::collections::BTreeMap;
use std::path::PathBuf;

use gix::ObjectId;

pub use fact::{Fact, RemoteName, Source};
pub use store::{Change, Contents, MemoryStore, Origin, Tier};

/// The search cache, under `<git common dir>/cairn/`.
pub const SEARCH_CACHE: &str = "memory-search.idx";

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Git(#[from] crate::git::Error),
    #[error("there is no fact named '{slug}' in {location}")]
    NoSuchFact { slug: String, location: String },
    #[error("'{0}' is not a fact name (letters, digits, '-', '_' and '.' only)")]
    InvalidSlug(String),
    #[error("{0}")]
    InvalidFact(String),
    #[error(
        "facts/{slug}.md came from {remote}'s memory, so a session does not rewrite it as its \
         own; `cairn memory edit {slug}` makes it yours"
    )]
    RemoteFact { slug: String, remote: RemoteName },
    #[error("the user memory at {} cannot be used: {message}", .path.display())]
    UserRepository { path: PathBuf, message: String },
    #[error(
        "{reference} points at {id}, which is not a commit; `git reflog {reference}` shows \
         where it was (restore it with `git update-ref {reference} <commit>`)"
    )]
    BrokenRef { reference: String, id: String },
    #[error("no user memory location: set XDG_DATA_HOME or HOME")]
    NoUserLocation,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Git(err) => err.is_user_error(),
            Error::Io { .. } | Error::UserRepository { .. } => false,
            _ => true,
        }
    }
}

/// A rough token count (four bytes a token), for caps and compaction when the provider
/// reports none.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(4)
}

/// What a `remember` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Remembered {
    pub tier: Tier,
    pub slug: String,
    /// `added`, or `confirmed` when the same fact was already there.
    pub outcome: &'static str,
    /// Secret-looking strings replaced before storing.
    pub redacted: usize,
}

/// What a merge of a remote's memory did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MergeReport {
    /// Facts taken from the remote (written, or removed where the remote removed them).
    pub taken: Vec<String>,
    /// Facts changed on both sides: ours stays, theirs is kept beside it under this name.
    pub conflicts: Vec<(String, String)>,
    /// Facts the remote deleted that were changed here since: kept.
    pub deleted_there: Vec<String>,
    /// The remote's fact files that were not taken, and why (unreadable, too long, a bad
    /// name).
    pub rejected: Vec<(String, String)>,
    pub up_to_date: bool,
}

/// The memory injected at session start, one section per tier, as data for the prompt
/// to frame ([`crate::agent::prompt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guidance {
    pub sections: Vec<GuidanceSection>,
}

/// One tier's facts in the injected memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuidanceSection {
    pub title: &'static str,
    /// Where the memory lives, e.g. `refs/cairn/memory`.
    pub location: String,
    /// Newest last, as in `MEMORY.md`.
    pub facts: Vec<GuidanceFact>,
    /// Index entries left out for the token cap (or unreadable).
    pub omitted: usize,
}

/// One fact as injected: its first line, its file and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuidanceFact {
    /// `facts/<slug>.md`.
    pub file: String,
    pub source: Source,
    pub headline: String,
}

impl GuidanceFact {
    /// The fact's line as the prompt shows it (without the prompt's own escaping).
    pub fn line(&self) -> String {
        format!("- {} ({}, source: {})", self.headline, self.file, self.source)
    }
}

/// Project memory, and user memory when it exists (created on the first user write).
pub struct Memory {
    project: MemoryStore,
    user: Option<MemoryStore>,
    user_path: Option<PathBuf>,
    cache_dir: PathBuf,
    /// `[transcript] redact_secrets`, passed on to both tiers' stores.
    redact_secrets: bool,
}

impl Memory {
    /// The memory of `repo`, and the user's; `redact_secrets` is `[transcript]
    /// redact_secrets`.
    pub fn open(repo: gix::Repository, redact_secrets: bool) -> Result<Memory> {
        let user_path = store::user_memory_path();
        let user = match &user_path {
            Some(path) if path.join("HEAD").is_file() => {
                Some(MemoryStore::user_at(path)?.redacting(redact_secrets))
            }
            _ => None,
        };
        Ok(Memory {
            cache_dir: repo.common_dir().join("cairn"),
            project: MemoryStore::project(repo).redacting(redact_secrets),
            user,
            user_path,
            redact_secrets,
        })
    }

    /// `text` with secrets replaced (unless redaction is off), and how many were.
    fn redacted(&self, text: &str) -> (String, usize) {
        if self.redact_secrets { crate::secrets::redact(text) } else { (text.to_string(), 0) }
    }

    pub fn project(&self) -> &MemoryStore {
        &self.project
    }

    pub fn user(&self) -> Option<&MemoryStore> {
        self.user.as_ref()
    }

    /// The store of `tier` for reading (`None`: user memory was never written).
    pub fn tier(&self, tier: Tier) -> Option<&MemoryStore> {
        match tier {
            Tier::Project => Some(&self.project),
            Tier::User => self.user.as_ref(),
        }
    }

    /// The store of `tier` for writing, creating user memory on first use.
    pub fn tier_for_write(&mut self, tier: Tier) -> Result<&MemoryStore> {
        match tier {
            Tier::Project => Ok(&self.project),
            Tier::User => {
                if self.user.is_none() {
                    let path = self.user_path.clone().ok_or(Error::NoUserLocation)?;
                    self.user = Some(MemoryStore::user_at(&path)?.redacting(self.redact_secrets));
                }
                self.user.as_ref().ok_or(Error::NoUserLocation)
            }
        }
    }

    /// Stores `text` as a fact, or confirms the same fact when it is already there.
    pub fn remember(
        &mut self,
        tier: Tier,
        text: &str,
        source: Source,
        origin: &Origin,
    ) -> Result<Remembered> {
        // Before the slug is made from it: a file name is no place for a secret either.
        let (text, redacted) = self.redacted(text.trim());
        if text.is_empty() {
            return Err(Error::InvalidFact("a fact needs some text".into()));
        }
        if text.len() > store::FACT_MAX_BYTES {
            return Err(Error::InvalidFact(format!(
                "a fact is at most {} bytes (this one is {}); remember one short statement",
                store::FACT_MAX_BYTES,
                text.len()
            )));
        }
        let store = self.tier_for_write(tier)?;
        let contents = store.load()?;
        let now = jiff::Timestamp::now().to_string();
        let base = fact::slug_for(&text);
        let mut slug = base.clone();
        let mut n = 1;
        let existing = loop {
            match contents.fact(&slug) {
                Some(fact) if fact.text == text => break Some(fact.clone()),
                None if !contents
                    .invalid
                    .iter()
                    .any(|i| i.path == format!("{}/{slug}.md", store::FACTS_DIR)) =>
                {
                    break None;
                }
                _ => {
                    n += 1;
                    slug = format!("{base}-{n}");
                }
            }
        };
        let (fact, outcome) = match existing {
            Some(mut fact) => {
                fact.meta.last_confirmed = now;
                (fact, "confirmed")
            }
            None => {
                let meta = fact::Meta {
                    created: now.clone(),
                    source,
                    session: origin.session.clone(),
                    step: origin.step,
                    last_confirmed: now,
                };
                (Fact { slug: slug.clone(), meta, text: text.clone() }, "added")
            }
        };
        let subject = format!(
            "{}: {}",
            if outcome == "added" { "remember" } else { "confirm" },
            fact.headline()
        );
        store.write(&[Change::Put(fact)], &subject, origin)?;
        Ok(Remembered { tier, slug, outcome, redacted })
    }

    /// Rewrites project fact `slug` with `text`, keeping when it was created.
    pub fn update(
        &mut self,
        slug: &str,
        text: &str,
        source: Source,
        origin: &Origin,
    ) -> Result<()> {
        let (text, _) = self.redacted(text.trim());
        if text.is_empty() || text.len() > store::FACT_MAX_BYTES {
            return Err(Error::InvalidFact(format!(
                "a fact is 1 to {} bytes",
                store::FACT_MAX_BYTES
            )));
        }
        let contents = self.project.load()?;
        let Some(fact) = contents.fact(slug) else {
            return Err(Error::NoSuchFact {
                slug: slug.into(),
                location: self.project.location().into(),
            });
        };
        if let Some(remote) = fact.meta.source.remote() {
            return Err(Error::RemoteFact { slug: slug.into(), remote: remote.clone() });
        }
        let mut fact = fact.clone();
        fact.text = text;
        fact.meta.source = source;
        fact.meta.session = origin.session.clone();
        fact.meta.step = origin.step;
        fact.meta.last_confirmed = jiff::Timestamp::now().to_string();
        let subject = format!("update: {}", fact.headline());
        self.project.write(&[Change::Put(fact)], &subject, origin)?;
        Ok(())
    }

    /// Removes a fact.
    pub fn forget(&mut self, tier: Tier, slug: &str, origin: &Origin) -> Result<()> {
        if !fact::is_valid_slug(slug) {
            return Err(Error::InvalidSlug(slug.to_string()));
        }
        let Some(store) = self.tier(tier) else {
            return Err(Error::NoSuchFact {
                slug: slug.into(),
                location: "user memory (empty)".into(),
            });
        };
        if store.fact_id(store.tree()?, slug)?.is_none() {
            return Err(Error::NoSuchFact { slug: slug.into(), location: store.location().into() });
        }
        store.write(&[Change::Remove(slug.to_string())], &format!("forget: {slug}"), origin)?;
        Ok(())
    }

    /// The memory injected at session start: the facts of the user and project indexes,
    /// each with its file and source, within `max_tokens` (whole lines; the newest kept).
    /// Lines are made from the fact files themselves, never copied from `MEMORY.md`, so
    /// an index written elsewhere cannot put text in the prompt that no fact holds.
    pub fn guidance(&self, max_tokens: usize) -> Result<Option<Guidance>> {
        let mut stores = Vec::new();
        for store in [self.user.as_ref(), Some(&self.project)].into_iter().flatten() {
            let Some(tree) = store.tree()? else { continue };
            let slugs = store.index_slugs(tree)?;
            if !slugs.is_empty() {
                stores.push((store, tree, slugs));
            }
        }
        if stores.is_empty() {
            return Ok(None);
        }
        let budget = max_tokens * 4;
        let mut left = budget;
        let mut sections = Vec::new();
        // Fair shares: each section may use what the ones before it left over.
        let count = stores.len();
        for (i, (store, tree, slugs)) in stores.into_iter().enumerate() {
            let share = left / (count - i);
            let note_room = 64;
            let title = match store.tier() {
                Tier::User => "User memory (preferences across projects)",
                Tier::Project => "Project memory",
            };
            let mut used = title.len() + store.location().len() + note_room;
            let mut facts = Vec::new();
            for slug in slugs.iter().rev() {
                let file = format!("{}/{slug}.md", store::FACTS_DIR);
                let Some(bytes) = store.file_at(tree, &file)? else { continue };
                let Ok(fact) = std::str::from_utf8(&bytes)
                    .map_err(|err| err.to_string())
                    .and_then(|text| Fact::parse(slug, text))
                else {
                    continue;
                };
                let fact = GuidanceFact {
                    file,
                    source: fact.meta.source.clone(),
                    headline: fact.headline(),
                };
                let cost = fact.line().len() + 1;
                if used + cost > share {
                    break;
                }
                used += cost;
                facts.push(fact);
            }
            facts.reverse();
            left = left.saturating_sub(used);
            let omitted = slugs.len() - facts.len();
            sections.push(GuidanceSection {
                title,
                location: format!("{}:{}", store.location(), store::INDEX_FILE),
                facts,
                omitted,
            });
        }
        Ok(Some(Guidance { sections }))
    }

    /// Ranked search over tiers 2–4 and the instruction files.
    pub fn search(
        &self,
        query: &str,
        limit: usize,
        session_summary: Option<&str>,
        instructions: &[(PathBuf, String)],
    ) -> Result<Vec<search::Hit>> {
        let corpus = search::Corpus {
            project: Some(&self.project),
            user: self.user.as_ref(),
            session_summary,
            instructions,
        };
        search::search(&corpus, query, limit, Some(&self.cache_dir.join(SEARCH_CACHE)))
    }

    /// Reverts, with one new commit, the project facts that `session` wrote after step
    /// `step`. A fact another session changed since is left alone. Returns the slugs
    /// reverted.
    pub fn revert_session(&self, session: &str, step: u64) -> Result<Vec<String>> {
        let store = &self.project;
        let Some(tip) = store.tree()? else { return Ok(Vec::new()) };
        let mut log = store.log(None)?;
        log.reverse();
        let mut before: BTreeMap<String, Option<ObjectId>> = BTreeMap::new();
        let mut last_written: BTreeMap<String, Option<ObjectId>> = BTreeMap::new();
        // Only this session's commits are diffed: a rewind need not read everyone's.
        for entry in log.iter().filter(|e| e.session.as_deref() == Some(session)) {
            for slug in store.changed_facts(entry.parent_tree, entry.tree)? {
                let written = store.fact_id(Some(entry.tree), &slug)?;
                if entry.step.is_some_and(|s| s > step) && !before.contains_key(&slug) {
                    before.insert(slug.clone(), store.fact_id(entry.parent_tree, &slug)?);
                }
                last_written.insert(slug, written);
            }
        }
        let mut changes = Vec::new();
        let mut reverted = Vec::new();
        for (slug, old) in before {
            let current = store.fact_id(Some(tip), &slug)?;
            if current != last_written.get(&slug).copied().flatten() || current == old {
                continue;
            }
            let content = old.map(|id| store.blob(id)).transpose()?;
            changes.push(Change::Raw { slug: slug.clone(), content });
            reverted.push(slug);
        }
        if !changes.is_empty() {
            let origin = Origin { session: Some(session.to_string()), step: Some(step) };
            store.write(
                &changes,
                &format!("revert: facts written after step {step} of {session}"),
                &origin,
            )?;
        }
        Ok(reverted)
    }

    /// Merges `theirs` (a memory commit, such as a fetched remote's) into project memory:
    /// files changed on one side are taken from it; a fact changed on both sides keeps
    /// ours and gets theirs beside it as `<slug>.from-<remote>`. Every fact taken is
    /// rewritten with `source = "remote:<remote>"` (one that already names a remote keeps
    /// it), and the index is rebuilt from what was taken rather than copied, so nothing
    /// from the remote passes as the user's own memory. Always a merge commit, never a
    /// fast-forward: that rewriting needs a commit of its own.
    pub fn merge(&self, theirs: ObjectId, remote: &str) -> Result<MergeReport> {
        let remote = RemoteName::new(remote).map_err(Error::InvalidFact)?;
        let store = &self.project;
        let repo = store.repo();
        let ours = store.tip()?;
        if ours == Some(theirs) {
            return Ok(MergeReport { up_to_date: true, ..MergeReport::default() });
        }
        // Histories without a common commit merge as if from empty memory.
        let base = match ours.map(|ours| repo.merge_base(ours, theirs)) {
            Some(Ok(Some(id))) => Some(id.detach()),
            _ => None,
        };
        if base == Some(theirs) {
            return Ok(MergeReport { up_to_date: true, ..MergeReport::default() });
        }
        let entries = |commit: Option<ObjectId>| -> Result<BTreeMap<String, ObjectId>> {
            Ok(match commit {
                Some(commit) => {
                    store.fact_entries(store.commit_tree(commit)?)?.into_iter().collect()
                }
                None => BTreeMap::new(),
            })
        };
        let base_facts = entries(base)?;
        let our_facts = entries(ours)?;
        let their_facts = entries(Some(theirs))?;
        let mut report = MergeReport::default();
        let mut changes = Vec::new();
        let slugs: std::collections::BTreeSet<&String> =
            our_facts.keys().chain(their_facts.keys()).collect();
        let suffix = format!(".from-{}", fact::slug_for(remote.as_str()));
        for slug in slugs {
            let sides = (base_facts.get(slug), our_facts.get(slug), their_facts.get(slug));
            if let Some(change) = merge_fact(store, slug, sides, &remote, &suffix, &mut report)? {
                changes.push(change);
            }
        }
        store.write_with_parents(
            &changes,
            &format!("merge memory from {remote}"),
            &Origin::default(),
            Some(theirs),
        )?;
        Ok(report)
    }
}

/// What merging one fact of a remote's memory changes here, given its blob in the merge
/// base, ours and theirs; what it took, renamed or refused goes into `report`.
fn merge_fact(
    store: &MemoryStore,
    slug: &str,
    sides: (Option<&ObjectId>, Option<&ObjectId>, Option<&ObjectId>),
    remote: &RemoteName,
    suffix: &str,
    report: &mut MergeReport,
) -> Result<Option<Change>> {
    let (b, o, t) = sides;
    if o == t || t == b {
        return Ok(None);
    }
    if !fact::is_valid_slug(slug) {
        report.rejected.push((slug.to_string(), "not a valid fact name".into()));
        return Ok(None);
    }
    // Ours is unchanged when it is the base's fact as an earlier merge wrote it.
    let ours_unchanged = o == b
        || match (o, b) {
            (Some(o), Some(b)) => {
                restamped(slug, &store.blob(*b)?, remote).ok() == Some(store.blob(*o)?)
            }
            _ => false,
        };
    let target = if ours_unchanged { slug.to_string() } else { format!("{slug}{suffix}") };
    let content = match t {
        Some(id) => match restamped(slug, &store.blob(*id)?, remote) {
            Ok(bytes) => Some(bytes),
            Err(reason) => {
                report.rejected.push((slug.to_string(), reason));
                return Ok(None);
            }
        },
        None if ours_unchanged => None,
        None => {
            report.deleted_there.push(slug.to_string());
            return Ok(None);
        }
    };
    if !fact::is_valid_slug(&target) {
        report.rejected.push((slug.to_string(), format!("{target} is too long a name")));
        return Ok(None);
    }
    if ours_unchanged {
        report.taken.push(slug.to_string());
    } else {
        report.conflicts.push((slug.to_string(), target.clone()));
    }
    Ok(Some(Change::Raw { slug: target, content }))
}

/// A remote's fact file as it is stored here: parsed (so only a well-formed fact is
/// taken), within the size cap, and sourced as `remote:<remote>` unless it already names
/// the remote it came from.
fn restamped(
    slug: &str,
    bytes: &[u8],
    remote: &RemoteName,
) -> std::result::Result<Vec<u8>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "it is not UTF-8".to_string())?;
    let mut fact = Fact::parse(slug, text)?;
    if fact.text.len() > store::FACT_MAX_BYTES {
        return Err(format!("it is over {} bytes", store::FACT_MAX_BYTES));
    }
    if fact.meta.source.remote().is_none() {
        fact.meta.source = Source::Remote(remote.clone());
    }
    Ok(fact.render().into_bytes())
}
