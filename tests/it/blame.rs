//! `cairn blame`: each line's origin across sessions, the base commit, and human edits.

use serde_json::Value;

use crate::support::TestRepo;

#[test]
fn lines_are_attributed_across_two_sessions_a_recorded_and_an_unrecorded_edit() {
    let repo = TestRepo::new();
    repo.write("app.txt", "one\ntwo\nthree\nfour\n");
    repo.git(&["add", "app.txt"]);
    repo.git(&["commit", "-qm", "base"]);
    let head = repo.git(&["rev-parse", "HEAD"]).trim().to_string();

    repo.write("app.txt", "one\nTWO by a\nthree\nfour\n");
    let (a, a_step, _) = repo.checkpoint(&["-m", "a edits line 2", "--new"]);
    // Session b starts with a's edit on disk: it must not take credit for it.
    repo.write("app.txt", "one\nTWO by a\nthree\nFOUR by b\n");
    let (b, b_step, _) = repo.checkpoint(&["-m", "b edits line 4", "--new"]);
    // A human edit recorded as a step, then one not recorded at all.
    repo.write("app.txt", "zero\none\nTWO by a\nthree\nFOUR by b\n");
    let (_, human_step, _) = repo.checkpoint(&["-m", "my edit"]);
    repo.write("app.txt", "zero\none\nTWO by a\nthree (unsaved)\nFOUR by b\n");

    let lines: Value = serde_json::from_str(&repo.ok(&["blame", "app.txt", "--json"])).unwrap();
    let origin = |n: usize| -> (String, String, u64) {
        let line = &lines[n - 1];
        (
            line["origin"].as_str().unwrap().to_string(),
            line["session"].as_str().or(line["commit"].as_str()).unwrap_or("").to_string(),
            line["step"].as_u64().unwrap_or(0),
        )
    };
    assert_eq!(origin(1), ("step".into(), b.clone(), human_step), "zero: the recorded edit");
    assert_eq!(origin(2), ("base".into(), head.clone(), 0), "one: untouched since HEAD");
    assert_eq!(origin(3), ("step".into(), a.clone(), a_step), "TWO: session a");
    assert_eq!(origin(4).0, "workspace", "three (unsaved): not recorded");
    assert_eq!(origin(5), ("step".into(), b.clone(), b_step), "FOUR: session b");
    assert_eq!(lines[2]["text"], "TWO by a");

    // At a checkpoint: the file as it was then, without later steps.
    let at: Value = serde_json::from_str(&repo.ok(&[
        "blame",
        "app.txt",
        "--at",
        &format!("{a}@{a_step}"),
        "--json",
    ]))
    .unwrap();
    let texts: Vec<&str> =
        at.as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["one", "TWO by a", "three", "four"]);
    assert_eq!(at[1]["session"], a.as_str());
    assert_eq!(at[3]["origin"], "base");

    let text = repo.ok(&["blame", "app.txt"]);
    assert!(text.lines().nth(2).unwrap().starts_with(&format!("{a}@{a_step} manual")), "{text}");
}

#[test]
fn blaming_what_is_not_a_text_file_in_the_workspace_fails_clearly() {
    let repo = TestRepo::new();
    repo.checkpoint(&["-m", "one", "--new"]);
    assert!(repo.fails(&["blame", "missing.txt"]).contains("cannot read missing.txt"));
    std::fs::write(repo.path("image.bin"), [0u8, 1, 2, 0]).unwrap();
    assert!(repo.fails(&["blame", "image.bin"]).contains("binary"));
    assert!(repo.fails(&["blame", "../outside.txt"]).contains("outside the workspace"));
}
