//! `cairn checkpoint`, `sessions`, `log`, `show` and `diff`, checked with the git CLI.

use std::os::unix::fs::PermissionsExt;

use crate::support::TestRepo;

#[test]
fn a_checkpoint_records_tracked_untracked_modes_and_links_but_not_ignored_files() {
    let repo = TestRepo::new();
    repo.write(".gitignore", "target/\n*.log\n");
    repo.write("src/lib.rs", "pub fn f() {}\n");
    repo.write("target/debug/out", "build output\n");
    repo.write("debug.log", "noise\n");
    repo.write("run.sh", "#!/bin/sh\necho hi\n");
    std::fs::set_permissions(repo.path("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("src/lib.rs", repo.path("link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", repo.path("outside")).unwrap();
    std::os::unix::fs::symlink("missing", repo.path("dangling")).unwrap();
    repo.git(&["add", ".gitignore", "src/lib.rs"]);
    repo.git(&["commit", "-qm", "add lib"]);
    repo.write("notes.txt", "untracked but not ignored\n");
    let before = repo.user_state();

    let (session, step, commit) = repo.checkpoint(&["-m", "first"]);

    assert_eq!(step, 1);
    let files = repo.tree_files(&commit);
    let paths: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            ".gitignore",
            "README.md",
            "dangling",
            "link",
            "notes.txt",
            "outside",
            "run.sh",
            "src/lib.rs"
        ]
    );
    assert_eq!(files["run.sh"].0, "100755");
    assert_eq!(files["src/lib.rs"].0, "100644");
    for link in ["link", "outside", "dangling"] {
        assert_eq!(files[link].0, "120000", "{link} is stored as a link");
    }
    assert_eq!(
        repo.git(&["cat-file", "-p", &files["outside"].1]),
        "/etc/passwd",
        "links are never followed"
    );
    assert_eq!(files["README.md"].1, repo.git(&["rev-parse", "HEAD:README.md"]).trim());
    // The first step's parent is HEAD; the ref and its reflog exist.
    assert_eq!(repo.git(&["rev-parse", &format!("{commit}^")]), repo.git(&["rev-parse", "HEAD"]));
    assert_eq!(repo.git(&["rev-parse", &TestRepo::session_ref(&session)]).trim(), commit);
    assert!(
        repo.git(&["reflog", "show", &TestRepo::session_ref(&session)])
            .contains("cairn: step 1 (manual): first")
    );
    assert_eq!(repo.user_state(), before, "HEAD, index, branches, tags untouched");
    assert_eq!(repo.read("target/debug/out"), "build output\n");
    repo.assert_fsck_clean();
}

#[test]
fn step_commits_carry_state_trailers_and_identities() {
    let repo = TestRepo::new();
    let (session, _, commit) = repo.checkpoint(&["-m", "save point"]);
    let message = repo.git(&["log", "-1", "--format=%B", &commit]);
    assert!(message.starts_with("save point\n"));
    assert!(message.contains(&format!("Cairn-Session: {session}\n")));
    assert!(message.contains("Cairn-Step: 1\n"));
    assert!(message.contains("Cairn-Kind: manual\n"));
    assert_eq!(
        repo.git(&["log", "-1", "--format=%an <%ae>", &commit]).trim(),
        "cairn <cairn@localhost>"
    );
    assert_eq!(
        repo.git(&["log", "-1", "--format=%cn <%ce>", &commit]).trim(),
        "Test User <test@example.com>"
    );

    let toml = repo.git(&["show", &format!("{commit}:.cairn/session.toml")]);
    assert!(toml.contains(&format!("id = \"{session}\"")), "{toml}");
    assert!(toml.contains(&format!("base = \"{}\"", repo.git(&["rev-parse", "HEAD"]).trim())));
    let step: serde_json::Value =
        serde_json::from_str(&repo.git(&["show", &format!("{commit}:.cairn/state/step.json")]))
            .unwrap();
    assert_eq!(step["number"], 1);
    assert_eq!(step["kind"], "manual");
    assert_eq!(step["session"], session.as_str());
}

