//! A memory tier as git history: a ref whose commits each hold the whole memory tree,
//! `MEMORY.md` (one index line per fact) and `facts/<slug>.md`.
//!
//! [`MemoryStore::write_with_parents`] is the one writer of memory, so it is where secrets
//! are redacted (as the step writer does for steps): every fact file and commit message,
//! whoever the caller, unless `[transcript] redact_secrets` is off.
//!
//! Every write is its own commit with `Cairn-Session:`/`Cairn-Step:` trailers and moves
//! the ref by compare-and-swap. A writer that loses the race re-applies its change on the
//! new tip, so concurrent sessions never lose each other's facts. A write's objects go to
//! disk as one pack, like a step's: fsynced before the ref moves, and registered for
//! cairn's pack merging (in `<git dir>/cairn/packs` of the user's repository, or of the
//! user memory repository).

use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;

use super::fact::{self, Fact};
use super::index_file::Index;
use super::trailers::{compose, origin_of};
use super::{Error, Result};
use crate::git::{Context, objects, refs};

/// Project memory (tier 3) in the user's repository.
pub const PROJECT_REF: &str = refs::MEMORY_REF;
/// User memory (tier 4) in its own bare repository, on its default branch so that
/// `git -C memory.git log` shows it.
pub const USER_REF: &str = "refs/heads/main";
pub const INDEX_FILE: &str = "MEMORY.md";
pub const FACTS_DIR: &str = "facts";
/// The index keeps this many lines; the oldest drop out of it (their facts stay searchable).
pub const INDEX_MAX_LINES: usize = 200;
/// The largest fact text accepted, in bytes: a fact is a sentence or a short paragraph.
pub const FACT_MAX_BYTES: usize = 2048;
/// How often a write retries when other sessions keep moving the ref.
const MAX_ATTEMPTS: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Project,
    User,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Project => "project",
            Tier::User => "user",
        }
    }
}

/// Who is writing: a session's step, or the user at the command line.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub session: Option<String>,
    pub step: Option<u64>,
}

/// One change to the memory tree.
#[derive(Debug, Clone)]
pub enum Change {
    /// Write a fact (add, or update if the slug exists).
    Put(Fact),
    /// Remove a fact.
    Remove(String),
    /// Set `facts/<slug>.md` to exactly these bytes (or remove it); used by revert and
    /// merge, which restore files as they were.
    Raw { slug: String, content: Option<Vec<u8>> },
}

impl Change {
    fn slug(&self) -> &str {
        match self {
            Change::Put(fact) => &fact.slug,
            Change::Remove(slug) | Change::Raw { slug, .. } => slug,
        }
    }
}

/// A fact file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Invalid {
    pub path: String,
    pub reason: String,
}

/// The memory tree at one commit.
#[derive(Debug, Clone, Default)]
pub struct Contents {
    pub tip: Option<ObjectId>,
    pub tree: Option<ObjectId>,
    pub index: String,
    /// Valid facts, sorted by slug.
    pub facts: Vec<Fact>,
    /// Fact files that are reported and skipped.
    pub invalid: Vec<Invalid>,
}

impl Contents {
    pub fn fact(&self, slug: &str) -> Option<&Fact> {
        self.facts.iter().find(|f| f.slug == slug)
    }
}

/// One commit of a memory's history, as `cairn memory log` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogEntry {
    #[serde(serialize_with = "crate::git::objects::serialize_hex")]
    pub commit: ObjectId,
    pub subject: String,
    pub session: Option<String>,
    pub step: Option<u64>,
    /// Seconds since the epoch.
    pub time: i64,
    /// The memory tree of the commit and of its first parent.
    #[serde(skip)]
    pub tree: ObjectId,
    #[serde(skip)]
    pub parent_tree: Option<ObjectId>,
}

pub struct MemoryStore {
    repo: gix::Repository,
    reference: &'static str,
    tier: Tier,
    location: String,
    /// cairn's pack registry of this store's repository, listing the packs writes made.
    pack_registry: PathBuf,
    /// Replace secret-looking strings in what is written (on unless turned off).
    redact_secrets: bool,
}

impl MemoryStore {
    /// Project memory in the repository `repo` (a handle that writes objects to disk).
    pub fn project(repo: gix::Repository) -> MemoryStore {
        let pack_registry = repo.common_dir().join("cairn").join(objects::REGISTRY);
        // Objects collect in memory and are written as one pack before the ref moves.
        let mut repo = repo.with_object_memory();
        // Packed facts are deltas of one another; a cache of delta bases saves inflating
        // each base again for every fact when a search index is built from thousands.
        repo.objects
            .set_pack_cache(|| Box::<gix_pack::cache::lru::StaticLinkedList<64>>::default());
        MemoryStore {
            repo,
            reference: PROJECT_REF,
            tier: Tier::Project,
            location: PROJECT_REF.into(),
            pack_registry,
            redact_secrets: true,
        }
    }

