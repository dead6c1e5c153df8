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
    let parent = repo.git(&["rev-parse", &format!("{tip}^")]).trim().to_string();
    let commit = repo.rewrite_step(&tip, &parent, path, content);
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

/// `git status --porcelain` including ignored files, as the user would see it (without
/// letting git refresh the index as it looks).
fn status(repo: &TestRepo) -> String {
    repo.git(&[
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--ignored",
        "--untracked-files=all",
    ])
}

#[test]
fn with_autocrlf_snapshots_work_and_rewind_round_trips_bytes_exactly() {
    let repo = TestRepo::new();
    repo.git(&["config", "core.autocrlf", "true"]);
    // Committed with CRLF: git stores LF in its blob, the file on disk keeps CRLF.
    std::fs::write(repo.path("crlf.txt"), b"one\r\ntwo\r\n").unwrap();
    std::fs::write(repo.path("lf.txt"), b"one\ntwo\n").unwrap();
    std::fs::write(repo.path("mixed.txt"), b"one\r\ntwo\nthree\r").unwrap();
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-qm", "line endings"]);
    let git_status = status(&repo);
    let state = repo.user_state();

    let (_, _, first) = repo.checkpoint(&["--new", "-m", "as checked in"]);
    std::fs::write(repo.path("crlf.txt"), b"changed\r\n").unwrap();
    std::fs::write(repo.path("lf.txt"), b"changed\n").unwrap();
    std::fs::remove_file(repo.path("mixed.txt")).unwrap();
    repo.checkpoint(&["-m", "changed"]);
    repo.ok(&["rewind", &first]);

    assert_eq!(std::fs::read(repo.path("crlf.txt")).unwrap(), b"one\r\ntwo\r\n");
    assert_eq!(std::fs::read(repo.path("lf.txt")).unwrap(), b"one\ntwo\n");
    assert_eq!(std::fs::read(repo.path("mixed.txt")).unwrap(), b"one\r\ntwo\nthree\r");
    // The snapshot holds the bytes on disk: cairn runs no conversion either way.
    assert_eq!(repo.git(&["cat-file", "blob", &format!("{first}:crlf.txt")]), "one\r\ntwo\r\n");
    assert_eq!(status(&repo), git_status);
    assert_eq!(repo.user_state(), state);
    repo.assert_fsck_clean();
}

#[test]
fn filters_never_run_lfs_pointers_are_stored_as_they_are() {
    let repo = TestRepo::new();
    let pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n";
    repo.write(".gitattributes", "*.bin filter=lfs diff=lfs merge=lfs -text\n*.txt filter=evil\n");
    repo.write("model.bin", pointer);
    repo.write("notes.txt", "plain\n");
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-qm", "attributes"]);
    // Configured after the commit, so only cairn could run them from here on. Each would
    // leave a marker; git-lfs itself is pointed at the same trap.
    let marker = repo.home.join("filter-ran");
    let trap = format!("touch {}; cat", marker.display());
    for key in ["filter.evil.clean", "filter.evil.smudge", "filter.lfs.clean", "filter.lfs.smudge"]
    {
        repo.git(&["config", key, &trap]);
    }
    repo.git(&["config", "filter.lfs.process", &format!("touch {}", marker.display())]);
    repo.git(&["config", "filter.evil.required", "true"]);

    repo.write("model.bin", &pointer.replace("12345", "54321"));
    repo.write("notes.txt", "edited\n");
    repo.write("new.txt", "new\n");
    let (_, _, first) = repo.checkpoint(&["--new", "-m", "edits"]);
    assert_eq!(
        repo.git(&["cat-file", "blob", &format!("{first}:model.bin")]),
        pointer.replace("12345", "54321")
    );
    assert_eq!(repo.git(&["cat-file", "blob", &format!("{first}:notes.txt")]), "edited\n");
    repo.write("notes.txt", "edited again\n");
    repo.write("model.bin", "not a pointer any more\n");
    repo.checkpoint(&["-m", "more"]);
    repo.ok(&["diff", &first, "@"]);
    repo.ok(&["rewind", &first]);
    repo.ok(&["show", "@"]);
    repo.ok(&["diff"]);

    assert_eq!(repo.read("model.bin"), pointer.replace("12345", "54321"));
    assert_eq!(repo.read("notes.txt"), "edited\n");
    assert!(!marker.exists(), "a filter command ran");
}

#[test]
fn a_device_file_is_skipped_without_reading_it() {
    let repo = TestRepo::new();
    // /dev/zero's numbers: reading it never ends, so a snapshot that read it would hang.
    let device = repo.path("zero");
    let made = std::process::Command::new("mknod").arg(&device).args(["c", "1", "5"]).output();
    match made {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            println!("skipped: mknod failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            return;
        }
        Err(err) => {
            println!("skipped: mknod cannot run: {err}");
            return;
        }
    }
    repo.write("kept.txt", "kept\n");
    let (_, _, commit) = repo.checkpoint(&["--new", "-m", "with a device"]);
    let files = repo.tree_files(&commit);
    assert!(files.contains_key("kept.txt") && !files.contains_key("zero"), "{files:?}");
    repo.write("kept.txt", "changed\n");
    repo.checkpoint(&["-m", "changed"]);
    repo.ok(&["rewind", &commit]);
    assert!(std::fs::symlink_metadata(&device).unwrap().file_type().is_char_device());
    repo.assert_fsck_clean();
}

/// `count` new files in one directory: all recorded, and a later step after one change.
fn many_untracked_files_in_one_directory(count: usize) {
    let repo = TestRepo::new();
    let dir = repo.path("many");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..count {
        std::fs::write(dir.join(format!("f{i:06}.txt")), format!("{i}\n")).unwrap();
    }
    let (_, _, first) = repo.checkpoint(&["--new", "-m", "many"]);
    let listed = repo.git(&["ls-tree", "--name-only", &format!("{first}:many")]);
    assert_eq!(listed.lines().count(), count);
    std::fs::write(dir.join("f000007.txt"), "changed\n").unwrap();
    let (_, _, second) = repo.checkpoint(&["-m", "one change"]);
    let changed = repo.git(&["diff", "--name-only", &first, &second, "--", ".", ":!.cairn"]);
    assert_eq!(changed, "many/f000007.txt\n");
    repo.ok(&["rewind", &first]);
    assert_eq!(std::fs::read_to_string(dir.join("f000007.txt")).unwrap(), "7\n");
    repo.assert_fsck_clean();
}

#[test]
fn twenty_thousand_untracked_files_in_one_directory() {
    many_untracked_files_in_one_directory(20_000);
}

/// The full size; too slow for every run (see README, "Run the tests").
#[test]
#[ignore]
fn a_hundred_thousand_untracked_files_in_one_directory() {
    many_untracked_files_in_one_directory(100_000);
}
