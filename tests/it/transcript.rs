//! The persisted conversation (`cairn::transcript`): the JSON of each message kind is
//! pinned, a session recorded by an earlier cairn (`fixtures/sessions/`) reads unchanged,
//! and a session written by a newer cairn is refused.

use std::path::Path;

use cairn::llm::{Message, ToolArguments, ToolCall};
use cairn::transcript;
use serde_json::{Value, json};

use crate::support::mock_model::{self, Reply};
use crate::support::{TestRepo, assert_ok, cairn};

/// The session in `fixtures/sessions/v1.bundle` (see its README).
const V1_SESSION: &str = "20261202-0006-jwys";
/// The other session there: one `cairn checkpoint --new --agent script --prompt` step.
const V1_SCRIPTED_SESSION: &str = "20261202-0006-qsi0";

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sessions").join(name)
}

/// The JSON a step stores for `message`, as the store writes it.
fn stored(message: &Message) -> String {
    String::from_utf8(serde_json::to_vec_pretty(&transcript::encode(message)).unwrap()).unwrap()
}

fn call(id: &str, name: &str, arguments: ToolArguments) -> ToolCall {
    ToolCall { id: id.into(), name: name.into(), arguments }
}

#[test]
fn each_message_kind_is_stored_as_pinned_json() {
    let cases: Vec<(Message, &str)> = vec![
        (
            Message::User { text: "fix the test".into() },
            "{\n  \"role\": \"user\",\n  \"text\": \"fix the test\"\n}",
        ),
        (
            Message::Assistant {
                reasoning: Vec::new(),
                text: "Done.".into(),
                tool_calls: Vec::new(),
            },
            "{\n  \"role\": \"assistant\",\n  \"text\": \"Done.\"\n}",
        ),
        (
            Message::Assistant {
                reasoning: Vec::new(),
                text: String::new(),
                tool_calls: vec![call(
                    "call_1",
                    "read_file",
                    ToolArguments::Json(json!({"path": "a.txt", "limit": 3})),
                )],
            },
            r#"{
  "role": "assistant",
  "tool_calls": [
    {
      "arguments": {
        "json": {
          "limit": 3,
          "path": "a.txt"
        }
      },
      "id": "call_1",
      "name": "read_file"
    }
  ]
}"#,
        ),
        (
            Message::Assistant {
                reasoning: Vec::new(),
                text: "Checking.".into(),
                tool_calls: vec![call(
                    "call_2",
                    "shell",
                    ToolArguments::Invalid { raw: "{\"command\"".into(), error: "EOF".into() },
                )],
            },
            r#"{
  "role": "assistant",
  "text": "Checking.",
  "tool_calls": [
    {
      "arguments": {
        "invalid": {
          "error": "EOF",
          "raw": "{\"command\""
        }
      },
      "id": "call_2",
      "name": "shell"
    }
  ]
}"#,
        ),
        (
            Message::ToolResult {
                call_id: "call_1".into(),
                content: "1\n2\n".into(),
                is_error: false,
            },
            "{\n  \"call_id\": \"call_1\",\n  \"content\": \"1\\n2\\n\",\n  \"role\": \"tool_result\"\n}",
        ),
        (
            Message::ToolResult { call_id: "call_2".into(), content: "no".into(), is_error: true },
            "{\n  \"call_id\": \"call_2\",\n  \"content\": \"no\",\n  \"is_error\": true,\n  \"role\": \"tool_result\"\n}",
        ),
    ];
    for (message, pinned) in &cases {
        assert_eq!(stored(message), *pinned, "{message:?}");
    }
    // And each reads back as the message it was.
    let values: Vec<Value> = cases.iter().map(|(m, _)| transcript::encode(m)).collect();
    let read = transcript::decode_conversation(&values).unwrap();
    assert_eq!(read, cases.into_iter().map(|(m, _)| m).collect::<Vec<_>>());
}

#[test]
fn a_tool_call_in_step_json_is_pinned() {
    let good = call("c1", "shell", ToolArguments::Json(json!({"command": "ls"})));
    assert_eq!(
        transcript::step_tool_call(&good),
        json!({"id": "c1", "name": "shell", "arguments": {"command": "ls"}})
    );
    let bad = call("c2", "shell", ToolArguments::Invalid { raw: "{".into(), error: "EOF".into() });
    assert_eq!(
        transcript::step_tool_call(&bad),
        json!({"id": "c2", "name": "shell", "invalid_arguments": "{", "error": "EOF"})
    );
}

