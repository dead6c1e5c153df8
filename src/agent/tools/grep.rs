//! `grep {pattern, path?, glob?}`: lines matching a regular expression, as `path:line: text`.
//!
//! Sees the same files as `glob` (gitignore-aware, see [`super::glob::walk`]). Binary and
//! very large files are skipped and counted; matches and line lengths are capped so a
//! broad pattern cannot flood the model's context. Patterns use the `regex` crate's
//! syntax and match within one line (`^` and `$` at line boundaries).

use std::fs;
use std::io::Read;

use regex::bytes::{Regex, RegexBuilder};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::args::Args;
use super::glob::{compile, walk};
use super::paths::Workspace;
use super::read_file::{SNIFF_BYTES, looks_binary};
use super::{Access, ToolOutput, ToolSpec};

const MAX_MATCHES: usize = 400;
const MAX_LINE_CHARS: usize = 250;
/// Larger files are skipped (and counted) rather than read into memory.
const MAX_FILE_BYTES: u64 = 32 << 20;

pub(super) fn spec() -> ToolSpec {
    ToolSpec {
        name: "grep",
        description: "Search workspace files for lines matching a regular expression (Rust regex \
            syntax), skipping files ignored by git and binary files. Prints `path:line: text` for \
            each matching line. `path` limits the search to a directory or file; `glob` to files \
            matching a glob (a pattern without `/`, like `*.rs`, matches file names).",
        parameters: json!({
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "Regular expression, e.g. `fn \\w+_test` or `(?i)todo`"},
                "path": {"type": "string", "description": "File or directory to search, relative to the workspace root (default: the root)"},
                "glob": {"type": "string", "description": "Only search files matching this glob, e.g. `*.rs` or `src/**/*.ts`"}
            },
            "required": ["pattern"]
        }),
        access: Access::Read,
    }
}

/// What a search found and what it could not look at.
#[derive(Default)]
struct Found {
    lines: Vec<String>,
    matches: usize,
    binary: usize,
    large: usize,
    unreadable: usize,
}

pub(super) fn run(
    args: &Args,
    workspace: &Workspace,
    cancel: &CancellationToken,
) -> Result<ToolOutput, String> {
    let pattern = args.string("pattern")?;
    let target = workspace.resolve(&args.opt_string("path")?.unwrap_or_default())?;
    let filter = args
        .opt_string("glob")?
        .map(|glob| compile(&glob).map(|m| (m, glob.contains('/'))))
        .transpose()?;
    let regex = RegexBuilder::new(&pattern)
        .multi_line(true)
        .crlf(true)
        .build()
        .map_err(|err| format!("invalid regular expression `{pattern}`: {err}"))?;
    if !target.abs.exists() {
        return Err(format!("`{}` does not exist", target.display()));
    }

    let mut found = Found::default();
    for entry in walk(workspace, &target) {
        if cancel.is_cancelled() {
            return Err("cancelled".to_string());
        }
        let Ok(entry) = entry else {
            found.unreadable += 1;
            continue;
        };
        if !entry.file_type().is_some_and(|kind| kind.is_file()) {
            continue;
        }
        let under_root = entry.path().strip_prefix(workspace.root()).unwrap_or(entry.path());
        if let Some((matcher, with_dirs)) = &filter {
            let under_target = entry.path().strip_prefix(&target.abs).unwrap_or(entry.path());
            let matched = if *with_dirs {
                matcher.is_match(under_target) || matcher.is_match(under_root)
            } else {
                matcher.is_match(entry.file_name())
            };
            if !matched {
                continue;
            }
        }
        search_file(entry.path(), &under_root.display().to_string(), &regex, &mut found);
    }

    let mut content = found.lines.join("\n");
    if found.matches == 0 {
        content = format!("no matches for `{pattern}` in `{}`", target.display());
    } else if found.matches > MAX_MATCHES {
        content.push_str(&format!(
            "\n… {} more matches not shown ({} in all); narrow the pattern, path or glob",
            found.matches - MAX_MATCHES,
            found.matches
        ));
    }
    let skipped: Vec<String> = [
        (found.binary, "binary"),
        (found.large, "larger than 32 MiB"),
        (found.unreadable, "unreadable"),
    ]
    .into_iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, why)| format!("{count} {why}"))
    .collect();
    if !skipped.is_empty() {
        content.push_str(&format!("\n(skipped files: {})", skipped.join(", ")));
    }
    content.push('\n');
    Ok(ToolOutput::text(content))
}

