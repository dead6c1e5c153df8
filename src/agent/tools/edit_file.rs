//! `edit_file {path, old_string, new_string, replace_all?}`: exact string replacement.
//!
//! Exactness is the point: the model must quote the text it means, so an edit never lands
//! somewhere it did not look. When the quote does not match, the error says what would help
//! the model fix its call: how many matches and on which lines when it is not unique, and
//! when it is missing, whether it matches once whitespace is ignored (a common slip with
//! indentation) or where its first line occurs. The file is replaced atomically.

use std::fs;
use std::io;

use serde_json::json;

use super::args::Args;
use super::paths::{Resolved, Workspace};
use super::write_file::atomic_write;
use super::{Access, ToolOutput, ToolSpec};

/// How many match lines a "not unique" error lists.
const MAX_LISTED: usize = 20;
/// Above this size the whitespace-insensitive hint is skipped (it maps every byte).
const MAX_HINT_BYTES: usize = 4 << 20;

pub(super) fn spec() -> ToolSpec {
    ToolSpec {
        name: "edit_file",
        description: "Replace the exact text `old_string` with `new_string` in a file. `old_string` \
            must match the file exactly (including indentation and line breaks) and must occur exactly \
            once, unless `replace_all` is true; include enough surrounding lines to make it unique. \
            Read the file first. To create a file use write_file.",
        parameters: json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "File path relative to the workspace root"},
                "old_string": {"type": "string", "description": "The exact text to replace"},
                "new_string": {"type": "string", "description": "The text to put in its place"},
                "replace_all": {"type": "boolean", "description": "Replace every occurrence (default false)"}
            },
            "required": ["path", "old_string", "new_string"]
        }),
        access: Access::Write,
    }
}

/// An edit checked against the file as it is now, not yet written.
pub(super) struct PlannedEdit {
    pub(super) target: Resolved,
    pub(super) content: String,
    pub(super) updated: String,
    new_len: usize,
    old_len: usize,
    starts: Vec<usize>,
}

pub(super) fn run(args: &Args, workspace: &Workspace) -> Result<ToolOutput, String> {
    apply(plan(args, workspace)?)
}

/// Reads the file and finds where the edit goes, writing nothing: every mistake in the call
/// is found here, so an approval question is asked only about an edit that can happen.
pub(super) fn plan(args: &Args, workspace: &Workspace) -> Result<PlannedEdit, String> {
    let path = args.string("path")?;
    let old = args.string("old_string")?;
    let new = args.string("new_string")?;
    let replace_all = args.opt_bool("replace_all")?.unwrap_or(false);
    if old.is_empty() {
        return Err("`old_string` is empty; to create a file or replace all of it, use write_file"
            .to_string());
    }
    if old == new {
        return Err(
            "`old_string` and `new_string` are the same; there is nothing to change".to_string()
        );
    }
    let target = workspace.resolve(&path)?;
    let shown = target.display();
    let bytes = fs::read(&target.abs).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => format!("`{shown}` does not exist; use write_file to create it"),
        io::ErrorKind::IsADirectory => format!("`{shown}` is a directory"),
        _ => format!("cannot read `{shown}`: {err}"),
    })?;
    let content = String::from_utf8(bytes)
        .map_err(|_| format!("`{shown}` is not UTF-8 text; edit_file edits text files only"))?;

    let starts: Vec<usize> = content.match_indices(old.as_str()).map(|(start, _)| start).collect();
    if starts.is_empty() {
        return Err(not_found(&content, &old, &shown));
    }
    if starts.len() > 1 && !replace_all {
        let lines = line_numbers(&content, &starts);
        let mut listed: Vec<String> = lines.iter().take(MAX_LISTED).map(u64::to_string).collect();
        if lines.len() > MAX_LISTED {
            listed.push("…".to_string());
        }
        return Err(format!(
            "`old_string` occurs {} times in `{shown}` (at lines {}); include more surrounding lines \
             to make it unique, or set replace_all to true to replace every occurrence",
            starts.len(),
            listed.join(", ")
        ));
    }

    let updated = content.replace(old.as_str(), &new);
    Ok(PlannedEdit { target, content, updated, new_len: new.len(), old_len: old.len(), starts })
}

/// Writes a planned edit and says where the new text is.
fn apply(edit: PlannedEdit) -> Result<ToolOutput, String> {
    let PlannedEdit { target, updated, new_len, old_len, starts, .. } = edit;
    let shown = target.display();
    atomic_write(&target.abs, updated.as_bytes())
        .map_err(|err| format!("cannot write `{shown}`: {err}"))?;

    // Where the new text sits in the updated file: everything before the first match is
    // unchanged, and each earlier replacement shifted the last one by the size difference.
    let (first, last) = (starts[0], starts[starts.len() - 1]);
    let shift = (starts.len() - 1) as isize * (new_len as isize - old_len as isize);
    let last_new_start = last.saturating_add_signed(shift);
    let first_line = line_numbers(&updated, &[first])[0];
    let new_text = &updated[first..first + new_len];
    let last_line = line_numbers(&updated, &[last_new_start])[0]
        + new_text.trim_end_matches('\n').matches('\n').count() as u64;
    let range = if first_line == last_line {
        format!("line {first_line}")
    } else {
        format!("lines {first_line}–{last_line}")
    };
    let message = match (starts.len(), new_len == 0) {
        (1, true) => format!("removed 1 occurrence from `{shown}` at {range}"),
        (1, false) => format!("replaced 1 occurrence in `{shown}`; the new text is at {range}"),
        (n, _) => format!("replaced {n} occurrences in `{shown}`, within {range}"),
    };
    Ok(ToolOutput { changed_paths: vec![target.rel], ..ToolOutput::text(message) })
}

