//! Ranked keyword search over memory (BM25), offline and deterministic.
//!
//! Documents are facts (tiers 3 and 4, one document each), the sections of the session
//! summary (tier 2) and of the `AGENTS.md` chain. The index is cached in
//! `<git common dir>/cairn/memory-search.idx`, keyed by the blob ids of what it holds:
//! when the key matches, a search only decodes the cache; when it does not, documents
//! whose blob is unchanged are taken from the old cache instead of being read from git.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use gix::ObjectId;
use serde::{Deserialize, Serialize};

use super::store::MemoryStore;

/// BM25's usual constants.
const K1: f64 = 1.2;
const B: f64 = 0.75;
/// Bump when the cache layout or the tokenizer changes.
const CACHE_VERSION: u32 = 3;

/// A text source of documents: one blob, split into documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Group {
    /// Blob id (hex) of the text the documents came from.
    blob: String,
    docs: Vec<Doc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Doc {
    /// Where the text is, as the user and the model should read it.
    file: String,
    /// 1-based line of the document's first line in `file`.
    line: u32,
    text: String,
    /// A fact's `source` (`user`, `remote:origin`, …); none for other documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub file: String,
    /// The line of the best-matching line of the document.
    pub line: u32,
    pub score: f64,
    /// The best-matching line, and the document's first line when that differs.
    pub snippet: String,
    /// A fact's source, so a remote's fact is never mistaken for the user's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Hit {
    /// `file:line: snippet`, with the source of a fact: how hits are shown.
    pub fn display_line(&self) -> String {
        match &self.source {
            Some(source) => {
                format!("{}:{}: {} (source: {source})", self.file, self.line, self.snippet)
            }
            None => format!("{}:{}: {}", self.file, self.line, self.snippet),
        }
    }
}

/// What to search: the memory tiers and instruction files of one session.
pub struct Corpus<'a> {
    pub project: Option<&'a MemoryStore>,
    pub user: Option<&'a MemoryStore>,
    /// `.cairn/memory/session.md` of the current step, if any.
    pub session_summary: Option<&'a str>,
    /// The `AGENTS.md` chain: (path relative to the root, content).
    pub instructions: &'a [(std::path::PathBuf, String)],
}

#[derive(Serialize, Deserialize)]
struct Cache {
    version: u32,
    key: String,
    index: Index,
}

/// The index searched, as cached: documents, and for each term (sorted) the documents
/// holding it with their term frequency.
#[derive(Serialize, Deserialize)]
struct Index {
    /// (blob, first document, document count) of each group, for incremental rebuilds.
    groups: Vec<(String, u32, u32)>,
    docs: Vec<Doc>,
    lengths: Vec<u32>,
    vocabulary: Vec<String>,
    postings: Vec<Vec<(u32, u32)>>,
    average_length: f64,
}

/// Searches `corpus` for `query`, best first, at most `limit` hits. `cache` is the cache
/// file (created or replaced when stale); errors writing it are not fatal.
pub fn search(
    corpus: &Corpus<'_>,
    query: &str,
    limit: usize,
    cache: Option<&Path>,
) -> Result<Vec<Hit>, super::Error> {
    Ok(load_index(corpus, cache)?.search(query, limit))
}

/// The index of `corpus`, from the cache when it is current.
fn load_index(corpus: &Corpus<'_>, cache: Option<&Path>) -> Result<Index, super::Error> {
    let mut sources: Vec<Source> = Vec::new();
    for store in [corpus.project, corpus.user].into_iter().flatten() {
        if let Some(tree) = store.tree()? {
            sources.push(Source::Facts { store, tree });
        }
    }
    if let Some(summary) = corpus.session_summary {
        sources.push(Source::Text { file: ".cairn/memory/session.md".into(), text: summary });
    }
    for (path, text) in corpus.instructions {
        sources.push(Source::Text { file: path.to_string_lossy().into_owned(), text });
    }
    let key: String = sources.iter().map(Source::key).collect::<Vec<_>>().join(" ");
    let old = cache.and_then(read_cache);
    let old = match old {
        Some(old) if old.key == key => return Ok(old.index),
        Some(old) => Some(old.index),
        None => None,
    };
    let mut reuse: HashMap<&str, &[Doc]> = HashMap::new();
    if let Some(old) = &old {
        for (blob, first, count) in &old.groups {
            let range = *first as usize..(*first + *count) as usize;
            if let Some(docs) = old.docs.get(range) {
                reuse.insert(blob.as_str(), docs);
            }
        }
    }
    let mut groups = Vec::new();
    for source in &sources {
        source.groups(&reuse, &mut groups)?;
    }
    let built = Cache { version: CACHE_VERSION, key, index: Index::build(groups) };
    if let Some(path) = cache {
        write_cache(path, &built);
    }
    Ok(built.index)
}

