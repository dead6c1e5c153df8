//! `cairn land`: one ordinary commit with the session's changes, or a clear refusal that
//! changes nothing.

use crate::support::TestRepo;

fn head(repo: &TestRepo) -> String {
    repo.git(&["rev-parse", "HEAD"]).trim().to_string()
}

#[test]
fn a_session_lands_as_one_commit_without_cairn_state() {
    let repo = TestRepo::new();
    repo.write("keep.txt", "keep\n");
    repo.git(&["add", "keep.txt"]);
    repo.git(&["commit", "-qm", "base"]);
    let base = head(&repo);
    repo.write("src/new.rs", "fn main() {}\n");
    let (session, _, _) = repo.checkpoint(&["-m", "add main", "--new"]);
    std::fs::remove_file(repo.path("keep.txt")).unwrap();
    repo.write("README.md", "hello, landed\n");
    let (_, _, tip) = repo.checkpoint(&["-m", "tidy"]);

    let out = repo.ok(&["land", "-m", "Add a main and tidy up"]);
    assert!(out.contains(&format!("Landed session {session} on main")), "{out}");
    let landed = head(&repo);
    assert_eq!(repo.git(&["rev-parse", "HEAD~1"]).trim(), base, "one commit on top of the base");
    let message = repo.git(&["log", "-1", "--format=%B"]);
    assert!(message.starts_with("Add a main and tidy up\n"), "{message}");
    assert!(message.contains("Co-authored-by: cairn ("), "{message}");
    assert!(message.contains(&format!("Cairn-Session: {session}")), "{message}");
    let files = repo.git(&["ls-tree", "-r", "--name-only", "HEAD"]);
    assert_eq!(files.lines().collect::<Vec<_>>(), ["README.md", "src/new.rs"]);
    assert_eq!(repo.git(&["diff", &tip, &landed, "--", ".", ":!.cairn"]), "", "the session's tree");
    assert_eq!(repo.git(&["status", "--porcelain"]), "", "index and workspace match the commit");
    assert_eq!(repo.git(&["diff-files", "--name-only"]), "", "the index's stat data is fresh");
    assert!(repo.git(&["reflog", "-1", "main"]).contains("commit (cairn land): Add a main"));
    repo.assert_fsck_clean();
}

#[test]
fn a_branch_that_moved_elsewhere_takes_the_session_on_top() {
    let repo = TestRepo::new();
    repo.write("a.txt", "a\n");
    repo.git(&["add", "a.txt"]);
    repo.git(&["commit", "-qm", "base"]);
    repo.write("a.txt", "a, by the session\n");
    let (session, _, _) = repo.checkpoint(&["-m", "edit a", "--new"]);
    // Meanwhile the user commits an unrelated file.
    repo.write("c.txt", "c\n");
    repo.git(&["add", "c.txt"]);
    repo.git(&["commit", "-qm", "user's own commit"]);
    let users = head(&repo);

    let out = repo.ok(&["land", &session]);
    assert!(out.contains("Landed"), "{out}");
    assert_eq!(repo.git(&["rev-parse", "HEAD~1"]).trim(), users);
    assert_eq!(repo.git(&["show", "HEAD:a.txt"]), "a, by the session\n");
    assert_eq!(repo.git(&["show", "HEAD:c.txt"]), "c\n");
    let message = repo.git(&["log", "-1", "--format=%B"]);
    assert!(message.contains("Landed from cairn session"), "a generated message: {message}");
    assert!(message.contains("M a.txt"), "{message}");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

#[test]
fn conflicts_and_unrecorded_changes_are_refused_and_change_nothing() {
    let repo = TestRepo::new();
    repo.write("a.txt", "a\n");
    repo.git(&["add", "a.txt"]);
    repo.git(&["commit", "-qm", "base"]);
    repo.write("a.txt", "the session's a\n");
    let (session, _, _) = repo.checkpoint(&["-m", "edit a", "--new"]);

    // An edit the session did not record.
    repo.write("stray.txt", "not the session's\n");
    let before = repo.user_state();
    let err = repo.fails(&["land"]);
    assert!(err.contains("not part of the session: stray.txt"), "{err}");
    assert_eq!(repo.user_state(), before);
    std::fs::remove_file(repo.path("stray.txt")).unwrap();

    // The branch changed the same file differently.
    repo.write("a.txt", "the user's a\n");
    repo.git(&["commit", "-qam", "user edits a"]);
    let before = repo.user_state();
    let err = repo.fails(&["land", &session]);
    assert!(err.contains("the branch and the session both changed a.txt"), "{err}");
    assert_eq!(repo.user_state(), before);

    repo.git(&["checkout", "-q", "--detach"]);
    let err = repo.fails(&["land", &session]);
    assert!(err.contains("HEAD is detached"), "{err}");
}

#[test]
fn edits_to_different_lines_of_one_file_merge() {
    let repo = TestRepo::new();
    repo.write("a.txt", "1\n2\n3\n4\n5\n");
    repo.git(&["add", "a.txt"]);
    repo.git(&["commit", "-qm", "base"]);
    repo.write("a.txt", "one (session)\n2\n3\n4\n5\n");
    let (session, _, _) = repo.checkpoint(&["-m", "edit line 1", "--new"]);
    // The user commits a change to line 5 (staged on its own), and keeps both on disk.
    repo.write("a.txt", "1\n2\n3\n4\nfive (user)\n");
    repo.git(&["commit", "-qam", "user edits line 5"]);
    repo.write("a.txt", "one (session)\n2\n3\n4\nfive (user)\n");

    repo.ok(&["land", &session, "-m", "land line 1"]);
    assert_eq!(repo.git(&["show", "HEAD:a.txt"]), "one (session)\n2\n3\n4\nfive (user)\n");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    repo.assert_fsck_clean();
}

#[test]
fn staged_changes_that_are_not_the_sessions_are_never_overwritten() {
    let repo = TestRepo::new();
    repo.write("a.txt", "session\n");
    repo.checkpoint(&["-m", "add a", "--new"]);
    // Something else staged, while the workspace still holds the session's file.
    repo.write("a.txt", "staged by the user\n");
    repo.git(&["add", "a.txt"]);
    repo.write("a.txt", "session\n");
    let before = repo.user_state();
    let err = repo.fails(&["land"]);
    assert!(err.contains("staged changes"), "{err}");
    assert_eq!(repo.user_state(), before, "the index is as the user left it");

    repo.git(&["restore", "--staged", "a.txt"]);
    repo.ok(&["land"]);
    assert_eq!(repo.git(&["show", "HEAD:a.txt"]), "session\n");
}
