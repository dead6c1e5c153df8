//! The review of a session, as data: its steps up to a checkpoint, the branches a rewind
//! archived (`refs/cairn/archive/<id>/<secs>`) as forks of that line, each step with the
//! messages it added, its model's token counts and its diff, and the session's totals.
//! `cairn export --format html` presents it; the Markdown and JSON exports use the plain
//! walk of [`session_steps`]. Nothing here knows about markup.
//!
//! Everything is read from history that may have come from someone else's repository:
//! diffs of very large files are left out, and each diff keeps a bounded amount of
//! unchanged context.

use std::collections::BTreeSet;

use gix::ObjectId;
use gix::objs::tree::EntryKind;
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use crate::checkpoint::{self, Result, SessionInfo, StepSummary, Store};
use crate::git::Context as _;
use crate::git::refs;
use crate::text::is_binary;

/// Files larger than this (on either side of a change) get no line diff on the page.
const MAX_DIFF_FILE_BYTES: usize = 1 << 20;
/// Unchanged lines kept around each change (the page shows a few, folds the rest).
const KEPT_CONTEXT: usize = 20;
/// Diff lines kept per file; the rest is counted, not shown.
const MAX_DIFF_LINES: usize = 4_000;

pub struct Review {
    pub session: SessionInfo,
    /// The steps from the session's first up to the exported checkpoint.
    pub steps: Vec<ReviewStep>,
    /// Archived branches, each forking from the main line or from an earlier fork.
    pub forks: Vec<Fork>,
    /// Archive refs of the session that could not be read, with why.
    pub unreadable: Vec<(String, String)>,
    pub totals: Totals,
}

pub struct ReviewStep {
    pub summary: StepSummary,
    /// The messages this step added to the conversation.
    pub messages: Vec<Value>,
    pub usage: Option<Usage>,
    pub files: Vec<FileDiff>,
}

pub use crate::llm::Usage;