enum Source<'a> {
    Facts { store: &'a MemoryStore, tree: ObjectId },
    Text { file: String, text: &'a str },
}

impl Source<'_> {
    fn key(&self) -> String {
        match self {
            Source::Facts { tree, .. } => tree.to_string(),
            Source::Text { text, .. } => blob_id(text.as_bytes()).to_string(),
        }
    }

    fn groups(
        &self,
        reuse: &HashMap<&str, &[Doc]>,
        out: &mut Vec<Group>,
    ) -> Result<(), super::Error> {
        match self {
            Source::Facts { store, tree } => {
                let prefix = store.location();
                for (slug, id) in store.fact_entries(*tree)? {
                    let blob = id.to_string();
                    if let Some(docs) = reuse.get(blob.as_str()) {
                        out.push(Group { blob, docs: docs.to_vec() });
                        continue;
                    }
                    let Ok(object) = store.repo().find_blob(id) else { continue };
                    let text = String::from_utf8_lossy(&object.data);
                    let file = format!("{prefix}:facts/{slug}.md");
                    let docs = fact_doc(&slug, &file, &text).into_iter().collect();
                    out.push(Group { blob, docs });
                }
            }
            Source::Text { file, text } => {
                out.push(Group {
                    blob: blob_id(text.as_bytes()).to_string(),
                    docs: sections(file, text),
                });
            }
        }
        Ok(())
    }
}

/// A fact file as one document: its text without the front matter, and its source.
fn fact_doc(slug: &str, file: &str, content: &str) -> Option<Doc> {
    let source = super::Fact::parse(slug, content).ok().map(|fact| fact.meta.source.to_string());
    let mut line = 1;
    let mut body = content;
    if let Some(rest) = content.strip_prefix("+++\n")
        && let Some(end) = rest.find("\n+++\n")
    {
        line += 2 + rest[..end].lines().count() as u32;
        body = &rest[end + 5..];
    }
    let text = body.trim_end().to_string();
    (!text.trim().is_empty()).then(|| Doc { file: file.to_string(), line, text, source })
}

/// A Markdown text split at its headings (and every 40 lines), so a hit points near its
/// place in a long file.
fn sections(file: &str, text: &str) -> Vec<Doc> {
    const MAX_LINES: usize = 40;
    let mut docs = Vec::new();
    let mut start = 1;
    let mut current: Vec<&str> = Vec::new();
    let mut flush = |start: usize, lines: &mut Vec<&str>| {
        let text = lines.join("\n");
        if !text.trim().is_empty() {
            docs.push(Doc { file: file.to_string(), line: start as u32, text, source: None });
        }
        lines.clear();
    };
    for (n, line) in text.lines().enumerate() {
        if (line.starts_with('#') && !current.is_empty()) || current.len() >= MAX_LINES {
            flush(start, &mut current);
            start = n + 1;
        }
        current.push(line);
    }
    flush(start, &mut current);
    docs
}

fn blob_id(bytes: &[u8]) -> ObjectId {
    gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::object::Kind::Blob, bytes)
        .unwrap_or_else(|_| ObjectId::null(gix::hash::Kind::Sha1))
}

fn read_cache(path: &Path) -> Option<Cache> {
    let bytes = std::fs::read(path).ok()?;
    let cache: Cache = postcard::from_bytes(&bytes).ok()?;
    (cache.version == CACHE_VERSION).then_some(cache)
}

fn write_cache(path: &Path, cache: &Cache) {
    let Ok(bytes) = postcard::to_stdvec(cache) else { return };
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    // Written aside and renamed, so a reader never sees half a cache.
    if let Ok(mut file) = tempfile::NamedTempFile::new_in(dir)
        && std::io::Write::write_all(&mut file, &bytes).is_ok()
    {
        let _ = file.persist(path);
    }
}

/// Lowercase alphanumeric words, stemmed (English Snowball), so "migrations" finds
/// "migration"; deterministic.
pub fn tokenize(text: &str) -> impl Iterator<Item = String> + '_ {
    let stemmer = rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English);
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(move |word| stemmer.stem(&word.to_lowercase()).into_owned())
}

impl Index {
    fn build(groups: Vec<Group>) -> Index {
        use rayon::prelude::*;
        let mut docs = Vec::new();
        let mut spans = Vec::new();
        for group in groups {
            spans.push((group.blob, docs.len() as u32, group.docs.len() as u32));
            docs.extend(group.docs);
        }
        // Tokenizing (with stemming) is most of a cold build; documents are independent.
        let counted: Vec<(BTreeMap<String, u32>, u32)> = docs
            .par_iter()
            .map(|doc| {
                let mut counts: BTreeMap<String, u32> = BTreeMap::new();
                let mut length = 0;
                for token in tokenize(&doc.text) {
                    *counts.entry(token).or_default() += 1;
                    length += 1;
                }
                (counts, length)
            })
            .collect();
        let mut terms: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        let mut lengths = Vec::with_capacity(docs.len());
        let mut total = 0u64;
        for (id, (counts, length)) in counted.into_iter().enumerate() {
            for (term, count) in counts {
                terms.entry(term).or_default().push((id as u32, count));
            }
            total += u64::from(length);
            lengths.push(length);
        }
        let mut terms: Vec<(String, Vec<(u32, u32)>)> = terms.into_iter().collect();
        terms.sort_by(|a, b| a.0.cmp(&b.0));
        let (vocabulary, postings) = terms.into_iter().unzip();
        let average_length = if docs.is_empty() { 0.0 } else { total as f64 / docs.len() as f64 };
        Index { groups: spans, docs, lengths, vocabulary, postings, average_length }
    }