    /// User memory in the bare repository at `path`, created when missing.
    pub fn user_at(path: &Path) -> Result<MemoryStore> {
        let repo = if path.join("HEAD").is_file() {
            gix::open(path).map_err(|err| Error::UserRepository {
                path: path.to_owned(),
                message: err.to_string(),
            })?
        } else {
            std::fs::create_dir_all(path).map_err(|source| Error::Io {
                context: format!("creating {}", path.display()),
                source,
            })?;
            let repo = gix::init_bare(path).map_err(|err| Error::UserRepository {
                path: path.to_owned(),
                message: err.to_string(),
            })?;
            // gix names the default branch from config; pin it so `git log` shows memory.
            std::fs::write(path.join("HEAD"), format!("ref: {USER_REF}\n")).map_err(|source| {
                Error::Io { context: format!("writing {}/HEAD", path.display()), source }
            })?;
            repo
        };
        let pack_registry = repo.common_dir().join("cairn").join(objects::REGISTRY);
        Ok(MemoryStore {
            // As for project memory: one durable pack per write, not loose objects.
            repo: repo.with_object_memory(),
            reference: USER_REF,
            tier: Tier::User,
            location: path.display().to_string(),
            pack_registry,
            redact_secrets: true,
        })
    }

    /// This store, redacting what it writes or not (`[transcript] redact_secrets`).
    pub fn redacting(mut self, redact_secrets: bool) -> MemoryStore {
        self.redact_secrets = redact_secrets;
        self
    }

    /// `text` (a commit message) as this store writes it.
    fn stored_text(&self, text: &str) -> String {
        if self.redact_secrets { crate::secrets::redact(text).0 } else { text.to_string() }
    }

    /// `bytes` as this store writes them: redacted unless redaction is off.
    fn stored(&self, bytes: Vec<u8>) -> Vec<u8> {
        match self.redact_secrets.then(|| crate::secrets::redact_stored(&bytes)).flatten() {
            Some(redacted) => redacted,
            None => bytes,
        }
    }

    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Where this memory lives, as users should be told.
    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn repo(&self) -> &gix::Repository {
        &self.repo
    }

    pub fn reference(&self) -> &str {
        self.reference
    }

    pub fn tip(&self) -> Result<Option<ObjectId>> {
        Ok(refs::read_ref(&self.repo, self.reference)?)
    }

    /// The memory tree at the tip, if there is one.
    pub fn tree(&self) -> Result<Option<ObjectId>> {
        match self.tip()? {
            Some(tip) => Ok(Some(self.tip_tree(tip)?)),
            None => Ok(None),
        }
    }

    /// The tree of the tip commit, or [`Error::BrokenRef`] when the ref names something
    /// else.
    fn tip_tree(&self, tip: ObjectId) -> Result<ObjectId> {
        self.commit_tree(tip).map_err(|_| Error::BrokenRef {
            reference: self.reference.to_string(),
            id: tip.to_string(),
        })
    }

    /// The fact names `MEMORY.md` lists in memory tree `tree`, oldest first; names that
    /// are not valid fact names, and repeats, are left out.
    pub fn index_slugs(&self, tree: ObjectId) -> Result<Vec<String>> {
        let bytes = self.file_at(tree, INDEX_FILE)?.unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        Ok(Index::parse(&String::from_utf8_lossy(&bytes))
            .into_slugs()
            .filter(|slug| fact::is_valid_slug(slug) && seen.insert(slug.clone()))
            .collect())
    }

    /// Everything at the tip.
    pub fn load(&self) -> Result<Contents> {
        let tip = self.tip()?;
        let mut contents = self.load_tree(match tip {
            Some(tip) => Some(self.tip_tree(tip)?),
            None => None,
        })?;
        contents.tip = tip;
        Ok(contents)
    }

    /// The memory files of `tree` (a memory tree; `None` is empty memory).
    pub fn load_tree(&self, tree: Option<ObjectId>) -> Result<Contents> {
        let mut contents = Contents { tree, ..Contents::default() };
        let Some(tree) = tree else { return Ok(contents) };
        if let Some(index) = self.file_at(tree, INDEX_FILE)? {
            contents.index = String::from_utf8_lossy(&index).into_owned();
        }
        for (slug, id) in self.fact_entries(tree)? {
            let path = format!("{FACTS_DIR}/{slug}.md");
            let blob = self.repo.find_blob(id).context(|| format!("reading {path}"))?;
            let parsed = std::str::from_utf8(&blob.data)
                .map_err(|_| "it is not UTF-8".to_string())
                .and_then(|text| Fact::parse(&slug, text));
            match parsed {
                Ok(fact) => contents.facts.push(fact),
                Err(reason) => contents.invalid.push(Invalid { path, reason }),
            }
        }
        Ok(contents)
    }

