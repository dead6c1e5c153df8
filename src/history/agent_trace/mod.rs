//! Attribution others can read: the vendor-neutral Agent Trace record (v0.1,
//! <https://github.com/cursor/agent-trace>, schema `schemas/trace-record.json`) built from
//! `cairn blame`'s line origins.
//!
//! A record lists files → conversations → line ranges. Each cairn session is one
//! conversation per kind of contributor (`ai` with the step's model, `human` for
//! `user-edits` steps, `unknown` where cairn cannot tell), named by the URI
//! `cairn:session/<id>` (the session's ref `refs/cairn/sessions/<id>` in the repository).
//! Lines that predate every session (the base commit's) are left to `git blame`, as the
//! spec's line-tracking recipe does; `mixed` is never claimed, since a line is attributed
//! to the one step that last wrote it.

pub mod notes;

use std::collections::BTreeMap;

use gix::ObjectId;
use serde::Serialize;

use gix::objs::tree::EntryKind;

use super::blame::{self, BlamedLine, Origin};
use crate::checkpoint::{self, Result, StepKind, Store};
use crate::git::Context as _;
use crate::text::is_binary;

/// The specification version this record follows (the schema's `^[0-9]+\.[0-9]+$`).
pub const VERSION: &str = "0.1";
/// The spec's limit on `model_id`; a longer (or odd) model name is left out, not cut.
const MAX_MODEL_ID: usize = 250;

