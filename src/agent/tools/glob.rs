//! `glob {pattern, path?}`: workspace files whose path matches a glob, gitignore-aware.
//!
//! Walking and ignore rules come from the `ignore` crate (ripgrep's): `.gitignore` at every
//! level, `.git/info/exclude`, the global excludes file and `.ignore`, hidden files
//! included, `.git` and the reserved `.cairn` never entered. [`walk`] is shared with
//! `grep` so both tools see the same files. Matching uses `globset`, with `*` stopping at
//! `/` and `**` crossing directories, as in `.gitignore`.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};
use ignore::{DirEntry, Walk, WalkBuilder};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::args::Args;
use super::paths::{Resolved, Workspace};
use super::{Access, ToolOutput, ToolSpec};
use crate::checkpoint::RESERVED_DIR;

const MAX_RESULTS: usize = 1000;

pub(super) fn spec() -> ToolSpec {
    ToolSpec {
        name: "glob",
        description: "List workspace files whose path matches a glob pattern, sorted, skipping files \
            ignored by git. `*` matches within one directory level and `**` across levels: \
            `**/*.rs` finds Rust files anywhere, `src/*.rs` only directly in src. The pattern is \
            matched against paths relative to `path` (default: the workspace root).",
        parameters: json!({
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "Glob pattern, e.g. `**/*.rs` or `src/**/test_*.py`"},
                "path": {"type": "string", "description": "Directory to search, relative to the workspace root (default: the root)"}
            },
            "required": ["pattern"]
        }),
        access: Access::Read,
    }
}

pub(super) fn run(
    args: &Args,
    workspace: &Workspace,
    cancel: &CancellationToken,
) -> Result<ToolOutput, String> {
    let pattern = args.string("pattern")?;
    let dir = workspace.resolve(&args.opt_string("path")?.unwrap_or_default())?;
    if !dir.abs.is_dir() {
        return Err(format!(
            "`{}` is not a directory; `path` names the directory to search",
            dir.display()
        ));
    }
    let matcher = compile(&pattern)?;
    let mut found = Vec::new();
    let mut unreadable = 0usize;
    for entry in walk(workspace, &dir) {
        if cancel.is_cancelled() {
            return Err("cancelled".to_string());
        }
        let Ok(entry) = entry else {
            unreadable += 1;
            continue;
        };
        if entry.file_type().is_none_or(|kind| kind.is_dir()) {
            continue;
        }
        let under_dir = entry.path().strip_prefix(&dir.abs).unwrap_or(entry.path());
        let under_root = entry.path().strip_prefix(workspace.root()).unwrap_or(entry.path());
        if matcher.is_match(under_dir) || matcher.is_match(under_root) {
            found.push(under_root.display().to_string());
        }
    }
    found.sort();
    let total = found.len();
    let mut content = if found.is_empty() {
        format!("no files match `{pattern}` in `{}`\n", dir.display())
    } else {
        found.truncate(MAX_RESULTS);
        found.join("\n") + "\n"
    };
    if total > MAX_RESULTS {
        content.push_str(&format!(
            "… {} more not shown ({total} in all); use a narrower pattern or path\n",
            total - MAX_RESULTS
        ));
    }
    if unreadable > 0 {
        content.push_str(&format!("({unreadable} entries could not be read)\n"));
    }
    Ok(ToolOutput::text(content))
}

/// Compiles a glob as the tools use them (`*` stops at `/`). A leading `./` is dropped.
pub(super) fn compile(pattern: &str) -> Result<GlobMatcher, String> {
    let trimmed = pattern.trim_start_matches("./");
    if trimmed.starts_with('/') {
        return Err(format!("the glob `{pattern}` is absolute; patterns are relative to `path`"));
    }
    GlobBuilder::new(trimmed)
        .literal_separator(true)
        .build()
        .map(|glob| glob.compile_matcher())
        .map_err(|err| format!("invalid glob `{pattern}`: {err}"))
}

/// Walks `dir` (or yields just that file) in file-name order, as git would see the
/// workspace: ignored files skipped, hidden files kept, `.git` and `.cairn` never entered.
pub(super) fn walk(workspace: &Workspace, dir: &Resolved) -> Walk {
    let reserved = workspace.root().join(RESERVED_DIR);
    WalkBuilder::new(&dir.abs)
        .hidden(false)
        // Ignore rules apply whether or not the workspace is a git repository.
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |entry| !is_excluded(entry, &reserved))
        .build()
}

