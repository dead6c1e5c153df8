//! The agent end to end: the built binary runs against a scripted model served over real
//! HTTP on 127.0.0.1, and the result is read back with the git CLI.

use std::process::Output;

use serde_json::{Value, json};

use crate::support::TestRepo;
use crate::support::mock_model::{self, MockModel, Reply};

/// Runs `cairn` with `args` while the mock server keeps serving.
async fn cairn(repo: &TestRepo, args: &[&str]) -> Output {
    let mut command = repo.command_in(&repo.root, args);
    tokio::task::spawn_blocking(move || command.output().expect("cairn runs")).await.unwrap()
}

fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON event"))
        .collect()
}

fn session_of(events: &[Value]) -> String {
    events.iter().find(|e| e["type"] == "session_started").expect("session_started")["session"]
        .as_str()
        .unwrap()
        .to_string()
}

/// (step, kind, subject) of every step of a session, oldest first, read with git.
fn steps(repo: &TestRepo, session: &str) -> Vec<(u64, String, String)> {
    let log = repo.git(&[
        "log",
        "--reverse",
        "--format=%(trailers:key=Cairn-Step,valueonly,separator=)|%(trailers:key=Cairn-Kind,valueonly,separator=)|%s",
        &TestRepo::session_ref(session),
        "--not",
        "HEAD",
    ]);
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.splitn(3, '|');
            let step = parts.next().unwrap().trim().parse().unwrap();
            let kind = parts.next().unwrap().trim().to_string();
            (step, kind, parts.next().unwrap().to_string())
        })
        .collect()
}

fn stored_messages(repo: &TestRepo, rev: &str) -> Vec<Value> {
    let names = repo.git(&["ls-tree", "--name-only", &format!("{rev}:.cairn/state/messages")]);
    names
        .lines()
        .map(|name| {
            serde_json::from_str(
                &repo.git(&["show", &format!("{rev}:.cairn/state/messages/{name}")]),
            )
            .unwrap()
        })
        .collect()
}

