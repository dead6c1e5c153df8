//! The dependency rule of ARCHITECTURE.md, checked: every module of `src/` names only the
//! layers below it in its `crate::` paths. A new upward import fails here with the file and
//! the layer it reached.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module of the library and the layers it may use, lowest first.
const LAYERS: &[(&str, &[&str])] = &[
    ("text", &[]),
    ("sandbox", &[]),
    ("secrets", &["text"]),
    ("title", &["text"]),
    ("git", &["text", "secrets", "title"]),
    ("config", &["sandbox", "text", "secrets", "title"]),
    ("llm", &["text", "secrets"]),
    ("transcript", &["llm", "text"]),
    ("checkpoint", &["git", "config", "transcript", "text", "secrets", "title"]),
    ("memory", &["git", "config", "text", "secrets", "title"]),
    (
        "history",
        // `llm` for `Usage`, the token counts a step records.
        &["checkpoint", "memory", "git", "config", "transcript", "llm", "text", "secrets", "title"],
    ),
    ("mcp", &["config", "sandbox", "text", "secrets"]),
    (
        "agent",
        &[
            "history",
            "checkpoint",
            "memory",
            "mcp",
            "sandbox",
            "llm",
            "transcript",
            "git",
            "config",
            "text",
            "secrets",
            "title",
        ],
    ),
    (
        "hooks",
        &[
            "agent",
            "history",
            "checkpoint",
            "memory",
            "transcript",
            "git",
            "config",
            "text",
            "secrets",
            "title",
        ],
    ),
];

/// The top-level modules named by `crate::` paths in `source`, comments left out; a
/// `crate::{a, b::c}` group names each of its members.
fn layers_used(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut used = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(group.len(), |(i, _)| i);
            let mut member_start = true;
            let mut depth = 0;
            for (i, c) in group[..end].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => member_start = true,
                    c if member_start && !c.is_whitespace() => {
                        member_start = false;
                        used.insert(identifier(&group[i..]));
                    }
                    _ => {}
                }
            }
        } else {
            used.insert(identifier(rest));
        }
    }
    used.retain(|name| !name.is_empty());
    used
}

fn identifier(text: &str) -> String {
    text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The violations of the rule in the library at `src`: `file uses layer` lines.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy();
        let layer = first.trim_end_matches(".rs");
        // Entry points (`main.rs`, the binaries of `src/bin/`) and the CLI sit on top.
        if matches!(layer, "lib" | "main" | "bin" | "cli") {
            continue;
        }
        let Some((_, allowed)) = LAYERS.iter().find(|(name, _)| *name == layer) else {
            found.push(format!("{}: {layer} is not in the layer table", relative.display()));
            continue;
        };
        let source = std::fs::read_to_string(&file).unwrap();
        for used in layers_used(&source) {
            if used != layer && !allowed.contains(&used.as_str()) {
                found.push(format!("{} uses {used}", relative.display()));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn no_module_uses_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(found.is_empty(), "imports against the layer rule:\n{}", found.join("\n"));
}

#[test]
fn every_top_level_module_has_a_place_in_the_table() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let modules: Vec<&str> =
        lib.lines().filter_map(|line| line.strip_prefix("pub mod ")?.strip_suffix(';')).collect();
    assert!(modules.len() > 5, "lib.rs lists its modules: {modules:?}");
    for module in modules {
        assert!(
            module == "cli" || LAYERS.iter().any(|(name, _)| *name == module),
            "{module} is not in the layer table"
        );
    }
}

/// The check itself catches an upward import, in each form a path can take.
#[test]
fn an_upward_import_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("git")).unwrap();
    std::fs::write(src.join("text.rs"), "// crate::agent in a comment is no import\n").unwrap();
    std::fs::write(
        src.join("git/mod.rs"),
        "use crate::{text, agent::Agent};\nfn f() { crate::history::gc(); }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("memory.rs"),
        "use crate::{\n    git::{refs, objects},\n    checkpoint,\n};\n",
    )
    .unwrap();
    assert_eq!(
        violations(src),
        ["git/mod.rs uses agent", "git/mod.rs uses history", "memory.rs uses checkpoint"]
    );
}