fn is_excluded(entry: &DirEntry, reserved: &Path) -> bool {
    entry.file_name().eq_ignore_ascii_case(".git") || entry.path() == reserved
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn glob(root: &Path, arguments: serde_json::Value) -> Result<String, String> {
        let workspace = Workspace::new(root).unwrap();
        run(&Args::parse(&arguments).unwrap(), &workspace, &CancellationToken::new())
            .map(|out| out.content)
    }

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in files {
            let path = dir.path().join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, "x\n").unwrap();
        }
        dir
    }

    #[test]
    fn matches_sorted_paths_relative_to_the_root() {
        let dir = tree(&[
            "src/main.rs",
            "src/agent/tools/mod.rs",
            "README.md",
            "build.rs",
            "src/notes.txt",
        ]);
        assert_eq!(
            glob(dir.path(), json!({"pattern": "**/*.rs"})).unwrap(),
            "build.rs\nsrc/agent/tools/mod.rs\nsrc/main.rs\n"
        );
        assert_eq!(glob(dir.path(), json!({"pattern": "*.rs"})).unwrap(), "build.rs\n");
        assert_eq!(glob(dir.path(), json!({"pattern": "src/*.rs"})).unwrap(), "src/main.rs\n");
        assert_eq!(
            glob(dir.path(), json!({"pattern": "*.rs", "path": "src"})).unwrap(),
            "src/main.rs\n"
        );
        assert_eq!(
            glob(dir.path(), json!({"pattern": "./src/**/mod.rs"})).unwrap(),
            "src/agent/tools/mod.rs\n"
        );
        assert_eq!(
            glob(dir.path(), json!({"pattern": "*.py", "path": "src"})).unwrap(),
            "no files match `*.py` in `src`\n"
        );
    }

    #[test]
    fn respects_gitignore_includes_hidden_files_and_skips_git_and_cairn() {
        let dir = tree(&[
            ".gitignore",
            ".github/workflows/ci.yml",
            "target/debug/app",
            "src/lib.rs",
            "src/generated.rs",
            ".git/config",
            ".cairn/notes.md",
            "sub/.cairn/kept.md",
        ]);
        fs::write(dir.path().join(".gitignore"), "target/\n/src/generated.rs\n").unwrap();
        assert_eq!(
            glob(dir.path(), json!({"pattern": "**/*"})).unwrap(),
            ".github/workflows/ci.yml\n.gitignore\nsrc/lib.rs\nsub/.cairn/kept.md\n"
        );
    }

    #[test]
    fn caps_the_list_and_says_how_many_more() {
        let names: Vec<String> = (0..1005).map(|n| format!("f/{n:04}.txt")).collect();
        let dir = tree(&names.iter().map(String::as_str).collect::<Vec<_>>());
        let out = glob(dir.path(), json!({"pattern": "f/*"})).unwrap();
        assert_eq!(out.lines().count(), 1001);
        assert!(out.starts_with("f/0000.txt\n"));
        assert!(out.ends_with(
            "f/0999.txt\n… 5 more not shown (1005 in all); use a narrower pattern or path\n"
        ));
    }

    #[test]
    fn bad_patterns_and_paths_are_errors() {
        let dir = tree(&["a.txt"]);
        assert!(
            glob(dir.path(), json!({"pattern": "[z-a"}))
                .unwrap_err()
                .starts_with("invalid glob `[z-a`")
        );
        assert!(
            glob(dir.path(), json!({"pattern": "/etc/*"})).unwrap_err().contains("is absolute")
        );
        assert!(
            glob(dir.path(), json!({"pattern": "*", "path": "a.txt"}))
                .unwrap_err()
                .contains("not a directory")
        );
        assert!(
            glob(dir.path(), json!({"pattern": "*", "path": ".."}))
                .unwrap_err()
                .contains("outside the workspace")
        );
        assert!(
            glob(dir.path(), json!({"pattern": "*", "path": ".git"}))
                .unwrap_err()
                .contains("`.git`")
        );
    }

    #[test]
    fn stops_when_cancelled() {
        let dir = tree(&["a.txt"]);
        let cancel = CancellationToken::new();
        cancel.cancel();
        let args = Args::parse(&json!({"pattern": "*"})).unwrap();
        assert_eq!(
            run(&args, &Workspace::new(dir.path()).unwrap(), &cancel).unwrap_err(),
            "cancelled"
        );
    }
}
