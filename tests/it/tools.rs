//! The agent's tools through their public entry point, in a real git repository, with the
//! git CLI as an independent reader of what they did.

use std::path::{Path, PathBuf};

use cairn::agent::tools::{ToolContext, ToolOutput, run};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::TestRepo;

async fn call(root: &Path, name: &str, arguments: Value) -> ToolOutput {
    let cancel = CancellationToken::new();
    run(name, &arguments, &ToolContext { root, sandbox: None, cancel: &cancel }).await
}

#[tokio::test]
async fn a_session_of_tool_calls_edits_the_workspace_as_git_sees_it() {
    let repo = TestRepo::new();
    repo.write(".gitignore", "target/\n");
    repo.write("target/build.log", "fn hidden() {}\n");
    repo.write("local.rs", "fn excluded() {}\n");
    std::fs::write(repo.path(".git/info/exclude"), "local.rs\n").unwrap();
    let root = repo.root.as_path();

    let out = call(
        root,
        "write_file",
        json!({"path": "src/lib.rs", "content": "pub fn answer() -> u32 {\n    41\n}\n"}),
    )
    .await;
    assert_eq!((out.is_error, out.content.as_str()), (false, "created `src/lib.rs` (34 bytes)"));
    assert_eq!(out.changed_paths, vec![PathBuf::from("src/lib.rs")]);

    let out = call(
        root,
        "edit_file",
        json!({"path": "src/lib.rs", "old_string": "41", "new_string": "42"}),
    )
    .await;
    assert_eq!(out.content, "replaced 1 occurrence in `src/lib.rs`; the new text is at line 2");
    assert_eq!(out.changed_paths, vec![PathBuf::from("src/lib.rs")]);

    let out = call(root, "read_file", json!({"path": "src/lib.rs"})).await;
    assert_eq!(out.content, "     1\tpub fn answer() -> u32 {\n     2\t    42\n     3\t}\n");

    // Ignored by .gitignore and by .git/info/exclude: neither listed nor searched.
    let out = call(root, "glob", json!({"pattern": "**/*"})).await;
    assert_eq!(out.content, ".gitignore\nREADME.md\nsrc/lib.rs\n");
    let out = call(root, "grep", json!({"pattern": r"fn \w+", "glob": "*.rs"})).await;
    assert_eq!(out.content, "src/lib.rs:1: pub fn answer() -> u32 {\n");

    let out = call(root, "shell", json!({"command": "git status --porcelain"})).await;
    assert_eq!(out.content, "exit code: 0\nstdout:\n?? .gitignore\n?? src/\nstderr: (empty)\n");
    assert!(out.may_change_anything && !out.is_error);
    assert_eq!(
        repo.git(&["status", "--porcelain", "--untracked-files=all"]),
        "?? .gitignore\n?? src/lib.rs\n"
    );
}

#[tokio::test]
async fn escapes_are_refused_and_create_nothing() {
    let repo = TestRepo::new();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.path("out")).unwrap();
    let escape = outside.path().join("abs.txt");
    let before = repo.git(&["status", "--porcelain"]);
    let config = repo.read(".git/config");

    for (path, why) in [
        ("../escape.txt", "leads outside the workspace"),
        (escape.to_str().unwrap(), "is an absolute path"),
        ("out/through-link.txt", "outside the workspace"),
        (".git/config", "inside a `.git` directory"),
        (".cairn/notes.md", "cairn reserves for its own data"),
    ] {
        for (tool, arguments) in [
            ("write_file", json!({"path": path, "content": "pwned"})),
            ("edit_file", json!({"path": path, "old_string": "[core]", "new_string": "pwned"})),
            ("read_file", json!({"path": path})),
        ] {
            let out = call(&repo.root, tool, arguments).await;
            assert!(out.is_error && out.content.contains(why), "{tool} {path}: {}", out.content);
            assert!(out.content.starts_with(&format!("{tool}: ")), "{}", out.content);
            assert!(out.changed_paths.is_empty());
        }
    }
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(!repo.path("../escape.txt").exists() && !repo.path(".cairn").exists());
    assert_eq!(repo.read(".git/config"), config);
    assert_eq!(repo.git(&["status", "--porcelain"]), before);
}