    /// (slug, blob id) of every `facts/*.md` in `tree`, sorted by slug.
    pub fn fact_entries(&self, tree: ObjectId) -> Result<Vec<(String, ObjectId)>> {
        let tree = self.repo.find_tree(tree).context(|| format!("reading memory tree {tree}"))?;
        let Some(facts) = tree.find_entry(FACTS_DIR).filter(|e| e.mode().is_tree()) else {
            return Ok(Vec::new());
        };
        let facts = self.repo.find_tree(facts.oid()).context(|| "reading facts/".into())?;
        let mut out = Vec::new();
        for entry in facts.iter() {
            let entry = entry.context(|| "reading facts/".into())?;
            if !entry.mode().is_blob() {
                continue;
            }
            let name = entry.filename().to_str_lossy();
            if let Some(slug) = name.strip_suffix(".md") {
                out.push((slug.to_string(), entry.oid().to_owned()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The bytes of `path` in memory tree `tree`.
    pub fn file_at(&self, tree: ObjectId, path: &str) -> Result<Option<Vec<u8>>> {
        Ok(objects::blob_at(&self.repo, tree, path)?)
    }

    /// Applies `changes` in one commit on top of the newest tip, retrying when another
    /// writer moved the ref meanwhile. Returns the new commit, or `None` when the changes
    /// left the tree as it was.
    pub fn write(
        &self,
        changes: &[Change],
        subject: &str,
        origin: &Origin,
    ) -> Result<Option<ObjectId>> {
        self.write_with_parents(changes, subject, origin, None)
    }

    /// Like [`MemoryStore::write`], with `extra_parent` as the commit's second parent (a
    /// merge).
    pub fn write_with_parents(
        &self,
        changes: &[Change],
        subject: &str,
        origin: &Origin,
        extra_parent: Option<ObjectId>,
    ) -> Result<Option<ObjectId>> {
        for change in changes {
            if !fact::is_valid_slug(change.slug()) {
                return Err(Error::InvalidSlug(change.slug().to_string()));
            }
        }
        let subject = self.stored_text(subject);
        let subject = subject.as_str();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tip = self.tip()?;
            let base = match tip {
                Some(tip) => self.tip_tree(tip)?,
                None => ObjectId::empty_tree(gix::hash::Kind::Sha1),
            };
            let tree = self.apply(base, changes)?;
            if tree == base && extra_parent.is_none() {
                return Ok(None);
            }
            let message = compose(subject, origin);
            let user = objects::committer(&self.repo);
            let commit = gix::objs::Commit {
                tree,
                parents: tip.into_iter().chain(extra_parent).collect(),
                author: user.clone(),
                committer: user.clone(),
                encoding: None,
                message: message.into(),
                extra_headers: Vec::new(),
            };
            let commit = self
                .repo
                .write_object(&commit)
                .context(|| "writing a memory commit".into())?
                .detach();
            // Objects first: the ref must never name a commit that is not on disk.
            self.persist()?;
            let mut time = gix::date::parse::TimeBuf::default();
            match refs::compare_and_swap(
                &self.repo,
                self.reference,
                tip,
                commit,
                &format!("cairn memory: {subject}"),
                user.to_ref(&mut time),
            ) {
                Ok(()) => return Ok(Some(commit)),
                Err(crate::git::Error::ConcurrentUpdate { .. }) if attempt < MAX_ATTEMPTS => {
                    // Another session wrote first: back off a little and re-apply on its tip.
                    std::thread::sleep(std::time::Duration::from_millis(fastrand::u64(1..20)));
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Writes the objects buffered in memory as one pack, and lets cairn's pack merging
    /// take it in.
    fn persist(&self) -> Result<()> {
        if let Some(pack) = objects::persist(&self.repo)?
            && objects::register(&self.pack_registry, &pack).is_ok()
        {
            // Maintenance only: a failure leaves one more small pack until a later merge.
            let _ =
                objects::consolidate(&self.repo, &self.pack_registry, objects::Merge::Geometric);
        }
        Ok(())
    }

    /// `base` with `changes` applied and the index brought up to date.
    fn apply(&self, base: ObjectId, changes: &[Change]) -> Result<ObjectId> {
        let mut index = match self.file_at(base, INDEX_FILE)? {
            Some(bytes) => Index::parse(&String::from_utf8_lossy(&bytes)),
            None => Index::default(),
        };
        let mut editor = self.repo.edit_tree(base).context(|| "editing the memory tree".into())?;
        for change in changes {
            let path = format!("{FACTS_DIR}/{}.md", change.slug());
            let content = match change {
                Change::Put(fact) => Some(fact.render().into_bytes()),
                Change::Remove(_) => None,
                Change::Raw { content, .. } => content.clone(),
            };
            match content.map(|bytes| self.stored(bytes)) {
                Some(bytes) => {
                    let headline = match std::str::from_utf8(&bytes)
                        .ok()
                        .map(|t| Fact::parse(change.slug(), t))
                    {
                        Some(Ok(fact)) => fact.headline(),
                        _ => "(unreadable fact file)".to_string(),
                    };
                    let id = self
                        .repo
                        .write_blob(&bytes)
                        .context(|| format!("writing {path}"))?
                        .detach();
                    editor
                        .upsert(path.as_str(), EntryKind::Blob, id)
                        .context(|| format!("adding {path}"))?;
                    index.set(change.slug(), &headline);
                }
                None => {
                    editor.remove(path.as_str()).context(|| format!("removing {path}"))?;
                    index.remove(change.slug());
                }
            }
        }
        let index_id = self
            .repo
            .write_blob(index.render().as_bytes())
            .context(|| "writing MEMORY.md".into())?
            .detach();
        editor
            .upsert(INDEX_FILE, EntryKind::Blob, index_id)
            .context(|| "adding MEMORY.md".into())?;
        Ok(editor.write().context(|| "writing the memory tree".into())?.detach())
    }

    /// The history of the memory, newest first.
    pub fn log(&self, limit: Option<usize>) -> Result<Vec<LogEntry>> {
        let Some(tip) = self.tip()? else { return Ok(Vec::new()) };
        let walk =
            self.repo.rev_walk([tip]).all().context(|| "walking the memory history".into())?;
        let mut out = Vec::new();
        for info in walk {
            if limit.is_some_and(|limit| out.len() >= limit) {
                break;
            }
            let info = info.context(|| "walking the memory history".into())?;
            let commit =
                self.repo.find_commit(info.id).context(|| format!("reading {}", info.id))?;
            let message = commit.message_raw_sloppy().to_str_lossy().into_owned();
            let (session, step) = origin_of(&message);
            let parent_tree = match commit.parent_ids().next() {
                Some(parent) => Some(self.commit_tree(parent.detach())?),
                None => None,
            };
            let tree = self.commit_tree(info.id)?;
            out.push(LogEntry {
                commit: info.id,
                subject: message.lines().next().unwrap_or("").to_string(),
                session,
                step,
                time: commit.time().map(|t| t.seconds).unwrap_or(0),
                tree,
                parent_tree,
            });
        }
        Ok(out)
    }

    /// The slugs whose files differ between two memory trees, sorted.
    pub fn changed_facts(&self, from: Option<ObjectId>, to: ObjectId) -> Result<Vec<String>> {
        let before: std::collections::HashMap<String, ObjectId> = match from {
            Some(tree) => self.fact_entries(tree)?.into_iter().collect(),
            None => Default::default(),
        };
        let after = self.fact_entries(to)?;
        let mut out: Vec<String> = after
            .iter()
            .filter(|(slug, id)| before.get(slug) != Some(id))
            .map(|(slug, _)| slug.clone())
            .collect();
        let kept: std::collections::HashSet<&str> = after.iter().map(|(s, _)| s.as_str()).collect();
        out.extend(before.keys().filter(|slug| !kept.contains(slug.as_str())).cloned());
        out.sort();
        Ok(out)
    }

    /// The blob id of `facts/<slug>.md` in `tree`, if there is one.
    pub fn fact_id(&self, tree: Option<ObjectId>, slug: &str) -> Result<Option<ObjectId>> {
        let Some(tree) = tree else { return Ok(None) };
        let path = format!("{FACTS_DIR}/{slug}.md");
        let tree = self.repo.find_tree(tree).context(|| format!("reading memory tree {tree}"))?;
        let entry = tree.lookup_entry_by_path(&path).context(|| format!("looking up {path}"))?;
        Ok(entry.filter(|e| e.mode().is_blob()).map(|e| e.oid().to_owned()))
    }

    /// The bytes of blob `id`.
    pub fn blob(&self, id: ObjectId) -> Result<Vec<u8>> {
        Ok(self.repo.find_blob(id).context(|| format!("reading {id}"))?.data.clone())
    }

    pub fn commit_tree(&self, commit: ObjectId) -> Result<ObjectId> {
        let object =
            self.repo.find_commit(commit).context(|| format!("reading memory commit {commit}"))?;
        Ok(object.tree_id().context(|| format!("reading the tree of {commit}"))?.detach())
    }
}

/// The path of the user memory repository: `$XDG_DATA_HOME/cairn/memory.git`, else
/// `~/.local/share/cairn/memory.git`.
pub fn user_memory_path() -> Option<PathBuf> {
    let data =
        std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()).map(PathBuf::from).or_else(
            || std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")),
        )?;
    Some(data.join("cairn").join("memory.git"))
}