#[test]
fn each_step_diff_is_exactly_the_edits_made() {
    let repo = TestRepo::new();
    repo.write("a.txt", "one\n");
    repo.write("dir/b.txt", "two\n");
    let (session, _, first) = repo.checkpoint(&[]);
    repo.write("a.txt", "one\nmore\n");
    std::fs::remove_file(repo.path("dir/b.txt")).unwrap();
    repo.write("dir/new.txt", "three\n");
    let (same_session, step, second) = repo.checkpoint(&[]);
    assert_eq!(same_session, session, "checkpoints continue the current session");
    assert_eq!(step, 2);

    let changed = repo.git(&["diff", "--name-status", &first, &second, "--", ".", ":!.cairn"]);
    assert_eq!(changed, "M\ta.txt\nD\tdir/b.txt\nA\tdir/new.txt\n");
    assert_eq!(repo.git(&["rev-parse", &format!("{second}^")]).trim(), first);
    // Nothing changed: the next step has the same workspace tree.
    let (_, _, third) = repo.checkpoint(&[]);
    assert_eq!(repo.git(&["diff", "--name-only", &second, &third, "--", ".", ":!.cairn"]), "");
    repo.assert_fsck_clean();
}

#[test]
fn a_content_change_that_keeps_size_and_mtime_is_still_seen() {
    let repo = TestRepo::new();
    repo.write("same.txt", "aaaa\n");
    crate::support::age(&repo.path("same.txt"));
    let (_, _, first) = repo.checkpoint(&[]);
    // Same size, mtime put back: only the ctime (which no one can set) betrays the edit.
    repo.write("same.txt", "bbbb\n");
    crate::support::age(&repo.path("same.txt"));
    let (_, _, second) = repo.checkpoint(&[]);
    assert_eq!(repo.git(&["show", &format!("{first}:same.txt")]), "aaaa\n");
    assert_eq!(repo.git(&["show", &format!("{second}:same.txt")]), "bbbb\n");
}

#[test]
fn checkpoint_new_starts_another_session_and_sessions_lists_both() {
    let repo = TestRepo::new();
    let (first, _, _) = repo.checkpoint(&["-m", "one"]);
    let (second, step, _) = repo.checkpoint(&["--new", "-m", "two"]);
    assert_ne!(first, second);
    assert_eq!(step, 1);
    let listed: serde_json::Value =
        serde_json::from_str(&repo.ok(&["sessions", "--json"])).unwrap();
    let ids: Vec<&str> =
        listed.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&first.as_str()) && ids.contains(&second.as_str()));
    let text = repo.ok(&["sessions"]);
    assert!(text.contains(&format!("* {second}")), "the current session is marked: {text}");
}

#[test]
fn log_show_and_diff_present_the_steps() {
    let repo = TestRepo::new();
    repo.write("a.txt", "one\n");
    let (session, _, _) = repo.checkpoint(&["-m", "add a"]);
    repo.write("a.txt", "one\ntwo\n");
    repo.checkpoint(&["-m", "extend a"]);

    let log = repo.ok(&["log"]);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].contains("add a") && lines[1].contains("extend a"), "{log}");
    let json: serde_json::Value =
        serde_json::from_str(&repo.ok(&["log", &session, "--json"])).unwrap();
    assert_eq!(json[1]["step"], 2);
    assert_eq!(json[1]["kind"], "manual");

    let patch = repo.ok(&["log", "-p"]);
    assert!(patch.contains("+two"), "{patch}");
    assert!(!patch.contains(".cairn"), ".cairn/ is hidden: {patch}");

    let show = repo.ok(&["show", &format!("{session}@2")]);
    assert!(show.contains("extend a") && show.contains("+two") && !show.contains("+one"), "{show}");

    repo.write("a.txt", "one\ntwo\nthree\n");
    let diff = repo.ok(&["diff"]);
    assert!(diff.contains("+three") && !diff.contains("\x1b["), "plain when piped: {diff}");
    let stat = repo.ok(&["diff", "@~1", "@", "--stat"]);
    assert!(stat.contains("a.txt | +1 -0") && stat.contains("1 file changed"), "{stat}");
}