/// An archived branch: the steps a rewind moved the session away from.
pub struct Fork {
    /// Its ref, `refs/cairn/archive/<id>/<secs>`.
    pub reference: String,
    /// When it was archived (the ref's `<secs>`), if the name says.
    pub archived_at: Option<i64>,
    pub parent: ForkParent,
    /// The last step it shares with its parent line (0: none, it forks from the base).
    pub after_step: u64,
    pub steps: Vec<ReviewStep>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkParent {
    Main,
    /// Index into [`Review::forks`] of an earlier fork.
    Fork(usize),
}

pub struct FileDiff {
    pub path: String,
    pub status: FileStatus,
    pub body: DiffBody,
    pub added: usize,
    pub removed: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    Added,
    Modified,
    Deleted,
}

pub enum DiffBody {
    Text(Vec<Hunk>),
    Binary,
    TooLarge,
}

/// A run of changes with the unchanged lines kept around it.
pub struct Hunk {
    /// First line numbers (1-based) and lengths, as a unified diff's `@@` header has them.
    pub old_start: usize,
    pub old_len: usize,
    pub new_start: usize,
    pub new_len: usize,
    pub lines: Vec<DiffLine>,
    /// Lines past [`MAX_DIFF_LINES`] that were dropped from this hunk.
    pub dropped: usize,
}

pub struct DiffLine {
    pub tag: ChangeTag,
    pub old_number: Option<usize>,
    pub new_number: Option<usize>,
    pub text: String,
}

#[derive(Default)]
pub struct Totals {
    /// The session's net change (its base to the exported step), file by file.
    pub files: Vec<(String, usize, usize)>,
    pub added: usize,
    pub removed: usize,
    /// Steps on the main line and on forks.
    pub steps: usize,
    pub first_time: Option<i64>,
    pub last_time: Option<i64>,
    pub models: Vec<String>,
}

/// Reads the review of `last`'s session, up to `last`.
pub fn collect(store: &Store, last: ObjectId) -> Result<Review> {
    let state = store.read_state(last)?;
    let main = store.steps_up_to(last)?;
    let steps = review_steps(store, &main, &state.messages, 0)?;

    let mut lines: Vec<Vec<ObjectId>> = vec![main.iter().map(|s| s.commit).collect()];
    let mut forks = Vec::new();
    let prefix = format!("{}{}/", refs::ARCHIVE_PREFIX, state.session.id);
    let mut archived = refs::list(store.repo(), &prefix)?;
    let archived_at =
        |name: &str| name.strip_prefix(&prefix).and_then(|secs| secs.parse::<i64>().ok());
    archived.sort_by_key(|(name, _)| archived_at(name.as_str()));
    let mut unreadable = Vec::new();
    for (reference, tip) in archived {
        // An archive ref may have been fetched from someone else: one that cannot be read
        // is named on the page instead of failing the whole review.
        match fork_of(store, &state.session.id, tip, &lines) {
            Ok(Some((fork, commits))) => {
                forks.push(Fork { archived_at: archived_at(&reference), reference, ..fork });
                lines.push(commits);
            }
            Ok(None) => {}
            Err(err) => unreadable.push((reference, err.to_string())),
        }
    }
    let totals = totals(store, &state.session, &main, &steps, &forks)?;
    Ok(Review { session: state.session, steps, forks, unreadable, totals })
}

/// The archived branch ending at `tip`, as a fork of the line (of `lines`: the main line,
/// then earlier forks) it shares the most steps with, and its commits; `None` when it
/// is another session's or holds no step of its own.
fn fork_of(
    store: &Store,
    session: &str,
    tip: ObjectId,
    lines: &[Vec<ObjectId>],
) -> Result<Option<(Fork, Vec<ObjectId>)>> {
    let branch = store.steps_up_to(tip)?;
    if branch.first().is_none_or(|step| step.session != session) {
        return Ok(None);
    }
    let commits: Vec<ObjectId> = branch.iter().map(|s| s.commit).collect();
    let (parent_line, shared) = lines
        .iter()
        .enumerate()
        .map(|(index, line)| (index, line.iter().zip(&commits).take_while(|(a, b)| a == b).count()))
        .max_by_key(|&(index, shared)| (shared, std::cmp::Reverse(index)))
        .unwrap_or((0, 0));
    if shared == commits.len() {
        return Ok(None);
    }
    let seen = match shared {
        0 => 0,
        n => store.message_count(commits[n - 1])?,
    };
    let messages = store.read_state(tip)?.messages;
    let fork = Fork {
        reference: String::new(),
        archived_at: None,
        parent: match parent_line {
            0 => ForkParent::Main,
            n => ForkParent::Fork(n - 1),
        },
        after_step: shared.checked_sub(1).map_or(0, |last| branch[last].step),
        steps: review_steps(store, &branch[shared..], &messages, seen)?,
    };
    Ok(Some((fork, commits)))
}

/// The steps of `last`'s session up to `last`, each with the messages it added: what the
/// Markdown and JSON exports show (with each step's diff, which the command line renders).
pub fn session_steps(store: &Store, last: ObjectId) -> Result<(SessionInfo, Vec<StepMessages>)> {
    // The conversation is append-only along a session's steps: read it once, at the last
    // step, and give each step the messages past its predecessor's count.
    let state = store.read_state(last)?;
    let steps = with_messages(store, &store.steps_up_to(last)?, &state.messages, 0)?;
    Ok((state.session, steps))
}

/// A step and the messages it added to the conversation.
pub struct StepMessages {
    pub summary: StepSummary,
    pub messages: Vec<Value>,
}

/// Each step with the messages past `seen` that it added (`messages` is the whole
/// conversation at the line's last step; a conversation only grows along a line, and a
/// fork's first step carries the conversation it was forked from).
fn with_messages(
    store: &Store,
    summaries: &[StepSummary],
    messages: &[Value],
    mut seen: usize,
) -> Result<Vec<StepMessages>> {
    let mut steps = Vec::new();
    for summary in summaries {
        let count = store.message_count(summary.commit)?;
        let added = messages.get(seen..count).unwrap_or_default().to_vec();
        seen = count;
        steps.push(StepMessages { summary: summary.clone(), messages: added });
    }
    Ok(steps)
}

/// Each step with the messages past `seen` that it added, its usage and its diff.
fn review_steps(
    store: &Store,
    summaries: &[StepSummary],
    messages: &[Value],
    seen: usize,
) -> Result<Vec<ReviewStep>> {
    let mut steps = Vec::new();
    for StepMessages { summary, messages } in with_messages(store, summaries, messages, seen)? {
        let (from, to) = step_trees(store, summary.commit)?;
        steps.push(ReviewStep {
            usage: usage(store, to)?,
            files: file_diffs(store, from, to)?,
            messages,
            summary,
        });
    }
    Ok(steps)
}

/// The model's token counts for a step, from its `step.json`; a count it leaves out is 0.
fn usage(store: &Store, tree: ObjectId) -> Result<Option<Usage>> {
    let Some(json) = store.blob_at(tree, ".cairn/state/step.json")? else { return Ok(None) };
    Ok(usage_of_step_json(&json))
}

/// The usage a `step.json` records, as bytes; bytes that are no JSON hold no usage.
fn usage_of_step_json(json: &[u8]) -> Option<Usage> {
    recorded_usage(&serde_json::from_slice(json).unwrap_or_default())
}

/// The usage a step's details (its parsed `step.json`) record: what `cairn log`, the run
/// total and every export format read. The file comes from a session that may be someone
/// else's: anything but a non-negative integer counts as absent, and a step with neither
/// an input nor an output count has no usage.
pub fn recorded_usage(details: &Value) -> Option<Usage> {
    let usage = &details["usage"];
    let count = |name: &str| usage[name].as_u64();
    match (count("input_tokens"), count("output_tokens")) {
        (None, None) => None,
        (input, output) => Some(Usage {
            input_tokens: input.unwrap_or(0),
            output_tokens: output.unwrap_or(0),
            cached_input_tokens: count("cached_input_tokens").unwrap_or(0),
            cache_write_input_tokens: count("cache_write_input_tokens").unwrap_or(0),
            reasoning_tokens: count("reasoning_tokens").unwrap_or(0),
        }),
    }
}

fn totals(
    store: &Store,
    session: &SessionInfo,
    main: &[StepSummary],
    steps: &[ReviewStep],
    forks: &[Fork],
) -> Result<Totals> {
    let mut totals = Totals::default();
    if let (Some(first), Some(last)) = (main.first(), main.last()) {
        let (base, _) = step_trees(store, first.commit)?;
        let (_, tip) = step_trees(store, last.commit)?;
        for file in file_diffs(store, base, tip)? {
            totals.added += file.added;
            totals.removed += file.removed;
            totals.files.push((file.path, file.added, file.removed));
        }
    }
    let mut models = BTreeSet::new();
    models.extend(session.model.clone());
    for step in steps.iter().chain(forks.iter().flat_map(|fork| &fork.steps)) {
        totals.steps += 1;
        let time = step.summary.time;
        totals.first_time = Some(totals.first_time.map_or(time, |t| t.min(time)));
        totals.last_time = Some(totals.last_time.map_or(time, |t| t.max(time)));
        models.extend(step.summary.model.clone());
    }
    totals.models = models.into_iter().collect();
    Ok(totals)
}

/// What changed from `from` to `to`, file by file (`.cairn/` left out), sorted by path.
fn file_diffs(store: &Store, from: Option<ObjectId>, to: ObjectId) -> Result<Vec<FileDiff>> {
    let repo = store.repo();
    let mut files = Vec::new();
    for change in checkpoint::diff_trees(repo, from, Some(to))? {
        let (path, status, new) = match change {
            checkpoint::Change::Delete { kind: EntryKind::Tree, .. } => continue,
            checkpoint::Change::Delete { path, .. } => (path, FileStatus::Deleted, None),
            checkpoint::Change::Write { path, kind, id, existed } => {
                let status = if existed { FileStatus::Modified } else { FileStatus::Added };
                (path, status, Some(side(repo, kind, id)?))
            }
        };
        let path = path.to_string();
        let old = match (status, from) {
            (FileStatus::Added, _) | (_, None) => None,
            (_, Some(tree)) => store.blob_at(tree, &path)?,
        };
        files.push(file_diff(path, status, old.unwrap_or_default(), new.unwrap_or_default()));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// A tree entry's content as the diff shows it (a submodule as its commit line).
fn side(repo: &gix::Repository, kind: EntryKind, id: ObjectId) -> Result<Vec<u8>> {
    match kind {
        EntryKind::Commit => Ok(format!("Subproject commit {id}\n").into_bytes()),
        _ => Ok(repo.find_blob(id).context(|| format!("reading blob {id}"))?.data.clone()),
    }
}

/// The trees a step's diff compares: its parent's (the previous step, or the base commit
/// for step 1) and its own.
fn step_trees(store: &Store, commit: ObjectId) -> Result<(Option<ObjectId>, ObjectId)> {
    let parent = match store.parent_commit(commit)? {
        Some(parent) => Some(store.step_tree(parent)?),
        None => None,
    };
    Ok((parent, store.step_tree(commit)?))
}

pub fn file_diff(path: String, status: FileStatus, old: Vec<u8>, new: Vec<u8>) -> FileDiff {
    let mut file = FileDiff { path, status, body: DiffBody::Binary, added: 0, removed: 0 };
    if is_binary(&old) || is_binary(&new) {
        return file;
    }
    if old.len() > MAX_DIFF_FILE_BYTES || new.len() > MAX_DIFF_FILE_BYTES {
        file.body = DiffBody::TooLarge;
        return file;
    }
    let (old, new) = (String::from_utf8_lossy(&old), String::from_utf8_lossy(&new));
    let diff = TextDiff::from_lines(old.as_ref(), new.as_ref());
    let mut hunks = Vec::new();
    let mut kept = 0;
    for group in diff.grouped_ops(KEPT_CONTEXT) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else { continue };
        let (old_range, new_range) = (
            first.old_range().start..last.old_range().end,
            first.new_range().start..last.new_range().end,
        );
        let mut hunk = Hunk {
            old_start: old_range.start + 1,
            old_len: old_range.len(),
            new_start: new_range.start + 1,
            new_len: new_range.len(),
            lines: Vec::new(),
            dropped: 0,
        };
        for op in &group {
            for change in diff.iter_changes(op) {
                match change.tag() {
                    ChangeTag::Insert => file.added += 1,
                    ChangeTag::Delete => file.removed += 1,
                    ChangeTag::Equal => {}
                }
                if kept >= MAX_DIFF_LINES {
                    hunk.dropped += 1;
                    continue;
                }
                kept += 1;
                hunk.lines.push(DiffLine {
                    tag: change.tag(),
                    old_number: change.old_index().map(|i| i + 1),
                    new_number: change.new_index().map(|i| i + 1),
                    text: change.value().trim_end_matches(['\n', '\r']).to_string(),
                });
            }
        }
        hunks.push(hunk);
    }
    file.body = DiffBody::Text(hunks);
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize, changed: Option<usize>) -> Vec<u8> {
        (1..=n)
            .map(
                |i| {
                    if Some(i) == changed {
                        format!("changed {i}\n")
                    } else {
                        format!("line {i}\n")
                    }
                },
            )
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn a_change_keeps_bounded_context_and_counts_its_lines() {
        let file =
            file_diff("f".into(), FileStatus::Modified, lines(100, None), lines(100, Some(50)));
        assert_eq!((file.added, file.removed), (1, 1));
        let DiffBody::Text(hunks) = file.body else { panic!("a text diff") };
        assert_eq!(hunks.len(), 1);
        let hunk = &hunks[0];
        assert_eq!((hunk.old_start, hunk.old_len, hunk.new_start, hunk.new_len), (30, 41, 30, 41));
        assert_eq!(hunk.lines.len(), 42);
        let changed: Vec<&DiffLine> =
            hunk.lines.iter().filter(|l| l.tag != ChangeTag::Equal).collect();
        assert_eq!(changed[0].text, "line 50");
        assert_eq!((changed[0].old_number, changed[0].new_number), (Some(50), None));
        assert_eq!(changed[1].text, "changed 50");
        assert_eq!((changed[1].old_number, changed[1].new_number), (None, Some(50)));
    }

    #[test]
    fn binary_and_huge_files_get_no_line_diff() {
        let binary = file_diff("b".into(), FileStatus::Added, Vec::new(), b"a\0b".to_vec());
        assert!(matches!(binary.body, DiffBody::Binary));
        let huge = vec![b'x'; MAX_DIFF_FILE_BYTES + 1];
        let large = file_diff("l".into(), FileStatus::Added, Vec::new(), huge);
        assert!(matches!(large.body, DiffBody::TooLarge));
    }

    #[test]
    fn a_diff_stops_after_its_line_budget_but_counts_everything() {
        let new: String = (0..MAX_DIFF_LINES + 10).map(|i| format!("{i}\n")).collect();
        let file = file_diff("n".into(), FileStatus::Added, Vec::new(), new.into_bytes());
        assert_eq!(file.added, MAX_DIFF_LINES + 10);
        let DiffBody::Text(hunks) = file.body else { panic!("a text diff") };
        assert_eq!(hunks[0].lines.len(), MAX_DIFF_LINES);
        assert_eq!(hunks[0].dropped, 10);
    }

    #[test]
    fn a_crafted_step_json_gives_no_usage_or_zeros_never_a_panic() {
        for hostile in [
            b"not json at all".as_slice(),
            b"",
            br#"{"usage": "lots"}"#,
            br#"{"usage": {"input_tokens": "1e9", "output_tokens": -5}}"#,
            br#"{"usage": [1, 2, 3]}"#,
        ] {
            assert!(usage_of_step_json(hostile).is_none(), "{}", String::from_utf8_lossy(hostile));
        }
        let crafted = br#"{"usage": {"input_tokens": 18446744073709551615, "output_tokens": 1.5,
            "cached_input_tokens": {"x": 1}, "reasoning_tokens": -1}}"#;
        let usage = usage_of_step_json(crafted).expect("the one good count is kept");
        assert_eq!(usage.input_tokens, u64::MAX);
        assert_eq!(
            (usage.output_tokens, usage.cached_input_tokens, usage.reasoning_tokens),
            (0, 0, 0)
        );
    }
}