fn tool_message<'a>(request: &'a Value, call_id: &str) -> &'a Value {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool" && m["tool_call_id"] == call_id)
        .unwrap_or_else(|| panic!("no tool result for {call_id} in {request}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_step_session_is_one_commit_per_step_with_its_own_diff() {
    let repo = TestRepo::new();
    let model = mock_model::start([
        Reply::chat_tool_calls(&[
            ("call_1", "read_file", json!({"path": "README.md"})),
            ("call_2", "write_file", json!({"path": "notes.txt", "content": "one\n"})),
        ]),
        Reply::chat_tool_calls(&[(
            "call_3",
            "edit_file",
            json!({"path": "notes.txt", "old_string": "one", "new_string": "one\ntwo"}),
        )]),
        Reply::chat_text("I wrote notes.txt."),
    ])
    .await;
    repo.use_model(&model.base_url());
    let before = repo.user_state();

    let out = cairn(&repo, &["run", "take notes", "--approval", "auto", "--json"]).await;

    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = events(&out);
    let session = session_of(&events);
    let steps = steps(&repo, &session);
    let kinds: Vec<&str> = steps.iter().map(|(_, kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["prompt", "tool", "tool", "model"]);
    assert_eq!(steps[0].2, "prompt: take notes");
    assert_eq!(steps[1].2, "read_file README.md; write notes.txt (+1 -0)");
    assert_eq!(steps[2].2, "edit notes.txt (+1 -0)");
    assert_eq!(steps[3].2, "model: I wrote notes.txt.");
    let reference = TestRepo::session_ref(&session);
    let diff = |from: &str, to: &str| {
        repo.git(&["diff", "--name-status", from, to, "--", ".", ":!.cairn"])
    };
    assert_eq!(diff(&format!("{reference}~3"), &format!("{reference}~2")), "A\tnotes.txt\n");
    assert_eq!(diff(&format!("{reference}~2"), &format!("{reference}~1")), "M\tnotes.txt\n");
    assert_eq!(diff(&format!("{reference}~1"), &reference), "");
    let message = repo.git(&["log", "-1", "--format=%B", &format!("{reference}~2")]);
    assert!(
        message.contains("Cairn-Tools: read_file, write_file")
            && message.contains("Cairn-Model: mock/scripted"),
        "{message}"
    );
    assert_eq!(repo.read("notes.txt"), "one\ntwo\n");

    // The stored conversation is what the model was sent, plus its last answer.
    let requests = model.requests();
    assert_eq!(requests.len(), 3);
    let sent = requests[2].body["messages"].as_array().unwrap();
    let stored = stored_messages(&repo, &reference);
    assert_eq!(sent.len(), 1 + 6, "system + user, assistant, 2 results, assistant, result");
    assert_eq!(stored.len(), 7, "the 6 sent messages and the final answer");
    let roles: Vec<&str> = stored.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        [
            "user",
            "assistant",
            "tool_result",
            "tool_result",
            "assistant",
            "tool_result",
            "assistant"
        ]
    );
    assert_eq!(sent[1]["content"], stored[0]["text"]);
    assert_eq!(tool_message(&requests[2].body, "call_3")["content"], stored[5]["content"]);
    assert!(
        stored[2]["content"].as_str().unwrap().contains("hello"),
        "read_file's result: {}",
        stored[2]
    );

    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for kind in [
        "session_started",
        "step_recorded",
        "text_delta",
        "tool_call",
        "tool_result",
        "usage",
        "done",
    ] {
        assert!(kinds.contains(&kind), "no {kind} event in {kinds:?}");
    }
    let done = events.last().unwrap();
    assert_eq!(done["type"], "done");
    assert_eq!(done["reason"], "done");
    assert_eq!(done["checkpoint"], format!("{session}@4"));
    assert_eq!(repo.user_state(), before);
    repo.assert_fsck_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_runs_refuse_shell_and_writes_without_auto_approval() {
    let repo = TestRepo::new();
    let model = mock_model::start([
        Reply::chat_tool_calls(&[
            ("call_1", "shell", json!({"command": "echo hi > made-by-shell.txt"})),
            ("call_2", "write_file", json!({"path": "x.txt", "content": "x"})),
        ]),
        Reply::chat_text("Understood."),
    ])
    .await;
    repo.use_model(&model.base_url());

    let out = cairn(&repo, &["run", "try things"]).await;

    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!repo.path("made-by-shell.txt").exists());
    assert!(!repo.path("x.txt").exists());
    let second = &model.requests()[1].body;
    for id in ["call_1", "call_2"] {
        let result = tool_message(second, id)["content"].as_str().unwrap().to_string();
        assert!(result.contains("headless") && result.contains("--approval auto"), "{result}");
    }
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Understood.",
        "the answer alone goes to stdout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_escapes_and_bad_calls_are_answered_as_errors_and_create_nothing() {
    let repo = TestRepo::new();
    let outside = repo.home.join("escaped.txt");
    let model = mock_model::start([
        Reply::chat_tool_calls(&[
            ("call_1", "write_file", json!({"path": outside.to_str().unwrap(), "content": "x"})),
            ("call_2", "write_file", json!({"path": "../escaped.txt", "content": "x"})),
            (
                "call_3",
                "edit_file",
                json!({"path": ".git/config", "old_string": "a", "new_string": "b"}),
            ),
            ("call_4", "launch_rockets", json!({})),
            ("call_5", "write_file", json!({"path": "only-path.txt"})),
        ]),
        Reply::chat_text("Sorry."),
    ])
    .await;
    repo.use_model(&model.base_url());
    let git_config = std::fs::read(repo.path(".git/config")).unwrap();

    let out = cairn(&repo, &["run", "escape", "--approval", "auto"]).await;

    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!outside.exists() && !repo.root.parent().unwrap().join("escaped.txt").exists());
    assert_eq!(std::fs::read(repo.path(".git/config")).unwrap(), git_config);
    assert!(!repo.path("only-path.txt").exists());
    let second = &model.requests()[1].body;
    assert!(
        tool_message(second, "call_4")["content"]
            .as_str()
            .unwrap()
            .contains("unknown tool `launch_rockets`")
    );
    assert!(tool_message(second, "call_5")["content"].as_str().unwrap().contains("content"));
    for id in ["call_1", "call_2", "call_3"] {
        let content = tool_message(second, id)["content"].as_str().unwrap().to_string();
        assert!(!content.is_empty() && !content.starts_with("wrote"), "{id}: {content}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rewind_tool_restores_files_but_keeps_the_conversation() {
    let repo = TestRepo::new();
    let model = mock_model::start([
        Reply::chat_tool_calls(&[(
            "c1",
            "write_file",
            json!({"path": "a.txt", "content": "good\n"}),
        )]),
        Reply::chat_tool_calls(&[
            ("c2", "write_file", json!({"path": "a.txt", "content": "dead end\n"})),
            ("c3", "write_file", json!({"path": "b.txt", "content": "junk\n"})),
        ]),
        Reply::chat_tool_calls(&[("c4", "rewind", json!({"step": 2}))]),
        Reply::chat_text("Back on track."),
    ])
    .await;
    repo.use_model(&model.base_url());

    let out = cairn(&repo, &["run", "explore", "--approval", "auto", "--json"]).await;

    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(repo.read("a.txt"), "good\n");
    assert!(!repo.path("b.txt").exists());
    let session = session_of(&events(&out));
    let kinds: Vec<String> = steps(&repo, &session).into_iter().map(|(_, kind, _)| kind).collect();
    assert_eq!(kinds, ["prompt", "tool", "tool", "rewind", "model"]);
    let last = &model.requests()[3].body;
    assert!(
        tool_message(last, "c4")["content"]
            .as_str()
            .unwrap()
            .contains("Restored the workspace to step 2")
    );
    assert!(
        tool_message(last, "c2")["content"].is_string(),
        "the dead end stays in the conversation"
    );
    let files = repo.tree_files(&TestRepo::session_ref(&session));
    assert!(!files.contains_key("b.txt"), "the rewind step records the restored workspace");
    assert_eq!(
        repo.git(&["show", &format!("{}:a.txt", TestRepo::session_ref(&session))]),
        "good\n"
    );
    let messages = stored_messages(&repo, &TestRepo::session_ref(&session));
    assert_eq!(
        messages.len(),
        9,
        "user + 3 × (assistant, results) with 2 results once + final answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_never_stops_is_cut_at_max_steps() {
    let repo = TestRepo::new();
    let call = || Reply::chat_tool_calls(&[("c", "glob", json!({"pattern": "*.md"}))]);
    let model = mock_model::start([call(), call(), call()]).await;
    repo.use_model(&model.base_url());
    let out = cairn(&repo, &["run", "loop", "--max-steps", "2", "--json"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(model.requests().len(), 2);
    assert_eq!(events(&out).last().unwrap()["reason"], "max-steps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_exits_1_and_keeps_the_prompt_step() {
    let repo = TestRepo::new();
    let model =
        mock_model::start([Reply::json(401, json!({"error": {"message": "bad key"}}))]).await;
    repo.use_model(&model.base_url());
    let out = cairn(&repo, &["run", "hello", "--json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let events = events(&out);
    assert!(events.iter().any(|e| e["type"] == "error"), "{events:?}");
    let session = session_of(&events);
    assert_eq!(steps(&repo, &session).len(), 1, "the prompt is recorded; nothing else");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_the_user_makes_while_the_model_thinks_land_in_a_user_edits_step() {
    let repo = TestRepo::new();
    let model = mock_model::start([
        Reply::chat_tool_calls(&[(
            "c1",
            "write_file",
            json!({"path": "agent.txt", "content": "agent\n"}),
        )]),
        Reply::chat_tool_calls(&[(
            "c2",
            "edit_file",
            json!({"path": "agent.txt", "old_string": "agent", "new_string": "agent v2"}),
        )])
        .initial_delay(std::time::Duration::from_secs(2)),
        Reply::chat_text("Done."),
    ])
    .await;
    repo.use_model(&model.base_url());
    let run = {
        let mut command =
            repo.command_in(&repo.root, &["run", "work", "--approval", "auto", "--json"]);
        tokio::task::spawn_blocking(move || command.output().expect("cairn runs"))
    };
    // While the second reply is held back, the user edits a file in their editor.
    wait_for_requests(&model, 2).await;
    repo.write("README.md", "edited by the user\n");
    let out = run.await.unwrap();

    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let session = session_of(&events(&out));
    let steps = steps(&repo, &session);
    let kinds: Vec<&str> = steps.iter().map(|(_, kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["prompt", "tool", "tool", "user-edits", "model"]);
    let reference = TestRepo::session_ref(&session);
    let diff = |from: usize, to: usize| {
        repo.git(&[
            "diff",
            "--name-only",
            &format!("{reference}~{from}"),
            &format!("{reference}~{to}"),
            "--",
            ".",
            ":!.cairn",
        ])
    };
    assert_eq!(diff(3, 2), "agent.txt\n", "the agent's edit step holds only the agent's edit");
    assert_eq!(diff(2, 1), "README.md\n", "the user's edit has its own step");
}

/// Shell steps are recorded from what the file watcher saw once it is ready: each step
/// must still hold exactly what its command changed, new and renamed directories
/// included, and nothing under an ignored directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_shell_step_holds_exactly_what_its_command_changed() {
    let repo = TestRepo::new();
    repo.write(".gitignore", "target/\n");
    repo.write("src/lib/a.txt", "a\n");
    repo.write("docs/guide.md", "guide\n");
    repo.write("old.txt", "old\n");
    repo.write("target/debug/stale.o", "stale\n");
    let shell = |id: &str, command: &str| {
        Reply::chat_tool_calls(&[(id, "shell", json!({"command": command}))])
    };
    let model = mock_model::start([
        shell(
            "c1",
            "echo one >> src/lib/a.txt && rm old.txt && mkdir -p gen/deep \
             && echo g > gen/deep/x.txt && echo o > target/debug/out.o",
        ),
        shell("c2", "echo two >> src/lib/a.txt && echo o2 > target/debug/out.o"),
        shell("c3", "echo y > gen/deep/y.txt && mv docs manual && echo z > manual/z.md"),
        shell("c4", "echo three > gen/deep/x.txt && rm -r manual && echo b > src/lib/b.txt"),
        Reply::chat_text("Done."),
    ])
    .await;
    repo.use_model(&model.base_url());

    let out = cairn(&repo, &["run", "work", "--approval", "auto", "--json"]).await;

    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let session = session_of(&events(&out));
    let kinds: Vec<String> = steps(&repo, &session).into_iter().map(|(_, kind, _)| kind).collect();
    assert_eq!(kinds, ["prompt", "tool", "tool", "tool", "tool", "model"]);
    let reference = TestRepo::session_ref(&session);
    let diff = |from: usize, to: usize| {
        repo.git(&[
            "diff",
            "--no-renames",
            "--name-status",
            &format!("{reference}~{from}"),
            &format!("{reference}~{to}"),
            "--",
            ".",
            ":!.cairn",
        ])
    };
    assert_eq!(diff(5, 4), "A\tgen/deep/x.txt\nD\told.txt\nM\tsrc/lib/a.txt\n");
    assert_eq!(diff(4, 3), "M\tsrc/lib/a.txt\n");
    assert_eq!(
        diff(3, 2),
        "D\tdocs/guide.md\nA\tgen/deep/y.txt\nA\tmanual/guide.md\nA\tmanual/z.md\n"
    );
    assert_eq!(
        diff(2, 1),
        "M\tgen/deep/x.txt\nD\tmanual/guide.md\nD\tmanual/z.md\nA\tsrc/lib/b.txt\n"
    );
    assert_eq!(repo.git(&["show", &format!("{reference}:src/lib/a.txt")]), "a\none\ntwo\n");
    let last = repo.tree_files(&reference);
    assert!(!last.keys().any(|path| path.starts_with("target/")), "{last:?}");
    repo.assert_fsck_clean();
}

/// `CAIRN_BENCH_NO_SNAPSHOTS=1`, the agent benchmark's switch, runs the same loop with the
/// same tools but checkpoints nothing: no step, no session ref, no current session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_switch_without_snapshots_runs_the_tools_and_records_no_step() {
    let repo = TestRepo::new();
    let model = mock_model::start([
        Reply::chat_tool_calls(&[(
            "c1",
            "edit_file",
            json!({"path": "README.md", "old_string": "hello", "new_string": "hello there"}),
        )]),
        Reply::chat_tool_calls(&[("c2", "shell", json!({"command": "echo ran > out.txt"}))]),
        Reply::chat_text("Done."),
    ])
    .await;
    repo.use_model(&model.base_url());
    let mut command = repo.command_in(&repo.root, &["run", "work", "--approval", "auto", "--json"]);
    command.env("CAIRN_BENCH_NO_SNAPSHOTS", "1");
    let out =
        tokio::task::spawn_blocking(move || command.output().expect("cairn runs")).await.unwrap();

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("CAIRN_BENCH_NO_SNAPSHOTS=1 (a benchmark-only switch)"), "{stderr}");
    assert_eq!(model.requests().len(), 3);
    let results: Vec<bool> = events(&out)
        .iter()
        .filter(|e| e["type"] == "tool_result")
        .map(|e| e["is_error"].as_bool().unwrap())
        .collect();
    assert_eq!(results, [false, false], "both tools ran");
    assert!(!events(&out).iter().any(|e| e["type"] == "step_recorded"));
    assert_eq!(repo.read("README.md"), "hello there\n");
    assert_eq!(repo.read("out.txt"), "ran\n");
    assert_eq!(repo.git(&["for-each-ref", "refs/cairn/"]), "");
    let git_dir = repo.root.join(".git");
    assert!(!git_dir.join("cairn/main/current-session").exists());
}

async fn wait_for_requests(model: &MockModel, count: usize) {
    for _ in 0..500 {
        if model.requests().len() >= count {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the model never got {count} requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_killed_mid_turn_resumes_from_its_last_complete_step() {
    let repo = TestRepo::new();
    let model = mock_model::start([
        Reply::chat_tool_calls(&[(
            "c1",
            "write_file",
            json!({"path": "kept.txt", "content": "kept\n"}),
        )]),
        // Half an answer, then silence: the turn can never complete before the kill.
        Reply::sse("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hal\"}}]}\n\n")
            .hang(),
    ])
    .await;
    repo.use_model(&model.base_url());
    let mut child = repo
        .command_in(&repo.root, &["run", "first task", "--approval", "auto", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_requests(&model, 2).await;
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let session = repo
        .git(&["for-each-ref", "--format=%(refname:lstrip=3)", "refs/cairn/sessions"])
        .trim()
        .to_string();

    model.push(Reply::chat_text("Continuing where we left off."));
    let out =
        cairn(&repo, &["resume", &session, "and now the rest", "--approval", "auto", "--json"])
            .await;

    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let resumed = &model.requests()[2].body["messages"];
    let contents: Vec<String> =
        resumed.as_array().unwrap().iter().map(|m| m["content"].to_string()).collect();
    assert!(contents.iter().any(|c| c.contains("first task")), "{contents:?}");
    assert!(contents.iter().any(|c| c.contains("and now the rest")));
    assert_eq!(tool_message(&model.requests()[2].body, "c1")["role"], "tool");
    assert_eq!(repo.read("kept.txt"), "kept\n");
    let kinds: Vec<String> = steps(&repo, &session).into_iter().map(|(_, kind, _)| kind).collect();
    assert_eq!(kinds, ["prompt", "tool", "prompt", "model"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_never_reach_shell_commands_or_git_objects() {
    let repo = TestRepo::new();
    let model = mock_model::start([
        Reply::chat_tool_calls(&[(
            "c1",
            "shell",
            json!({"command": "env; echo marker-$OPENAI_API_KEY-end"}),
        )]),
        Reply::chat_text("Looked around."),
    ])
    .await;
    repo.use_model(&model.base_url());
    let key = "sk-cairn-test-9f8e7d6c5b4a39281706";
    let mut command = repo.command_in(&repo.root, &["run", "look", "--approval", "auto"]);
    command.env("OPENAI_API_KEY", key).env("ANTHROPIC_API_KEY", key);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let result =
        tool_message(&model.requests()[1].body, "c1")["content"].as_str().unwrap().to_string();
    assert!(result.contains("marker--end"), "the command ran without the key: {result}");
    assert!(!result.contains(key));
    // Every object in the repository, read back with git.
    let objects = repo.git(&["cat-file", "--batch-all-objects", "--batch"]);
    assert!(!objects.contains(key), "a key reached a git object");
    assert!(!objects.contains("sk-cairn-test"));
}

/// Every object reachable from cairn's refs, as text (for scanning).
fn all_cairn_objects(repo: &TestRepo) -> String {
    let ids = repo.git(&["rev-list", "--objects", "--glob=refs/cairn"]);
    let mut text = String::new();
    for id in ids.lines().filter_map(|line| line.split_whitespace().next()) {
        text.push_str(&repo.git(&["cat-file", "-p", id]));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_tool_output_are_redacted_in_the_stored_transcript_unless_turned_off() {
    let key_body = "MIIEowIBAAKCAQEAzVx7cairnTestSecretBody";
    let command = format!(
        "printf -- '-----BEGIN RSA PRIVATE KEY-----\\n{key_body}\\n-----END RSA PRIVATE KEY-----\\n'"
    );
    for redact in [true, false] {
        let repo = TestRepo::new();
        let model = mock_model::start([
            Reply::chat_tool_calls(&[("c1", "shell", json!({"command": command}))]),
            Reply::chat_text("Printed it."),
        ])
        .await;
        repo.use_model(&model.base_url());
        if !redact {
            let config = repo.home.join("cairn-config.toml");
            let mut text = std::fs::read_to_string(&config).unwrap();
            text.push_str("\n[transcript]\nredact_secrets = false\n");
            std::fs::write(&config, text).unwrap();
        }
        let out = cairn(&repo, &["run", "print the key", "--approval", "auto"]).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // The model saw the output as it was, within the session.
        assert!(
            tool_message(&model.requests()[1].body, "c1")["content"]
                .as_str()
                .unwrap()
                .contains(key_body)
        );
        let stored = all_cairn_objects(&repo);
        if redact {
            assert!(!stored.contains(key_body), "the key reached git");
            assert!(stored.contains("[redacted private key]"));
        } else {
            assert!(stored.contains(key_body), "redaction was turned off");
        }
    }
}
