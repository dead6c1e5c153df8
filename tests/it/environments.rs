//! Repository shapes: outside a repository, bare, unborn, detached, linked worktrees,
//! and two processes checkpointing at once.

use std::process::Command;

use crate::support::TestRepo;

#[test]
fn outside_a_repository_cairn_says_so_and_offers_init() {
    let repo = TestRepo::new();
    let outside = repo.home.join("plain");
    std::fs::create_dir_all(&outside).unwrap();
    let out = repo.cairn_in(&outside, &["checkpoint"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not inside a git repository") && err.contains("cairn init"), "{err}");
    assert!(!outside.join(".git").exists());

    let out = repo.cairn_in(&outside, &["init"]);
    assert!(out.status.success());
    assert!(outside.join(".git").is_dir());
    assert!(
        repo.cairn_in(&outside, &["checkpoint"]).status.success(),
        "works on the unborn branch"
    );
}

#[test]
fn a_bare_repository_is_refused() {
    let repo = TestRepo::new();
    let bare = repo.home.join("bare.git");
    repo.git(&["clone", "-q", "--bare", ".", bare.to_str().unwrap()]);
    let out = repo.cairn_in(&bare, &["checkpoint"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bare repository"), "{err}");
    assert!(!bare.join("refs/cairn").exists());
}

#[test]
fn an_unborn_branch_gives_a_parentless_first_step() {
    let repo = TestRepo::empty();
    repo.write("first.txt", "1\n");
    let (_, _, commit) = repo.checkpoint(&[]);
    assert_eq!(repo.git(&["rev-list", "--parents", "-n1", &commit]).trim(), commit, "no parent");
    assert!(repo.tree_files(&commit).contains_key("first.txt"));
    assert!(!repo.git_in(&repo.root, &["status", "--porcelain"]).contains("A "), "index untouched");
}

#[test]
fn a_detached_head_is_the_base() {
    let repo = TestRepo::new();
    repo.write("b.txt", "b\n");
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-qm", "second"]);
    repo.git(&["checkout", "-q", "--detach", "HEAD~1"]);
    let before = repo.user_state();
    let (_, _, commit) = repo.checkpoint(&[]);
    assert_eq!(repo.git(&["rev-parse", &format!("{commit}^")]), repo.git(&["rev-parse", "HEAD"]));
    assert_eq!(repo.user_state(), before);
}

#[test]
fn linked_worktrees_share_refs_but_not_current_sessions() {
    let repo = TestRepo::new();
    let linked = repo.home.join("linked");
    repo.git(&["worktree", "add", "-q", linked.to_str().unwrap(), "-b", "side"]);
    std::fs::write(linked.join("side.txt"), "side\n").unwrap();
    let out = repo.cairn_in(&linked, &["checkpoint", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let session = json["session"].as_str().unwrap();
    // The ref lives in the common dir, visible from the main worktree.
    let files = repo.tree_files(&TestRepo::session_ref(session));
    assert!(files.contains_key("side.txt"));
    // The main worktree has no current session of its own yet.
    assert_eq!(repo.cairn(&["show", "@"]).status.code(), Some(1));
    assert_eq!(repo.cairn_in(&linked, &["show", "@"]).status.code(), Some(0));
}

#[test]
fn concurrent_checkpoints_of_one_session_all_land_or_fail_cleanly() {
    let repo = TestRepo::new();
    let (session, _, _) = repo.checkpoint(&[]);
    let children: Vec<_> = (0..6)
        .map(|i| {
            repo.write(&format!("file{i}.txt"), &format!("{i}\n"));
            Command::new(env!("CARGO_BIN_EXE_cairn"))
                .args(["checkpoint", "-m", &format!("writer {i}")])
                .current_dir(&repo.root)
                .env("HOME", &repo.home)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut landed = 1;
    for child in children {
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            landed += 1;
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("another cairn process"), "a loser fails cleanly: {err}");
        }
    }
    let steps =
        repo.git(&["rev-list", "--count", &format!("HEAD..{}", TestRepo::session_ref(&session))]);
    assert_eq!(
        steps.trim().parse::<usize>().unwrap(),
        landed,
        "every success is one step on the ref"
    );
    let numbers = repo.git(&[
        "log",
        "--format=%(trailers:key=Cairn-Step,valueonly)",
        &TestRepo::session_ref(&session),
        "--not",
        "HEAD",
    ]);
    let numbers: Vec<usize> = numbers.split_whitespace().map(|n| n.parse().unwrap()).collect();
    let expected: Vec<usize> = (1..=landed).rev().collect();
    assert_eq!(numbers, expected, "steps are numbered without gaps or repeats");
    repo.assert_fsck_clean();
}
