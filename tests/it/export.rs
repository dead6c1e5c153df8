//! `cairn export`: a session as a review document, checked against what the model saw.

use serde_json::{Value, json};

use crate::support::TestRepo;
use crate::support::mock_model::{self, Reply};

/// Runs a two-call session: the model writes a file whose text holds a code fence, then
/// answers. Returns the session id and the conversation the model was sent last.
async fn recorded_session(repo: &TestRepo) -> (String, Vec<Value>) {
    let model = mock_model::start([
        Reply::chat_tool_calls(&[(
            "c1",
            "write_file",
            json!({"path": "notes.md", "content": "Use:\n```sh\nmake\n```\n"}),
        )]),
        Reply::chat_text("Wrote notes.md."),
    ])
    .await;
    repo.use_model(&model.base_url());
    let mut command =
        repo.command_in(&repo.root, &["run", "write the notes", "--approval", "auto", "--json"]);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let session = repo
        .git(&["for-each-ref", "--format=%(refname:lstrip=3)", "refs/cairn/sessions"])
        .trim()
        .to_string();
    let requests = model.requests();
    let seen = requests.last().unwrap().body["messages"].as_array().unwrap().clone();
    (session, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_export_holds_every_message_once_and_each_steps_diff() {
    let repo = TestRepo::new();
    let (session, seen) = recorded_session(&repo).await;
    let export: Value = serde_json::from_str(&repo.ok(&["export", &session, "--format", "json"]))
        .expect("one JSON document");
    assert_eq!(export["session"]["id"], session.as_str());
    let steps = export["steps"].as_array().unwrap();
    let kinds: Vec<&str> = steps.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["prompt", "tool", "model"]);

    let messages: Vec<&Value> =
        steps.iter().flat_map(|s| s["messages"].as_array().unwrap()).collect();
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "tool_result", "assistant"]);
    assert_eq!(messages[0]["text"], "write the notes");
    assert_eq!(messages[3]["text"], "Wrote notes.md.");
    // The model was sent the same conversation, minus its own last answer (and the system prompt).
    let sent_roles: Vec<&str> =
        seen.iter().map(|m| m["role"].as_str().unwrap()).filter(|r| *r != "system").collect();
    assert_eq!(sent_roles, ["user", "assistant", "tool"]);

    let diff = steps[1]["diff"].as_str().unwrap();
    assert!(diff.contains("b/notes.md") && diff.contains("+```sh"), "{diff}");
    assert_eq!(steps[0]["diff"], "", "the prompt step changed no file");
    assert!(!diff.contains(".cairn"), "cairn's own state is hidden: {diff}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_markdown_export_reads_as_a_review() {
    let repo = TestRepo::new();
    let (session, _) = recorded_session(&repo).await;
    let md = repo.ok(&["export", &session]);
    assert!(md.starts_with(&format!("# cairn session `{session}`")), "{md}");
    assert!(md.contains("## Step 1 · prompt"));
    assert!(md.contains("**User**\n\n> write the notes"));
    assert!(md.contains("**Tool call** `write_file` (`c1`)"));
    assert!(md.contains("**Tool result** (`c1`)"));
    assert!(md.contains("**Assistant**\n\nWrote notes.md."));
    // The diff holds a ``` fence, so its own fence must be longer.
    assert!(md.contains("````diff\n"), "{md}");
    assert_eq!(md.matches("<details>").count(), md.matches("</details>").count());
}

#[test]
fn exporting_an_unknown_session_fails_clearly_and_changes_nothing() {
    let repo = TestRepo::new();
    repo.checkpoint(&["-m", "one", "--new"]);
    let refs = repo.git(&["for-each-ref", "refs/cairn"]);
    let err = repo.fails(&["export", "no-such-session"]);
    assert!(err.contains("no-such-session"), "{err}");
    assert_eq!(repo.git(&["for-each-ref", "refs/cairn"]), refs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewound_away_history_exports_from_its_archive_ref() {
    let repo = TestRepo::new();
    let (session, _) = recorded_session(&repo).await;
    repo.ok(&["rewind", &format!("{session}@1")]);
    let archive =
        repo.git(&["for-each-ref", "--format=%(refname)", "refs/cairn/archive"]).trim().to_string();
    let steps = |name: &str| -> usize {
        let export: Value =
            serde_json::from_str(&repo.ok(&["export", name, "--format", "json"])).unwrap();
        export["steps"].as_array().unwrap().len()
    };
    assert_eq!(steps(&session), 1, "the session now ends at step 1");
    assert_eq!(steps(&archive), 3, "the archive keeps the whole turn");
}
