//! `cairn rewind`: ref reset, archive, workspace restore touching only what differs.

use std::os::unix::fs::PermissionsExt;

use crate::support::TestRepo;

/// The workspace files (excluding .git, .cairn and ignored `target/`) with their content.
fn workspace(repo: &TestRepo) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![repo.root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let rel = entry.path().strip_prefix(&repo.root).unwrap().to_string_lossy().into_owned();
            if rel == ".git" || rel == "target" {
                continue;
            }
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.file_type().is_symlink() {
                out.push((
                    rel,
                    format!("-> {}", std::fs::read_link(entry.path()).unwrap().display()),
                ));
            } else {
                out.push((rel, std::fs::read_to_string(entry.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn rewind_restores_the_target_snapshot_and_archives_the_old_tip() {
    let repo = TestRepo::new();
    repo.write(".gitignore", "target/\n");
    repo.write("keep.txt", "v1\n");
    repo.write("gone/later.txt", "only in step 1\n");
    repo.write("run.sh", "#!/bin/sh\n");
    let (session, _, step1) = repo.checkpoint(&[]);
    let at_step1 = workspace(&repo);

    repo.write("keep.txt", "v2\n");
    std::fs::remove_dir_all(repo.path("gone")).unwrap();
    repo.write("added/new.txt", "new\n");
    std::fs::set_permissions(repo.path("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("keep.txt", repo.path("link")).unwrap();
    repo.write("target/cache.bin", "ignored build output\n");
    let (_, _, step2) = repo.checkpoint(&[]);
    let before = repo.user_state();

    let out: serde_json::Value =
        serde_json::from_str(&repo.ok(&["rewind", &format!("{session}@1"), "--json"])).unwrap();

    assert_eq!(out["step"], 1);
    assert!(out["saved_edits_step"].is_null(), "a clean workspace needs no user-edits step");
    assert_eq!(workspace(&repo), at_step1, "the workspace equals step 1, deletions included");
    assert!(!repo.path("added").exists(), "the directory emptied by the rewind is removed");
    assert_eq!(std::fs::metadata(repo.path("run.sh")).unwrap().permissions().mode() & 0o111, 0);
    assert_eq!(repo.read("target/cache.bin"), "ignored build output\n", "ignored files untouched");
    assert_eq!(repo.git(&["rev-parse", &TestRepo::session_ref(&session)]).trim(), step1);
    let archive = out["archived_as"].as_str().unwrap();
    assert!(archive.starts_with(&format!("refs/cairn/archive/{session}/")));
    assert_eq!(repo.git(&["rev-parse", archive]).trim(), step2, "the old tip is kept alive");
    assert!(
        repo.git(&["reflog", "show", &TestRepo::session_ref(&session)])
            .contains("rewind to step 1")
    );
    assert_eq!(repo.user_state(), before);
    // The next checkpoint continues from step 1.
    repo.write("keep.txt", "v3\n");
    let (_, step, commit) = repo.checkpoint(&[]);
    assert_eq!(step, 2);
    assert_eq!(repo.git(&["rev-parse", &format!("{commit}^")]).trim(), step1);
    repo.assert_fsck_clean();
}

#[test]
fn rewinding_a_dirty_workspace_records_the_edits_first() {
    let repo = TestRepo::new();
    repo.write("a.txt", "one\n");
    let (session, _, _) = repo.checkpoint(&[]);
    repo.write("a.txt", "two\n");
    repo.checkpoint(&[]);
    repo.write("a.txt", "unsaved work\n");
    repo.write("b.txt", "also unsaved\n");

    let out: serde_json::Value =
        serde_json::from_str(&repo.ok(&["rewind", "@~1", "--json"])).unwrap();

    assert_eq!(out["saved_edits_step"], 3);
    assert_eq!(repo.read("a.txt"), "one\n");
    assert!(!repo.path("b.txt").exists());
    let archive = out["archived_as"].as_str().unwrap();
    assert_eq!(
        repo.git(&["show", &format!("{archive}:a.txt")]),
        "unsaved work\n",
        "nothing is lost"
    );
    assert_eq!(repo.git(&["show", &format!("{archive}:b.txt")]), "also unsaved\n");
    let message = repo.git(&["log", "-1", "--format=%B", archive]);
    assert!(message.contains("Cairn-Kind: user-edits"), "{message}");
    assert_eq!(
        repo.git(&["rev-parse", &TestRepo::session_ref(&session)]),
        repo.git(&["rev-parse", &format!("{archive}~2")])
    );
}

#[test]
fn rewind_never_overwrites_a_file_the_snapshot_did_not_hold() {
    let repo = TestRepo::new();
    repo.write("data.txt", "recorded\n");
    let (session, _, _) = repo.checkpoint(&[]);
    std::fs::remove_file(repo.path("data.txt")).unwrap();
    repo.checkpoint(&[]);
    // Now an ignored file appears at the same path: the snapshot does not hold it.
    repo.write(".git/info/exclude", "data.txt\n");
    repo.write("data.txt", "precious ignored data\n");

    let out = repo.cairn(&["rewind", &format!("{session}@1")]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("left data.txt as it is"));
    assert_eq!(repo.read("data.txt"), "precious ignored data\n");
}

#[test]
fn rewind_to_an_unknown_step_changes_nothing() {
    let repo = TestRepo::new();
    let (session, _, tip) = repo.checkpoint(&[]);
    repo.write("a.txt", "unsaved\n");
    let before = repo.user_state();
    let err = repo.fails(&["rewind", &format!("{session}@9")]);
    assert!(err.contains("has steps 1 to 1"), "{err}");
    assert_eq!(repo.read("a.txt"), "unsaved\n");
    assert_eq!(repo.git(&["rev-parse", &TestRepo::session_ref(&session)]).trim(), tip);
    assert_eq!(repo.git(&["for-each-ref", "refs/cairn/archive"]), "");
    assert_eq!(repo.user_state(), before);
}

#[test]
fn resume_fork_records_unrecorded_edits_on_the_current_session_before_overwriting_them() {
    let repo = TestRepo::new();
    repo.write("tracked.txt", "v1\n");
    let (session, _, step1) = repo.checkpoint(&[]);
    repo.write("tracked.txt", "my unrecorded edit\n");
    repo.write("untracked.txt", "a new file of mine\n");

    let out = repo.cairn(&["resume", &format!("{session}@1"), "--fork"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("Forked {session}@1 as session ")), "{said}");

    // The fork made the workspace equal step 1 ...
    assert_eq!(repo.read("tracked.txt"), "v1\n");
    assert!(!repo.path("untracked.txt").exists());
    // ... after recording what it overwrote as a user-edits step of the original session.
    let tip = repo.git(&["rev-parse", &TestRepo::session_ref(&session)]).trim().to_string();
    assert_ne!(tip, step1, "the edits are a new step of {session}");
    assert_eq!(repo.git(&["rev-parse", &format!("{tip}^")]).trim(), step1);
    assert!(repo.git(&["log", "-1", "--format=%B", &tip]).contains("Cairn-Kind: user-edits"));
    assert_eq!(repo.git(&["show", &format!("{tip}:tracked.txt")]), "my unrecorded edit\n");
    assert_eq!(repo.git(&["show", &format!("{tip}:untracked.txt")]), "a new file of mine\n");
    repo.assert_fsck_clean();
}