#[test]
fn a_message_of_no_known_kind_is_an_error_naming_it() {
    let messages = [json!({"role": "user", "text": "hi"}), json!({"role": "system", "text": "x"})];
    let err = transcript::decode_conversation(&messages).unwrap_err();
    assert_eq!(err.number, 2);
    assert!(err.to_string().starts_with("message 2: unknown variant `system`"), "{err}");
}

/// A repository holding `fixtures/sessions/v1.bundle`, its workspace as the session's tip
/// left it (the session's files are not on `main`).
fn v1_repo() -> TestRepo {
    let repo = TestRepo::empty();
    let bundle = fixture("v1.bundle");
    repo.git(&["fetch", "-q", "--update-head-ok", bundle.to_str().unwrap(), "+refs/*:refs/*"]);
    repo.git(&["reset", "-q", "--hard", "main"]);
    let tip = TestRepo::session_ref(V1_SESSION);
    for file in ["greet.txt", "notes.txt"] {
        repo.write(file, &repo.git(&["show", &format!("{tip}:{file}")]));
    }
    repo
}

/// The message files of a session's tip, as (name, bytes), in order.
fn message_blobs(repo: &TestRepo, session: &str) -> Vec<(String, String)> {
    let tip = TestRepo::session_ref(session);
    repo.git(&["ls-tree", "--name-only", &format!("{tip}:.cairn/state/messages")])
        .lines()
        .map(|name| {
            let path = format!("{tip}:.cairn/state/messages/{name}");
            (name.to_string(), repo.git(&["cat-file", "blob", &path]))
        })
        .collect()
}

#[test]
fn messages_recorded_by_cairn_0_1_0_read_and_write_back_byte_for_byte() {
    let repo = v1_repo();
    for session in [V1_SESSION, V1_SCRIPTED_SESSION] {
        let blobs = message_blobs(&repo, session);
        assert!(!blobs.is_empty(), "{session}");
        for (name, bytes) in blobs {
            let value: Value = serde_json::from_str(&bytes).unwrap();
            let message = transcript::Message::from_json(&value)
                .unwrap_or_else(|err| panic!("{session} {name}: {err}"));
            let written = serde_json::to_vec_pretty(&message.into_json()).unwrap();
            assert_eq!(String::from_utf8(written).unwrap(), bytes, "{session} {name}");
        }
    }
    assert_eq!(message_blobs(&repo, V1_SESSION).len(), 11);
}

#[test]
fn log_show_and_export_read_a_session_recorded_by_cairn_0_1_0() {
    let repo = v1_repo();
    let log = repo.ok(&["log", V1_SESSION]);
    for subject in [
        "prompt: Create greet.txt",
        "write greet.txt (+1 -0)",
        "read_file ? (failed)",
        "my notes",
        "model: Noted: you added notes.txt yourself.",
    ] {
        assert!(log.contains(subject), "{subject} in:\n{log}");
    }
    let show = repo.ok(&["show", &format!("{V1_SESSION}@4")]);
    assert!(show.contains("read_file") && show.contains("invalid_arguments"), "{show}");

    let markdown = repo.ok(&["export", V1_SESSION]);
    for part in [
        "> Create greet.txt, make it say hello, world, and check it",
        "**Tool call** `write_file` (`call_1`)",
        "**Assistant**\n\nNow the edit, and a check.",
        "**Tool error** (`call_3`)",
        "(invalid: the arguments are not valid JSON",
        "**Tool result** (`call_2`)",
        "Noted: you added notes.txt yourself.",
    ] {
        assert!(markdown.contains(part), "{part} in:\n{markdown}");
    }
    assert!(!markdown.contains("**Message**"), "every message has a known kind:\n{markdown}");

    // JSON export hands out the stored messages as they are.
    let export: Value = serde_json::from_str(&repo.ok(&["export", V1_SESSION, "--format", "json"]))
        .expect("json export");
    let exported: Vec<Value> = export["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|step| step["messages"].as_array().unwrap().clone())
        .collect();
    let stored: Vec<Value> = message_blobs(&repo, V1_SESSION)
        .iter()
        .map(|(_, bytes)| serde_json::from_str(bytes).unwrap())
        .collect();
    assert_eq!(exported, stored);
    assert_eq!(export["session"]["id"], V1_SESSION);

    let html = repo.ok(&["export", V1_SESSION, "--format", "html"]);
    assert!(html.contains("write_file") && html.contains("Noted: you added notes.txt"));
    assert!(!html.contains("<div class=\"who\">Message</div>"), "no unknown message");

    let scripted = repo.ok(&["export", V1_SCRIPTED_SESSION]);
    assert!(scripted.contains("> write other.txt"), "{scripted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_a_session_recorded_by_cairn_0_1_0_sends_the_model_the_same_conversation() {
    let repo = v1_repo();
    let model = mock_model::start([Reply::chat_text("Nothing else.")]).await;
    repo.use_model(&model.base_url());
    let out = cairn(&repo, &["resume", "--approval", "auto", V1_SESSION, "What changed?"]).await;
    assert_ok(&out);
    let requests = model.requests();
    let sent = requests[0].body["messages"].as_array().unwrap();
    // What cairn 0.1.0 sent for the same resume (the system prompt left out: it names the
    // date and the repository's path).
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("v1-resume-messages.json")).unwrap())
            .unwrap();
    assert_eq!(Value::Array(sent[1..].to_vec()), expected);
    assert!(String::from_utf8_lossy(&out.stderr).contains("at step 8 (11 messages)"));
}

