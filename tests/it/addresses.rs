//! Checkpoint names and the errors for names that do not resolve.

use crate::support::TestRepo;

fn resolve(repo: &TestRepo, name: &str) -> String {
    let out = repo.ok(&["show", name]);
    out.lines().next().unwrap().to_string()
}

#[test]
fn every_checkpoint_form_resolves() {
    let repo = TestRepo::new();
    let (session, _, one) = repo.checkpoint(&[]);
    repo.write("a.txt", "x\n");
    repo.checkpoint(&[]);
    repo.write("a.txt", "y\n");
    let (_, _, three) = repo.checkpoint(&[]);

    assert!(resolve(&repo, "@").starts_with(&format!("step 3 of session {session}")));
    assert!(resolve(&repo, "@~2").starts_with("step 1 "));
    assert!(resolve(&repo, "@~").starts_with("step 2 "));
    assert!(resolve(&repo, &format!("{session}@2")).starts_with("step 2 "));
    assert!(resolve(&repo, &session).contains(&three), "a session id names its tip");
    assert!(resolve(&repo, &session[..15]).contains(&three), "a unique prefix works");
    assert!(resolve(&repo, &format!("{}@1", &session[..15])).contains(&one));
    assert!(resolve(&repo, &one[..10]).starts_with("step 1 "), "a raw revision of a step works");
    assert!(
        resolve(&repo, &format!("{}~1", TestRepo::session_ref(&session))).starts_with("step 2 ")
    );
}

#[test]
fn bad_names_fail_clearly() {
    let repo = TestRepo::new();
    let err = repo.fails(&["show", "@"]);
    assert!(err.contains("no current session") && err.contains("hint:"), "{err}");
    let (session, _, _) = repo.checkpoint(&[]);
    repo.checkpoint(&["--new"]);

    let err = repo.fails(&["show", "nonsense"]);
    assert!(err.contains("no checkpoint named 'nonsense'") && err.contains("hint:"), "{err}");
    let err = repo.fails(&["show", "2"]);
    assert!(err.contains("ambiguous"), "two sessions start with '2': {err}");
    let err = repo.fails(&["show", &format!("{session}@x")]);
    assert!(err.contains("step number"), "{err}");
    let err = repo.fails(&["show", "@~5"]);
    assert!(err.contains("no checkpoint named '@~5"), "{err}");
    let err = repo.fails(&["show", "HEAD"]);
    assert!(err.contains("not a cairn step"), "{err}");
    let err = repo.fails(&["log", "nosuchsession"]);
    assert!(err.contains("nosuchsession"), "{err}");
}

#[test]
fn a_session_ref_moved_to_a_foreign_commit_is_reported() {
    let repo = TestRepo::new();
    let (session, _, _) = repo.checkpoint(&[]);
    let head = repo.git(&["rev-parse", "HEAD"]);
    repo.git(&["update-ref", &TestRepo::session_ref(&session), head.trim()]);
    let err = repo.fails(&["show", &session]);
    assert!(
        err.contains(&format!("refs/cairn/sessions/{session} points at"))
            && err.contains("not a cairn step"),
        "{err}"
    );
    let err = repo.fails(&["checkpoint"]);
    assert!(err.contains("not a cairn step"), "{err}");
    assert_eq!(
        repo.git(&["rev-parse", &TestRepo::session_ref(&session)]),
        head,
        "nothing moved the ref"
    );
}