#[test]
fn odd_file_names_round_trip() {
    let repo = TestRepo::new();
    repo.write("with space.txt", "s\n");
    repo.write("new\nline.txt", "n\n");
    let raw = std::ffi::OsStr::from_bytes(b"latin1-\xe9.txt");
    std::fs::write(repo.root.join(raw), "l\n").unwrap();
    let (_, _, commit) = repo.checkpoint(&[]);
    let names = repo.git(&["ls-tree", "-z", "--name-only", &commit]);
    let names: Vec<&str> = names.split('\0').collect();
    assert!(names.contains(&"with space.txt"));
    assert!(names.contains(&"new\nline.txt"));
    assert!(names.iter().any(|n| n.starts_with("latin1-")), "{names:?}");
    repo.assert_fsck_clean();
}

use std::os::unix::ffi::OsStrExt;

#[test]
fn nested_repositories_become_gitlinks_and_are_never_renamed() {
    let repo = TestRepo::new();
    let nested = repo.path("vendor/lib");
    std::fs::create_dir_all(&nested).unwrap();
    repo.git_in(&nested, &["init", "-q"]);
    std::fs::write(nested.join("x.txt"), "x\n").unwrap();
    repo.git_in(&nested, &["add", "-A"]);
    repo.git_in(&nested, &["-c", "user.name=n", "-c", "user.email=n@e", "commit", "-qm", "nested"]);
    let nested_head = repo.git_in(&nested, &["rev-parse", "HEAD"]).trim().to_string();
    let empty = repo.path("scratch");
    std::fs::create_dir_all(&empty).unwrap();
    repo.git_in(&empty, &["init", "-q"]);

    let out = repo.cairn(&["checkpoint", "--json"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("scratch") && stderr.contains("no commit"),
        "an unborn nested repo is reported: {stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files = repo.tree_files(json["commit"].as_str().unwrap());
    assert_eq!(files["vendor/lib"], ("160000".to_string(), nested_head));
    assert!(!files.keys().any(|p| p.starts_with("vendor/lib/") || p.starts_with("scratch")));
    assert!(nested.join(".git").is_dir(), "the nested .git is where it was");
}

#[test]
fn large_untracked_files_are_left_out_and_listed() {
    let repo = TestRepo::new();
    let big = std::fs::File::create(repo.path("big.bin")).unwrap();
    big.set_len(9 * 1024 * 1024).unwrap();
    let out = repo.cairn(&["checkpoint", "--json"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("left out big.bin"));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let commit = json["commit"].as_str().unwrap();
    assert!(!repo.tree_files(commit).contains_key("big.bin"));
    let step: serde_json::Value =
        serde_json::from_str(&repo.git(&["show", &format!("{commit}:.cairn/state/step.json")]))
            .unwrap();
    assert_eq!(step["skipped"][0]["path"], "big.bin");
}

#[test]
fn a_workspace_dot_cairn_is_reserved_never_recorded() {
    let repo = TestRepo::new();
    repo.write(".cairn/session.toml", "id = \"forged\"\n");
    let out = repo.cairn(&["checkpoint", "--json"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`.cairn`"),
        "warns about the reserved name"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let commit = json["commit"].as_str().unwrap();
    let toml = repo.git(&["show", &format!("{commit}:.cairn/session.toml")]);
    assert!(!toml.contains("forged"), "cairn's own state wins: {toml}");
    assert_eq!(
        repo.read(".cairn/session.toml"),
        "id = \"forged\"\n",
        "the user's file is untouched"
    );
}