/// The 1-based line of each byte offset in `starts` (ascending), counted in one pass.
fn line_numbers(text: &str, starts: &[usize]) -> Vec<u64> {
    let bytes = text.as_bytes();
    let mut line = 1u64;
    let mut position = 0;
    starts
        .iter()
        .map(|&start| {
            line += bytes[position..start].iter().filter(|&&b| b == b'\n').count() as u64;
            position = start;
            line
        })
        .collect()
}

/// The error for an `old_string` that does not occur, with the best hint available.
fn not_found(content: &str, old: &str, shown: &str) -> String {
    let mut message = format!("`old_string` was not found in `{shown}`.");
    if let Some(start) = whitespace_insensitive_match(content, old) {
        let line = line_numbers(content, &[start])[0];
        let text = content.lines().nth(line as usize - 1).unwrap_or_default();
        message.push_str(&format!(
            " It matches if whitespace is ignored, starting at line {line}:\n{line:>6}\t{text}\n\
             Copy the text exactly as read_file shows it (indentation, tabs, line breaks)."
        ));
        return message;
    }
    let first_line = old.lines().map(str::trim).find(|line| !line.is_empty());
    let occurrences: Vec<String> = match first_line {
        Some(first_line) => content
            .lines()
            .enumerate()
            .filter(|(_, line)| line.contains(first_line))
            .take(MAX_LISTED)
            .map(|(index, _)| (index + 1).to_string())
            .collect(),
        None => Vec::new(),
    };
    if let (Some(first_line), false) = (first_line, occurrences.is_empty()) {
        message.push_str(&format!(
            " Its first line `{first_line}` occurs at line {}, but what follows differs; read the file again and quote it exactly.",
            occurrences.join(", ")
        ));
    } else {
        message.push_str(" Read the file again: it may differ from what you expect.");
    }
    message
}

/// Where `old` occurs in `content` once every run of whitespace in both counts as one
/// space (and `old` is trimmed): the byte offset in `content`, if any.
fn whitespace_insensitive_match(content: &str, old: &str) -> Option<usize> {
    if content.len() > MAX_HINT_BYTES {
        return None;
    }
    let (needle, _) = collapse_whitespace(old.trim());
    if needle.is_empty() {
        return None;
    }
    let (haystack, offsets) = collapse_whitespace(content);
    haystack.find(&needle).map(|index| offsets[index])
}