#[derive(Debug, Clone, Serialize)]
pub struct TraceRecord {
    pub version: &'static str,
    /// A random (version 4) UUID.
    pub id: String,
    /// RFC 3339, UTC, when the record was made.
    pub timestamp: String,
    /// The commit the line numbers refer to; absent for a file as it is in the workspace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcs: Option<Vcs>,
    pub tool: Tool,
    pub files: Vec<FileTrace>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Vcs {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub revision: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileTrace {
    pub path: String,
    pub conversations: Vec<Conversation>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    /// `cairn:session/<id>`; absent for lines no session recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub contributor: Contributor,
    pub ranges: Vec<Range>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Contributor {
    #[serde(rename = "type")]
    pub kind: ContributorType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContributorType {
    Human,
    Ai,
    /// (The spec's `mixed`, human-edited AI output, is never claimed: see the module doc.)
    Unknown,
}

/// Lines `start_line..=end_line`, 1-based, of the file at the record's revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Range {
    pub start_line: usize,
    pub end_line: usize,
}

/// One file's blamed lines, and which of them the record covers.
pub struct Attributed {
    pub path: String,
    pub lines: Vec<BlamedLine>,
    /// Which lines (by index) the record covers; `None`: all that a session wrote. For a
    /// landed commit, the lines it changed, each attributed even when no step claims it.
    pub covered: Option<Vec<bool>>,
}

/// The record for `files`, whose line numbers refer to `revision` (a git commit) or to
/// the workspace (`None`).
pub fn record(
    store: &Store,
    files: &[Attributed],
    revision: Option<ObjectId>,
) -> Result<TraceRecord> {
    let mut contributors = StepContributors::new(store);
    let mut traces = Vec::new();
    for file in files {
        // (url, contributor) → that conversation's line numbers, in order.
        let mut groups: BTreeMap<(Option<String>, Contributor), Vec<usize>> = BTreeMap::new();
        for (index, line) in file.lines.iter().enumerate() {
            let covered = file.covered.as_ref().map(|covered| covered.get(index) == Some(&true));
            if covered == Some(false) {
                continue;
            }
            let key = match &line.origin {
                Origin::Step { session, commit, .. } => {
                    (Some(session_url(session)), contributors.of(commit)?)
                }
                // Predates the sessions: `git blame` and the base commit's own record tell.
                Origin::Base { .. } if covered.is_none() => continue,
                Origin::Base { .. } | Origin::Workspace => {
                    (None, Contributor { kind: ContributorType::Unknown, model_id: None })
                }
            };
            groups.entry(key).or_default().push(line.number);
        }
        if groups.is_empty() {
            continue;
        }
        let mut conversations: Vec<Conversation> = groups
            .into_iter()
            .map(|((url, contributor), numbers)| Conversation {
                url,
                contributor,
                ranges: ranges(&numbers),
            })
            .collect();
        // In the order a reader meets them in the file.
        conversations.sort_by_key(|conversation| conversation.ranges[0].start_line);
        traces.push(FileTrace { path: file.path.clone(), conversations });
    }
    Ok(TraceRecord {
        version: VERSION,
        id: random_uuid(),
        timestamp: jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        vcs: revision.map(|commit| Vcs { kind: "git", revision: commit.to_string() }),
        tool: Tool { name: "cairn", version: env!("CARGO_PKG_VERSION") },
        files: traces,
    })
}

/// The record of a commit cairn landed: every line the commit added or changed (against
/// its first parent), attributed to the step that wrote it.
pub fn for_commit(store: &Store, commit: ObjectId) -> Result<TraceRecord> {
    let tree = store.step_tree(commit)?;
    let parent_tree = match store.parent_commit(commit)? {
        Some(parent) => Some(store.step_tree(parent)?),
        None => None,
    };
    let mut files = Vec::new();
    for change in checkpoint::diff_trees(store.repo(), parent_tree, Some(tree))? {
        let checkpoint::Change::Write {
            path,
            kind: EntryKind::Blob | EntryKind::BlobExecutable,
            ..
        } = change
        else {
            continue;
        };
        let path = path.to_string();
        let text = |tree| -> Result<Option<Vec<u8>>> { store.blob_at(tree, &path) };
        let new = text(tree)?.unwrap_or_default();
        let old = match parent_tree {
            Some(parent) => text(parent)?.unwrap_or_default(),
            None => Vec::new(),
        };
        if is_binary(&new) || is_binary(&old) {
            continue;
        }
        let (old, new) = (String::from_utf8_lossy(&old), String::from_utf8_lossy(&new));
        let covered = blame::added_lines(&old, &new);
        let lines = blame::blame(store, &path, &new, None)?;
        files.push(Attributed { path, lines, covered: Some(covered) });
    }
    record(store, &files, Some(commit))
}

/// Who a step's lines are from, read once per step commit.
struct StepContributors<'a> {
    store: &'a Store,
    seen: BTreeMap<String, Contributor>,
}

impl<'a> StepContributors<'a> {
    fn new(store: &'a Store) -> Self {
        StepContributors { store, seen: BTreeMap::new() }
    }

    fn of(&mut self, commit: &str) -> Result<Contributor> {
        if let Some(found) = self.seen.get(commit) {
            return Ok(found.clone());
        }
        let id = ObjectId::from_hex(commit.as_bytes()).context(|| format!("step {commit}"))?;
        let step = self.store.step_summary(id)?;
        let found = contributor(step.kind, step.agent.is_some(), step.model.as_deref());
        self.seen.insert(commit.to_string(), found.clone());
        Ok(found)
    }
}

/// The contributor of a step's lines: the user's edits are human; what cairn's agent
/// (or another agent recording through cairn) did is the model's; a checkpoint a person
/// took by hand may hold either, so it is unknown.
pub fn contributor(kind: StepKind, by_agent: bool, model: Option<&str>) -> Contributor {
    let kind = match kind {
        StepKind::UserEdits => ContributorType::Human,
        StepKind::Model | StepKind::Tool | StepKind::Rewind | StepKind::Compact => {
            ContributorType::Ai
        }
        StepKind::Prompt | StepKind::Manual if by_agent => ContributorType::Ai,
        StepKind::Prompt | StepKind::Manual => ContributorType::Unknown,
    };
    let model_id = match kind {
        ContributorType::Ai => model.filter(|model| valid_model_id(model)).map(str::to_string),
        _ => None,
    };
    Contributor { kind, model_id }
}

/// A model id as the spec allows it (at most 250 characters); a commit trailer is read
/// from history that may have been fetched, so control characters are refused too.
fn valid_model_id(model: &str) -> bool {
    !model.is_empty()
        && model.chars().count() <= MAX_MODEL_ID
        && !model.chars().any(char::is_control)
}

/// The URI naming a session: `cairn:session/<id>`, the id percent-encoded past RFC 3986's
/// unreserved characters.
pub fn session_url(id: &str) -> String {
    let mut url = String::from("cairn:session/");
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            url.push(byte as char);
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url
}

/// Sorted line numbers as runs of consecutive lines.
fn ranges(numbers: &[usize]) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::new();
    for &number in numbers {
        match out.last_mut() {
            Some(last) if last.end_line + 1 == number => last.end_line = number,
            _ => out.push(Range { start_line: number, end_line: number }),
        }
    }
    out
}

/// A version 4 UUID (random; uniqueness is all the record's `id` asks for).
fn random_uuid() -> String {
    let mut bits = fastrand::u128(..);
    bits = (bits & !(0xf << 76)) | (0x4 << 76);
    bits = (bits & !(0x3 << 62)) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_lines_make_one_range() {
        let got = ranges(&[1, 2, 3, 7, 9, 10]);
        let want = [(1, 3), (7, 7), (9, 10)];
        let got: Vec<(usize, usize)> = got.iter().map(|r| (r.start_line, r.end_line)).collect();
        assert_eq!(got, want);
        assert!(ranges(&[]).is_empty());
    }

    #[test]
    fn uuids_are_version_4_with_the_rfc_variant() {
        for _ in 0..64 {
            let id = random_uuid();
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{id}");
            assert!(parts[2].starts_with('4'), "{id}");
            assert!("89ab".contains(&parts[3][..1]), "{id}");
            assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{id}");
        }
    }

    #[test]
    fn session_ids_become_uri_safe() {
        assert_eq!(session_url("20260101-1200-ab12"), "cairn:session/20260101-1200-ab12");
        assert_eq!(session_url("a b/\"<x>"), "cairn:session/a%20b%2F%22%3Cx%3E");
    }

    #[test]
    fn contributors_follow_the_step_kind() {
        let ai = contributor(StepKind::Tool, false, Some("anthropic/claude"));
        assert_eq!(
            (ai.kind, ai.model_id.as_deref()),
            (ContributorType::Ai, Some("anthropic/claude"))
        );
        let human = contributor(StepKind::UserEdits, false, Some("anthropic/claude"));
        assert_eq!((human.kind, human.model_id), (ContributorType::Human, None));
        assert_eq!(contributor(StepKind::Manual, false, None).kind, ContributorType::Unknown);
        assert_eq!(contributor(StepKind::Manual, true, None).kind, ContributorType::Ai);
        let long = "m".repeat(MAX_MODEL_ID + 1);
        assert_eq!(contributor(StepKind::Model, false, Some(&long)).model_id, None);
        assert_eq!(contributor(StepKind::Model, false, Some("a\u{1b}[2J")).model_id, None);
    }
}
