//! What a write would change, shown before it is approved: a unified diff of the file as it
//! is against the file as the call would leave it. The call is checked as it would be when
//! it runs, so a call that would fail fails here, before anyone is asked about it.

use std::path::Path;

use similar::TextDiff;

use super::args::Args;
use super::paths::Workspace;
use super::{edit_file, write_file};

/// Lines of diff shown; the rest is counted.
const MAX_LINES: usize = 200;

/// The diff `name` would make with `arguments`, `None` for a tool that writes no file, or
/// the error the call would fail with.
pub fn preview(
    name: &str,
    arguments: &serde_json::Value,
    root: &Path,
) -> Option<Result<String, String>> {
    if !matches!(name, "write_file" | "edit_file") {
        return None;
    }
    Some(planned_diff(name, arguments, root).map_err(|message| format!("{name}: {message}")))
}

fn planned_diff(name: &str, arguments: &serde_json::Value, root: &Path) -> Result<String, String> {
    let args = Args::parse(arguments)?;
    let workspace = Workspace::new(root)
        .map_err(|err| format!("the workspace root {} is not accessible: {err}", root.display()))?;
    if name == "edit_file" {
        let edit = edit_file::plan(&args, &workspace)?;
        return Ok(diff(&edit.target.display(), &edit.content, &edit.updated));
    }
    let write = write_file::plan(&args, &workspace)?;
    let shown = write.target.display();
    let before = match write.existing {
        Some(_) => std::fs::read(&write.target.abs)
            .map_err(|err| format!("cannot read `{shown}`: {err}"))?,
        None => Vec::new(),
    };
    Ok(diff(&shown, &String::from_utf8_lossy(&before), &write.content))
}

/// A unified diff with three lines of context, at most [`MAX_LINES`] lines long.
fn diff(path: &str, before: &str, after: &str) -> String {
    if before == after {
        return format!("{path}: no change\n");
    }
    let text = TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string();
    let total = text.lines().count();
    if total <= MAX_LINES {
        return text;
    }
    let mut shown: String = text.lines().take(MAX_LINES).flat_map(|line| [line, "\n"]).collect();
    shown.push_str(&format!("[… {} more lines of diff …]\n", total - MAX_LINES));
    shown
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_write_shows_its_diff_and_a_bad_call_its_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "one\ntwo\nthree\n").unwrap();
        let edit = json!({"path": "a.txt", "old_string": "two", "new_string": "2"});
        let shown = preview("edit_file", &edit, dir.path()).unwrap().unwrap();
        assert_eq!(shown, "--- a/a.txt\n+++ b/a.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+2\n three\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("a.txt")).unwrap(), "one\ntwo\nthree\n");

        let create = json!({"path": "new.txt", "content": "hello\n"});
        let shown = preview("write_file", &create, dir.path()).unwrap().unwrap();
        assert_eq!(shown, "--- a/new.txt\n+++ b/new.txt\n@@ -0,0 +1 @@\n+hello\n");
        assert!(!dir.path().join("new.txt").exists());

        let missing = json!({"path": "a.txt", "old_string": "four", "new_string": "4"});
        let error = preview("edit_file", &missing, dir.path()).unwrap().unwrap_err();
        assert!(error.starts_with("edit_file: `old_string` was not found in `a.txt`."), "{error}");
        let outside = json!({"path": "../x", "content": ""});
        assert!(preview("write_file", &outside, dir.path()).unwrap().is_err());
        assert!(preview("shell", &json!({"command": "ls"}), dir.path()).is_none());
    }

    #[test]
    fn a_long_diff_is_cut_with_the_rest_counted() {
        let dir = tempfile::tempdir().unwrap();
        let content: String = (0..500).map(|n| format!("line {n}\n")).collect();
        let shown =
            preview("write_file", &json!({"path": "big.txt", "content": content}), dir.path())
                .unwrap()
                .unwrap();
        assert_eq!(shown.lines().count(), MAX_LINES + 1);
        assert!(
            shown.ends_with("[… 303 more lines of diff …]\n"),
            "{}",
            &shown[shown.len() - 80..]
        );
    }
}