/// `text` with whitespace runs collapsed to one space, and for each byte of the result the
/// offset in `text` it came from.
fn collapse_whitespace(text: &str) -> (String, Vec<usize>) {
    let mut collapsed = String::with_capacity(text.len());
    let mut offsets = Vec::with_capacity(text.len());
    let mut in_space = false;
    for (offset, c) in text.char_indices() {
        if c.is_whitespace() {
            if !in_space {
                collapsed.push(' ');
                offsets.push(offset);
            }
            in_space = true;
        } else {
            collapsed.push(c);
            offsets.extend(std::iter::repeat_n(offset, c.len_utf8()));
            in_space = false;
        }
    }
    (collapsed, offsets)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use super::*;

    const SOURCE: &str = "fn main() {\n    let x = 1;\n    println!(\"{x}\");\n}\n\nfn other() {\n    let x = 1;\n}\n";

    fn setup() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("main.rs"), SOURCE).unwrap();
        dir
    }

    fn edit(root: &Path, arguments: serde_json::Value) -> Result<ToolOutput, String> {
        run(&Args::parse(&arguments).unwrap(), &Workspace::new(root).unwrap())
    }

    fn file(dir: &tempfile::TempDir) -> String {
        fs::read_to_string(dir.path().join("main.rs")).unwrap()
    }

    #[test]
    fn replaces_a_unique_match_and_states_where() {
        let dir = setup();
        let out = edit(
            dir.path(),
            json!({"path": "main.rs", "old_string": "println!(\"{x}\");", "new_string": "let y = x + 1;\n    println!(\"{y}\");"}),
        )
        .unwrap();
        assert_eq!(out.content, "replaced 1 occurrence in `main.rs`; the new text is at lines 3–4");
        assert_eq!(out.changed_paths, vec![PathBuf::from("main.rs")]);
        assert_eq!(
            file(&dir),
            SOURCE.replace("println!(\"{x}\");", "let y = x + 1;\n    println!(\"{y}\");")
        );
    }

    #[test]
    fn a_match_that_is_not_unique_is_refused_with_count_and_lines() {
        let dir = setup();
        let err = edit(
            dir.path(),
            json!({"path": "main.rs", "old_string": "let x = 1;", "new_string": "let x = 2;"}),
        )
        .unwrap_err();
        assert!(
            err.starts_with(
                "`old_string` occurs 2 times in `main.rs` (at lines 2, 7); include more"
            ),
            "{err}"
        );
        assert_eq!(file(&dir), SOURCE, "nothing written");
    }

    #[test]
    fn replace_all_replaces_every_match() {
        let dir = setup();
        let out = edit(
            dir.path(),
            json!({"path": "main.rs", "old_string": "let x = 1;", "new_string": "let x = 2;", "replace_all": true}),
        )
        .unwrap();
        assert_eq!(out.content, "replaced 2 occurrences in `main.rs`, within lines 2–7");
        assert_eq!(file(&dir), SOURCE.replace("let x = 1;", "let x = 2;"));
    }

    #[test]
    fn deletions_and_line_changes_before_the_last_match_are_located() {
        let dir = setup();
        let out = edit(
            dir.path(),
            json!({"path": "main.rs", "old_string": "    let x = 1;\n", "new_string": "", "replace_all": true}),
        )
        .unwrap();
        assert_eq!(out.content, "replaced 2 occurrences in `main.rs`, within lines 2–6");
        let out = edit(
            dir.path(),
            json!({"path": "main.rs", "old_string": "\nfn other() {\n}\n", "new_string": ""}),
        )
        .unwrap();
        assert_eq!(out.content, "removed 1 occurrence from `main.rs` at line 4");
        assert_eq!(file(&dir), "fn main() {\n    println!(\"{x}\");\n}\n");
    }

    #[test]
    fn a_missing_match_says_whether_whitespace_is_the_difference() {
        let dir = setup();
        let err = edit(dir.path(), json!({"path": "main.rs", "old_string": "fn other() {\n  let x = 1;", "new_string": "z"}))
            .unwrap_err();
        assert!(err.starts_with("`old_string` was not found in `main.rs`. It matches if whitespace is ignored, starting at line 6:\n     6\tfn other() {\n"), "{err}");

        let err = edit(dir.path(), json!({"path": "main.rs", "old_string": "fn other() {\n    return;", "new_string": "z"}))
            .unwrap_err();
        assert!(
            err.contains(
                "Its first line `fn other() {` occurs at line 6, but what follows differs"
            ),
            "{err}"
        );

        let err = edit(
            dir.path(),
            json!({"path": "main.rs", "old_string": "nowhere", "new_string": "z"}),
        )
        .unwrap_err();
        assert!(err.ends_with("Read the file again: it may differ from what you expect."), "{err}");
        assert_eq!(file(&dir), SOURCE);
    }

    #[test]
    fn pointless_or_impossible_edits_are_errors() {
        let dir = setup();
        let cases = [
            (
                json!({"path": "main.rs", "old_string": "", "new_string": "x"}),
                "`old_string` is empty",
            ),
            (
                json!({"path": "main.rs", "old_string": "main", "new_string": "main"}),
                "are the same",
            ),
            (
                json!({"path": "new.rs", "old_string": "a", "new_string": "b"}),
                "use write_file to create it",
            ),
            (json!({"path": ".", "old_string": "a", "new_string": "b"}), "is a directory"),
            (json!({"path": "main.rs", "old_string": "a"}), "missing required field `new_string`"),
            (
                json!({"path": "main.rs", "old_string": "a", "new_string": "b", "replace_all": 1}),
                "true or false",
            ),
        ];
        for (arguments, why) in cases {
            let err = edit(dir.path(), arguments.clone()).unwrap_err();
            assert!(err.contains(why), "{arguments}: {err}");
        }
        fs::write(dir.path().join("blob"), b"\xff\xfe").unwrap();
        let err = edit(dir.path(), json!({"path": "blob", "old_string": "a", "new_string": "b"}))
            .unwrap_err();
        assert!(err.contains("not UTF-8 text"), "{err}");
        assert_eq!(file(&dir), SOURCE);
    }

    #[test]
    fn keeps_the_executable_bit() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("run.sh");
        fs::write(&script, "echo a\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        edit(dir.path(), json!({"path": "run.sh", "old_string": "a", "new_string": "b"})).unwrap();
        assert_eq!(fs::metadata(&script).unwrap().permissions().mode() & 0o777, 0o755);
        assert_eq!(fs::read_to_string(&script).unwrap(), "echo b\n");
    }

    #[test]
    fn collapse_whitespace_maps_back_to_original_offsets() {
        let (collapsed, offsets) = collapse_whitespace("a \t\n é b");
        assert_eq!(collapsed, "a é b");
        assert_eq!(offsets, [0, 1, 5, 5, 7, 8]);
    }
}
