//! Odd workspaces: special files, names git allows but tools trip on, huge sparse files.
//! Each gets a clear outcome, and the repository stays sound.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;

use crate::support::TestRepo;

#[test]
fn fifos_odd_names_and_a_sparse_2_gib_file_are_handled_and_restored() {
    let repo = TestRepo::new();
    // A FIFO: reading it would block forever; it must be skipped, not hung on.
    let fifo = repo.path("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Names with a newline, invalid UTF-8, and two that differ only in case.
    std::fs::write(repo.path("line\nbreak.txt"), "newline name\n").unwrap();
    let invalid = repo.root.join(OsStr::from_bytes(b"bad-\xff-name.txt"));
    std::fs::write(&invalid, "invalid utf-8 name\n").unwrap();
    repo.write("Case.txt", "upper\n");
    repo.write("case.txt", "lower\n");
    // 2 GiB that takes no disk: over the size limit for new files, so left out and listed.
    let sparse = std::fs::File::create(repo.path("huge.img")).unwrap();
    sparse.set_len(2 << 30).unwrap();

    let out = repo.cairn(&["checkpoint", "--new", "--json", "-m", "odd"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let skipped = report["skipped"].to_string();
    assert!(skipped.contains("huge.img") && skipped.contains("limit"), "{skipped}");
    let commit = report["commit"].as_str().unwrap().to_string();

    let listed = repo.git(&["ls-tree", "-r", "-z", "--name-only", &commit]);
    let names: Vec<&str> = listed.split('\0').filter(|n| !n.starts_with(".cairn/")).collect();
    for expected in ["line\nbreak.txt", "Case.txt", "case.txt"] {
        assert!(names.contains(&expected), "{expected:?} missing from {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("bad-") && n.ends_with("-name.txt")), "{names:?}");
    assert!(!names.contains(&"pipe") && !names.contains(&"huge.img"), "{names:?}");
    repo.assert_fsck_clean();

    // Rewinding away and back restores the odd names byte for byte; the FIFO and the big
    // file, never recorded, are left alone.
    std::fs::remove_file(repo.path("line\nbreak.txt")).unwrap();
    std::fs::remove_file(&invalid).unwrap();
    repo.write("case.txt", "changed\n");
    repo.checkpoint(&["-m", "removed"]);
    repo.ok(&["rewind", &commit]);
    assert_eq!(repo.read("line\nbreak.txt"), "newline name\n");
    assert_eq!(std::fs::read(&invalid).unwrap(), b"invalid utf-8 name\n");
    assert_eq!(repo.read("case.txt"), "lower\n");
    assert_eq!(repo.read("Case.txt"), "upper\n");
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(std::fs::metadata(repo.path("huge.img")).unwrap().len(), 2 << 30);
}

/// Replaces `path` in the tip commit of `session` with `content`, as a hand-edited or
/// damaged history would.
fn corrupt_tip(repo: &TestRepo, session: &str, path: &str, content: &str) {
    let session_ref = TestRepo::session_ref(session);
    let tip = repo.git(&["rev-parse", &session_ref]).trim().to_string();
    let index = repo.home.join("corrupt-index");
    let git = |args: &[&str], input: Option<&str>| -> String {
        use std::io::Write as _;
        let mut child = std::process::Command::new("git")
            .args(args)
            .current_dir(&repo.root)
            .env("GIT_INDEX_FILE", &index)
            .env("HOME", &repo.home)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.unwrap_or("").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    git(&["read-tree", &tip], None);
    let blob = git(&["hash-object", "-w", "--stdin"], Some(content));
    git(&["update-index", "--cacheinfo", &format!("100644,{blob},{path}")], None);
    let tree = git(&["write-tree"], None);
    let message = repo.git(&["log", "-1", "--format=%B", &tip]);
    let parent = repo.git(&["rev-parse", &format!("{tip}^")]).trim().to_string();
    let commit = git(&["commit-tree", &tree, "-p", &parent], Some(&message));
    repo.git(&["update-ref", &session_ref, &commit]);
}

#[test]
fn a_session_with_a_corrupt_state_file_reports_it_and_the_others_work() {
    let repo = TestRepo::new();
    repo.write("a.txt", "a\n");
    let (damaged, _, _) = repo.checkpoint(&["-m", "a", "--new"]);
    repo.write("b.txt", "b\n");
    let (healthy, _, _) = repo.checkpoint(&["-m", "b", "--new"]);
    corrupt_tip(&repo, &damaged, ".cairn/state/step.json", "{not json");

    let listed = repo.ok(&["sessions"]);
    assert!(listed.contains(&damaged) && listed.contains(&healthy), "{listed}");
    for command in [vec!["show", damaged.as_str()], vec!["export", damaged.as_str()]] {
        let err = repo.fails(&command);
        assert!(err.contains("corrupt") && err.contains("step.json"), "{command:?}: {err}");
    }
    repo.ok(&["show", &healthy]);
    repo.ok(&["export", &healthy]);
    repo.write("b.txt", "b2\n");
    let (session, step, _) = repo.checkpoint(&["-m", "b2"]);
    assert_eq!((session, step), (healthy, 2), "the healthy session goes on");
}
