//! The user's git state is sacred: every command leaves `HEAD`, the index, branches,
//! tags, the stash and ignored files byte for byte as they were (`cairn land` aside,
//! which makes exactly one commit and is tested on its own).

use serde_json::json;

use crate::interactive::Terminal;
use crate::support::TestRepo;
use crate::support::mock_model::{self, Reply};

/// A branch, a tag, a stash entry, a staged change, and ignored files.
fn give_the_user_some_state(repo: &TestRepo) {
    repo.git(&["branch", "feature"]);
    repo.git(&["tag", "v1"]);
    repo.write("stashed.txt", "stash me\n");
    repo.git(&["add", "stashed.txt"]);
    repo.git(&["stash", "-q"]);
    repo.write(".gitignore", "build/\n*.log\n");
    repo.git(&["add", ".gitignore"]);
    repo.git(&["commit", "-qm", "ignore rules"]);
    repo.write("build/out.bin", "compiled\n");
    repo.write("debug.log", "log line\n");
    repo.write("README.md", "staged edit\n");
    repo.git(&["add", "README.md"]);
}

#[test]
fn no_command_touches_head_index_refs_stash_or_ignored_files() {
    let repo = TestRepo::new();
    give_the_user_some_state(&repo);
    let bare = repo.home.join("remote.git");
    repo.git(&["init", "-q", "--bare", bare.to_str().unwrap()]);
    repo.git(&["remote", "add", "origin", bare.to_str().unwrap()]);

    let state = repo.user_state();
    let ignored = || (repo.read("build/out.bin"), repo.read("debug.log"));
    let ignored_before = ignored();

    repo.write("work.txt", "one\n");
    let (session, _, _) = repo.checkpoint(&["-m", "one", "--new"]);
    repo.write("work.txt", "two\n");
    repo.checkpoint(&["-m", "two"]);
    let commands: &[&[&str]] = &[
        &["sessions"],
        &["log", "-p"],
        &["show", "@"],
        &["diff"],
        &["diff", "@~1", "@", "--stat"],
        &["export"],
        &["export", "--format", "json"],
        &["blame", "work.txt"],
        &["rewind", "@~1"],
        &["gc", "--dry-run"],
        &["gc", "--keep", "0s"],
        &["push", "--dry-run"],
        &["push"],
        &["fetch"],
        &["config", "show"],
        &["memory", "add", "The build runs with make"],
        &["memory", "show"],
        &["memory", "search", "build"],
        &["memory", "log"],
        &["memory", "forget", "the-build-runs-with-make"],
        &["memory", "add", "--user", "Prefer short answers"],
        &["push", "--memory"],
        &["fetch"],
        &["memory", "merge"],
        &["mcp", "list"],
    ];
    for command in commands {
        repo.ok(command);
        assert_eq!(
            repo.user_state(),
            state,
            "cairn {} changed the user's git state",
            command.join(" ")
        );
        assert_eq!(ignored(), ignored_before, "cairn {} touched ignored files", command.join(" "));
    }
    assert_eq!(repo.read("work.txt"), "one\n", "the rewind did its job");
    assert!(repo.git(&["ls-remote", bare.to_str().unwrap()]).contains(&session));
    repo.assert_fsck_clean();
}

/// What a command must leave as it was: the user's git state and ignored files.
fn untouched(repo: &TestRepo) -> (std::collections::BTreeMap<String, Vec<u8>>, String, String) {
    (repo.user_state(), repo.read("build/out.bin"), repo.read("debug.log"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_the_interactive_session_and_the_demo_leave_git_state_alone() {
    let repo = TestRepo::new();
    give_the_user_some_state(&repo);
    let write = |id: &str, path: &str| {
        Reply::chat_tool_calls(&[(id, "write_file", json!({"path": path, "content": "x\n"}))])
    };
    let model = mock_model::start([
        write("r1", "resumed.txt"),
        Reply::chat_text("Resumed."),
        write("f1", "forked.txt"),
        Reply::chat_text("Forked."),
        write("i1", "typed.txt"),
        Reply::chat_text("Typed."),
    ])
    .await;
    repo.use_model(&model.base_url());
    let before = untouched(&repo);
    repo.write("work.txt", "one\n");
    let (session, _, _) = repo.checkpoint(&["-m", "one", "--new"]);
    assert_eq!(untouched(&repo), before);

    for args in [
        vec!["resume", session.as_str(), "go on", "--approval", "auto"],
        vec!["resume", "@~1", "another way", "--fork", "--approval", "auto"],
    ] {
        let mut command = repo.command_in(&repo.root, &args);
        let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(untouched(&repo), before, "cairn {args:?} changed the user's git state");
    }
    assert!(repo.path("resumed.txt").exists() && repo.path("forked.txt").exists());

    // The interactive session: a turn with an approval, /undo, /diff, then Ctrl-D.
    let command = repo.command_in(&repo.root, &[]);
    let root = repo.root.clone();
    tokio::task::spawn_blocking(move || {
        let mut term = Terminal::spawn(command);
        let mut at = term.expect("› ", 0);
        term.type_line("write something");
        at = term.expect("Allow write_file typed.txt? [y]es / [n]o / [a]lways (file writes):", at);
        term.type_line("y");
        at = term.expect("Typed.", at);
        at = term.expect("› ", at);
        assert!(root.join("typed.txt").exists());
        term.type_line("/undo");
        at = term.expect("Back at step", at);
        term.type_line("/diff");
        term.expect("› ", at);
        term.quit();
    })
    .await
    .unwrap();
    assert_eq!(untouched(&repo), before, "the interactive session changed the user's git state");

    // The demo works in a repository of its own, whatever the directory it is run from.
    let cairn_refs = repo.git(&["for-each-ref", "refs/cairn"]);
    let workspace = repo.git(&["--no-optional-locks", "status", "--porcelain", "--ignored"]);
    let out = repo.cairn(&["demo"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(untouched(&repo), before, "the demo changed the user's git state");
    assert_eq!(repo.git(&["for-each-ref", "refs/cairn"]), cairn_refs);
    assert_eq!(repo.git(&["--no-optional-locks", "status", "--porcelain", "--ignored"]), workspace);
    repo.assert_fsck_clean();
}
