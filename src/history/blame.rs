//! Which step wrote each line of a file, across every session that touched it.
//!
//! Every step that changed the file is an event, and the events of all sessions are
//! replayed in time order as one line of versions (they all happened to one workspace, or
//! to clones of it): each version keeps the origin of the lines a diff aligns with the
//! version before, and its other lines take the step that wrote them — when that step
//! really added them relative to its own parent; a line a step merely carried over from
//! its base (a session started while another's edits were on disk) keeps the origin that
//! line had. Lines of the file now that no step wrote come from the base commit (`HEAD`)
//! when it holds them, and are otherwise edits not recorded yet.

use gix::ObjectId;
use serde::Serialize;
use similar::{ChangeTag, TextDiff};

use crate::checkpoint::{Result, StepKind, Store};

/// Who wrote one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "origin")]
pub enum Origin {
    Step {
        session: String,
        step: u64,
        kind: StepKind,
        commit: String,
    },
    /// The line is in the user's `HEAD` commit and no step added it.
    Base {
        commit: String,
    },
    /// No recorded step or commit holds it: an edit not recorded yet.
    Workspace,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlamedLine {
    pub number: usize,
    pub text: String,
    #[serde(flatten)]
    pub origin: Origin,
}

/// One step's change to the file.
struct Event {
    /// When the step was recorded, in milliseconds (commit time for steps that predate
    /// `recorded_at_ms`).
    time_ms: i64,
    session: String,
    step: u64,
    kind: StepKind,
    commit: ObjectId,
    old: String,
    new: String,
}

/// Blames `content`, the file at `path` as it is now (in the workspace, or at a
/// checkpoint recorded at `until`, in milliseconds; later steps are then left out).
pub fn blame(
    store: &Store,
    path: &str,
    content: &str,
    until: Option<i64>,
) -> Result<Vec<BlamedLine>> {
    let mut events = changes_to(store, path)?;
    events.retain(|event| until.is_none_or(|until| event.time_ms <= until));
    events.sort_by(|a, b| (a.time_ms, &a.session, a.step).cmp(&(b.time_ms, &b.session, b.step)));

    let mut version = Version::default();
    for event in &events {
        let added = added_lines(&event.old, &event.new);
        let origin = Origin::Step {
            session: event.session.clone(),
            step: event.step,
            kind: event.kind,
            commit: event.commit.to_string(),
        };
        version = version.next(&event.new, |index, line, previous| {
            if added[index] { Some(origin.clone()) } else { previous.origin_of(line) }
        });
    }

    let head = store.repo().head_id().ok().map(|id| id.detach());
    let base_text = match head {
        Some(commit) => text_at(store, commit, path)?.unwrap_or_default(),
        None => String::new(),
    };
    let base_lines: Vec<&str> = base_text.split_inclusive('\n').collect();
    let now = version.next(content, |_, line, previous| previous.origin_of(line));
    Ok(now
        .lines
        .into_iter()
        .enumerate()
        .map(|(index, (text, origin))| {
            let origin = origin.unwrap_or_else(|| match head {
                Some(commit) if base_lines.contains(&text.as_str()) => {
                    Origin::Base { commit: commit.to_string() }
                }
                _ => Origin::Workspace,
            });
            BlamedLine { number: index + 1, text: text.trim_end_matches('\n').to_string(), origin }
        })
        .collect())
}

/// The file at one point of the replay, each line with its origin (`None`: no step).
#[derive(Default)]
struct Version {
    lines: Vec<(String, Option<Origin>)>,
}

impl Version {
    /// The version with `text`: lines aligned with this one keep their origin, the others
    /// get `fresh(index, line, self)`.
    fn next(&self, text: &str, fresh: impl Fn(usize, &str, &Version) -> Option<Origin>) -> Version {
        let old: String = self.lines.iter().map(|(line, _)| line.as_str()).collect();
        let mut lines: Vec<(String, Option<Origin>)> =
            text.split_inclusive('\n').map(|line| (line.to_string(), None)).collect();
        let mut kept = vec![false; lines.len()];
        for (new_index, old_index) in aligned_lines(text, &old) {
            lines[new_index].1 = self.lines[old_index].1.clone();
            kept[new_index] = true;
        }
        for (index, (line, origin)) in lines.iter_mut().enumerate() {
            if !kept[index] {
                *origin = fresh(index, line, self);
            }
        }
        Version { lines }
    }

    /// The origin of an identical line elsewhere in this version.
    fn origin_of(&self, line: &str) -> Option<Origin> {
        self.lines.iter().find(|(text, _)| text == line).and_then(|(_, origin)| origin.clone())
    }
}

/// Every step of every session that changed `path`.
fn changes_to(store: &Store, path: &str) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    for session in store.sessions()? {
        let steps = store.steps(&session.id)?;
        let Some(first) = steps.first() else { continue };
        // The file in the session's base: the parent of its first step.
        let mut previous = match store.parent_commit(first.commit)? {
            Some(parent) => text_at(store, parent, path)?,
            None => None,
        };
        for step in steps {
            let commit = step.commit;
            let now = text_at(store, commit, path)?;
            if now != previous
                && let Some(new) = &now
            {
                events.push(Event {
                    time_ms: recorded_at_ms(store, commit)?.unwrap_or(step.time * 1000),
                    session: session.id.clone(),
                    step: step.step,
                    kind: step.kind,
                    commit,
                    old: previous.clone().unwrap_or_default(),
                    new: new.clone(),
                });
            }
            previous = now;
        }
    }
    Ok(events)
}

/// The `recorded_at_ms` of a step's `step.json`.
pub fn recorded_at_ms(store: &Store, commit: ObjectId) -> Result<Option<i64>> {
    let Some(json) = text_at(store, commit, ".cairn/state/step.json")? else { return Ok(None) };
    let value: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    Ok(value["recorded_at_ms"].as_i64())
}

fn text_at(store: &Store, commit: ObjectId, path: &str) -> Result<Option<String>> {
    let tree = store.step_tree(commit)?;
    Ok(store.blob_at(tree, path).unwrap_or(None).map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// For each line of `new`, whether the step added it (it is not an unchanged line of `old`).
pub fn added_lines(old: &str, new: &str) -> Vec<bool> {
    let mut added = vec![true; new.split_inclusive('\n').count()];
    for (line_of_new, _) in aligned_lines(new, old) {
        added[line_of_new] = false;
    }
    added
}

/// Pairs of (line of `target`, line of `source`) that a line diff keeps as equal.
fn aligned_lines(target: &str, source: &str) -> Vec<(usize, usize)> {
    let diff = TextDiff::from_lines(source, target);
    diff.iter_all_changes()
        .filter(|change| change.tag() == ChangeTag::Equal)
        .filter_map(|change| Some((change.new_index()?, change.old_index()?)))
        .collect()
}