fn search_file(path: &std::path::Path, shown: &str, regex: &Regex, found: &mut Found) {
    let bytes = match fs::metadata(path) {
        Ok(metadata) if metadata.len() > MAX_FILE_BYTES => {
            found.large += 1;
            return;
        }
        Ok(metadata) => {
            let mut bytes = Vec::with_capacity(metadata.len() as usize);
            // `take` guards against a file that grows while it is read.
            match fs::File::open(path)
                .and_then(|file| file.take(MAX_FILE_BYTES).read_to_end(&mut bytes))
            {
                Ok(_) => bytes,
                Err(_) => {
                    found.unreadable += 1;
                    return;
                }
            }
        }
        Err(_) => {
            found.unreadable += 1;
            return;
        }
    };
    if looks_binary(&bytes[..bytes.len().min(SNIFF_BYTES)]) {
        found.binary += 1;
        return;
    }
    // Most files do not match at all: one search over the whole file rules them out.
    if !regex.is_match(&bytes) {
        return;
    }
    // A final newline ends the last line; it does not start an empty one.
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    for (index, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !regex.is_match(line) {
            continue;
        }
        found.matches += 1;
        if found.lines.len() < MAX_MATCHES {
            let text = String::from_utf8_lossy(line);
            let text = match text.char_indices().nth(MAX_LINE_CHARS) {
                Some((cut, _)) => format!("{} [… line cut]", &text[..cut]),
                None => text.into_owned(),
            };
            found.lines.push(format!("{shown}:{}: {text}", index + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn grep(root: &Path, arguments: serde_json::Value) -> Result<String, String> {
        let workspace = Workspace::new(root).unwrap();
        run(&Args::parse(&arguments).unwrap(), &workspace, &CancellationToken::new()).map(|out| {
            assert!(!out.is_error);
            out.content
        })
    }

    fn tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        dir
    }

    #[test]
    fn prints_matching_lines_with_paths_and_numbers() {
        let dir = tree(&[
            ("src/a.rs", b"fn one() {}\nlet x = 1;\r\nfn two() {}\n"),
            ("src/b.py", b"def one():\n    pass\n"),
            ("README.md", b"no functions here\n"),
        ]);
        assert_eq!(
            grep(dir.path(), json!({"pattern": r"fn \w+\(\)"})).unwrap(),
            "src/a.rs:1: fn one() {}\nsrc/a.rs:3: fn two() {}\n"
        );
        assert_eq!(
            grep(dir.path(), json!({"pattern": "one", "glob": "*.py"})).unwrap(),
            "src/b.py:1: def one():\n"
        );
        assert_eq!(
            grep(dir.path(), json!({"pattern": "^let.*;$", "path": "src/a.rs"})).unwrap(),
            "src/a.rs:2: let x = 1;\n"
        );
        assert_eq!(
            grep(dir.path(), json!({"pattern": "one", "glob": "src/**/*.rs"})).unwrap(),
            "src/a.rs:1: fn one() {}\n"
        );
        assert_eq!(
            grep(dir.path(), json!({"pattern": "zzz", "path": "src"})).unwrap(),
            "no matches for `zzz` in `src`\n"
        );
    }

    #[test]
    fn skips_ignored_and_binary_files_and_says_so() {
        let dir = tree(&[
            (".gitignore", b"target/\n"),
            ("target/out.txt", b"needle\n"),
            ("lib.rs", b"// needle\n"),
            ("image.png", b"\x89PNG\r\n\x1a\n\x00\x00needle"),
            (".git/config", b"needle\n"),
            (".cairn/notes.md", b"needle\n"),
        ]);
        assert_eq!(
            grep(dir.path(), json!({"pattern": "needle"})).unwrap(),
            "lib.rs:1: // needle\n(skipped files: 1 binary)\n"
        );
    }

    #[test]
    fn caps_matches_and_line_length() {
        let long = format!("needle {}\n", "x".repeat(1000));
        let dir = tree(&[
            ("many.txt", "needle\n".repeat(1000).as_bytes()),
            ("wide.txt", long.as_bytes()),
        ]);
        let out = grep(dir.path(), json!({"pattern": "needle"})).unwrap();
        assert_eq!(out.lines().count(), MAX_MATCHES + 1);
        assert!(out.ends_with(
            "\n… 601 more matches not shown (1001 in all); narrow the pattern, path or glob\n"
        ));
        let out = grep(dir.path(), json!({"pattern": "needle", "path": "wide.txt"})).unwrap();
        assert_eq!(
            out,
            format!("wide.txt:1: needle {} [… line cut]\n", "x".repeat(MAX_LINE_CHARS - 7))
        );
    }

    #[test]
    fn invalid_regexes_globs_and_paths_are_clear_errors() {
        let dir = tree(&[("a.txt", b"a\n")]);
        let workspace = Workspace::new(dir.path()).unwrap();
        let call = |arguments: serde_json::Value| {
            run(&Args::parse(&arguments).unwrap(), &workspace, &CancellationToken::new())
                .unwrap_err()
        };
        let err = call(json!({"pattern": "fn (unclosed"}));
        assert!(err.starts_with("invalid regular expression `fn (unclosed`:"), "{err}");
        assert!(call(json!({"pattern": "a", "glob": "[z-a"})).starts_with("invalid glob"));
        assert_eq!(call(json!({"pattern": "a", "path": "nope"})), "`nope` does not exist");
        assert!(call(json!({"pattern": "a", "path": "/etc"})).contains("absolute path"));
        assert!(call(json!({"glob": "*"})).contains("missing required field `pattern`"));
    }
}