    fn search(&self, query: &str, limit: usize) -> Vec<Hit> {
        let mut terms: Vec<String> = tokenize(query).collect();
        terms.sort();
        terms.dedup();
        let n = self.docs.len() as f64;
        let mut scores: HashMap<u32, f64> = HashMap::new();
        for term in &terms {
            let Ok(at) = self.vocabulary.binary_search(term) else { continue };
            let list = &self.postings[at];
            let df = list.len() as f64;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(doc, tf) in list {
                let length = f64::from(self.lengths[doc as usize]);
                let tf = f64::from(tf);
                let norm = tf * (K1 + 1.0)
                    / (tf + K1 * (1.0 - B + B * length / self.average_length.max(1.0)));
                *scores.entry(doc).or_default() += idf * norm;
            }
        }
        let mut ranked: Vec<(u32, f64)> = scores.into_iter().collect();
        // Ties go to the earlier document, so results never depend on hash order.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked
            .into_iter()
            .take(limit)
            .map(|(doc, score)| {
                let doc = &self.docs[doc as usize];
                let (offset, snippet) = snippet(&doc.text, &terms);
                Hit {
                    file: doc.file.clone(),
                    line: doc.line + offset,
                    score,
                    snippet,
                    source: doc.source.clone(),
                }
            })
            .collect()
    }
}

/// The line of `text` holding the most query terms (its offset and text, cut short).
fn snippet(text: &str, terms: &[String]) -> (u32, String) {
    const MAX: usize = 240;
    let mut best = (0, 0usize, "");
    for (n, line) in text.lines().enumerate() {
        let hits = tokenize(line).filter(|t| terms.binary_search(t).is_ok()).count();
        if hits > best.1 {
            best = (n as u32, hits, line);
        }
    }
    let line = best.2.trim();
    let mut cut = line.len().min(MAX);
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    let shown = if cut < line.len() { format!("{}…", &line[..cut]) } else { line.to_string() };
    (best.0, shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(file: &str, text: &str) -> Group {
        Group {
            blob: file.into(),
            docs: vec![Doc { file: file.into(), line: 1, text: text.into(), source: None }],
        }
    }

    #[test]
    fn the_rarer_and_denser_match_ranks_first() {
        let index = Index::build(vec![
            group("a", "the build uses make and the tests use make check"),
            group("b", "postgres listens on port 5433 in the dev setup"),
            group("c", "the the the the port"),
        ]);
        let hits = index.search("which PORT does postgres use", 10);
        assert_eq!(hits[0].file, "b");
        assert_eq!(hits[0].snippet, "postgres listens on port 5433 in the dev setup");
        assert!(hits.iter().all(|h| h.score > 0.0));
        assert!(index.search("nothing matches this", 10).is_empty());
    }

    #[test]
    fn ties_are_broken_by_document_order() {
        let index = Index::build(vec![group("x", "alpha"), group("y", "alpha")]);
        let files: Vec<_> = index.search("alpha", 10).into_iter().map(|h| h.file).collect();
        assert_eq!(files, ["x", "y"]);
    }

    #[test]
    fn sections_split_at_headings_and_keep_their_line_numbers() {
        let docs = sections("AGENTS.md", "# Build\nmake\n\n## Test\nmake check\n");
        let lines: Vec<_> = docs.iter().map(|d| d.line).collect();
        assert_eq!(lines, [1, 4]);
        let index = Index::build(vec![Group { blob: "x".into(), docs }]);
        let hit = &index.search("check", 1)[0];
        assert_eq!((hit.line, hit.snippet.as_str()), (5, "make check"));
    }

    #[test]
    fn a_fact_document_skips_its_front_matter() {
        let doc =
            fact_doc("f", "f", "+++\ncreated = \"x\"\nsource = \"user\"\n+++\nUse port 5433.\n")
                .unwrap();
        assert_eq!((doc.line, doc.text.as_str()), (5, "Use port 5433."));
        // That front matter lacks `last_confirmed`, so the fact does not parse: no source.
        assert_eq!(doc.source, None);
        let remote = "+++\ncreated = \"x\"\nsource = \"remote:origin\"\nlast_confirmed = \"x\"\n+++\nUse port 5433.\n";
        assert_eq!(fact_doc("f", "f", remote).unwrap().source.as_deref(), Some("remote:origin"));
    }
}