/// Replaces the `session.toml` of `session`'s tip with `toml` (a new tip commit).
fn forge_session_toml(repo: &TestRepo, session: &str, toml: &str) {
    let session_ref = TestRepo::session_ref(session);
    let tip = repo.git(&["rev-parse", &session_ref]).trim().to_string();
    let root = &repo.root;
    let blob = repo.git_stdin_in(root, &["hash-object", "-w", "--stdin"], toml.as_bytes());
    let cairn_tree = repo.git(&["rev-parse", &format!("{tip}:.cairn")]).trim().to_string();
    let listing = repo.git(&["ls-tree", &cairn_tree]).replace(
        &repo.git(&["rev-parse", &format!("{tip}:.cairn/session.toml")]).trim().to_string(),
        &blob,
    );
    let new_cairn = repo.git_stdin_in(root, &["mktree"], listing.as_bytes());
    let top = repo.git(&["ls-tree", &tip]).replace(&cairn_tree, &new_cairn);
    let tree = repo.git_stdin_in(root, &["mktree"], top.as_bytes());
    let message = repo.git(&["log", "-1", "--format=%B", &tip]);
    let parent = repo.git(&["rev-parse", &format!("{tip}^")]).trim().to_string();
    let commit =
        repo.git_stdin_in(root, &["commit-tree", &tree, "-p", &parent], message.as_bytes());
    repo.git(&["update-ref", &session_ref, &commit]);
}

#[test]
fn a_session_written_by_a_newer_cairn_is_refused_and_nothing_changes() {
    let repo = TestRepo::new();
    repo.write("a.txt", "one\n");
    let (session, _, _) = repo.checkpoint(&["--new", "--prompt", "first"]);
    repo.write("a.txt", "two\n");
    repo.checkpoint(&["-m", "second"]);
    let newer = transcript::SCHEMA_VERSION + 1;
    forge_session_toml(
        &repo,
        &session,
        &format!("schema = {newer}\nid = \"{session}\"\nconversation = \"elsewhere\"\n"),
    );
    let before = (repo.user_state(), repo.git(&["for-each-ref"]), repo.read("a.txt"));
    let expected =
        format!("session {session} was written by a newer cairn (schema {newer}); upgrade cairn");
    for args in [
        vec!["resume", "--approval", "auto", session.as_str(), "go on"],
        vec!["export", session.as_str()],
        vec!["export", session.as_str(), "--format", "html"],
        vec!["sessions"],
        vec!["checkpoint", "-m", "third"],
    ] {
        let stderr = repo.fails(&args);
        assert!(stderr.contains(&expected), "cairn {args:?}: {stderr}");
    }
    assert_eq!((repo.user_state(), repo.git(&["for-each-ref"]), repo.read("a.txt")), before);
}
