//! The user's git state is sacred: every command leaves `HEAD`, the index, branches,
//! tags, the stash and ignored files byte for byte as they were (`cairn land` aside,
//! which makes exactly one commit and is tested on its own).

use crate::support::TestRepo;

#[test]
fn no_command_touches_head_index_refs_stash_or_ignored_files() {
    let repo = TestRepo::new();
    // A branch, a tag, a stash entry, a staged change, and ignored files.
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
