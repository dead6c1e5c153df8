//! `cairn hook claude-code|codex|gemini` and `cairn checkpoint --agent/--prompt/--transcript`:
//! other agents' work recorded as cairn sessions, fed with the payload fixtures of
//! `fixtures/hooks/`, read back with the git CLI and with cairn's own commands.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::support::TestRepo;
use crate::support::mock_model::{self, Reply};

/// A payload fixture with its placeholder workspace replaced by the test repository.
pub(crate) fn fixture(repo: &TestRepo, agent: &str, name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/hooks")
        .join(agent)
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("fixture {}: {err}", path.display()));
    text.replace("/home/user/project", repo.root.to_str().expect("a UTF-8 temp path"))
}

/// Runs `cairn hook <agent> [args]` with `stdin` piped in, from outside the repository (the
/// payload's `cwd` must be what finds it).
fn hook_with(repo: &TestRepo, agent: &str, args: &[&str], stdin: &str) -> Output {
    let mut all = vec!["hook", agent];
    all.extend_from_slice(args);
    piped_output(repo.command_in(&repo.home, &all), stdin)
}

/// Runs `command` with `stdin` piped in, and returns what it printed.
pub(crate) fn piped_output(mut command: Command, stdin: &str) -> Output {
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("cairn runs");
    // A usage error exits before reading: a broken pipe here is that, and the exit status
    // tells.
    let _ = child.stdin.take().expect("stdin").write_all(stdin.as_bytes());
    child.wait_with_output().expect("cairn finishes")
}

/// Pipes `payload` to `cairn hook <agent>` and asserts it recorded quietly: exit 0,
/// nothing on stdout (which Claude Code would add to the prompt), nothing on stderr.
pub(crate) fn hook(repo: &TestRepo, agent: &str, payload: &str) {
    let out = hook_with(repo, agent, &[], payload);
    assert_quiet_success(&out);
}

fn assert_quiet_success(out: &Output) {
    assert_eq!(
        (out.status.code(), out.stdout.as_slice(), String::from_utf8_lossy(&out.stderr).as_ref()),
        (Some(0), &b""[..], ""),
        "the hook should record silently"
    );
}

/// Runs `cairn hook codex PAYLOAD` as Codex's `notify` does (the payload as the last
/// argument, nothing on stdin) and asserts it recorded quietly.
fn codex_notify(repo: &TestRepo, payload: &str) {
    let out = repo
        .command_in(&repo.home, &["hook", "codex", payload])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_quiet_success(&out);
}

/// The ids of all sessions, by their refs.
fn sessions(repo: &TestRepo) -> Vec<String> {
    repo.git(&["for-each-ref", "--format=%(refname:lstrip=3)", "refs/cairn/sessions"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn only_session(repo: &TestRepo) -> String {
    let all = sessions(repo);
    assert_eq!(all.len(), 1, "exactly one session: {all:?}");
    all[0].clone()
}

/// `git cat-file -p <rev>:<path>` as JSON.
fn json_at(repo: &TestRepo, rev: &str, path: &str) -> Value {
    serde_json::from_str(&repo.git(&["cat-file", "-p", &format!("{rev}:{path}")]))
        .unwrap_or_else(|err| panic!("{rev}:{path} is JSON: {err}"))
}

/// Each step's kind and subject, oldest first, from the commit messages.
fn kinds_and_subjects(repo: &TestRepo, session: &str) -> Vec<(String, String)> {
    let log = repo.git(&[
        "log",
        "--reverse",
        "--format=%(trailers:key=Cairn-Kind,valueonly,separator=)%x09%s",
        &format!("{}~0", TestRepo::session_ref(session)),
        "--not",
        "HEAD",
    ]);
    log.lines()
        .map(|line| {
            let (kind, subject) = line.split_once('\t').expect("kind and subject");
            (kind.trim().to_string(), subject.to_string())
        })
        .collect()
}

fn kinds(repo: &TestRepo, session: &str) -> Vec<String> {
    kinds_and_subjects(repo, session).into_iter().map(|(kind, _)| kind).collect()
}

/// Plays a Claude Code turn, with the payloads Claude Code 2.1.197 sent for the scripted
/// turn of scripts/e2e-agents.sh: a prompt, a Write, an Edit and a Bash command (each
/// tool's effect on the files made first, as the agent would), a failed command, a
/// compaction and the end of the turn. (The real turn also read README.md before its Edit,
/// `post-tool-use-read`, left out here: a read-only step.)
fn claude_code_turn(repo: &TestRepo) {
    hook(repo, "claude-code", &fixture(repo, "claude-code", "user-prompt-submit"));
    repo.write(
        "src/greet.rs",
        "pub fn greet(name: &str) -> String {\n    format!(\"Hello, {name}!\")\n}\n",
    );
    hook(repo, "claude-code", &fixture(repo, "claude-code", "post-tool-use-write"));
    repo.write("README.md", "hello\nSee greet() in src/greet.rs.\n");
    hook(repo, "claude-code", &fixture(repo, "claude-code", "post-tool-use-edit"));
    repo.write("docs/greet.md", "greet(name) says hello\n");
    hook(repo, "claude-code", &fixture(repo, "claude-code", "post-tool-use-bash"));
    hook(repo, "claude-code", &fixture(repo, "claude-code", "post-tool-use-failure-bash"));
    hook(repo, "claude-code", &fixture(repo, "claude-code", "pre-compact"));
    hook(repo, "claude-code", &fixture(repo, "claude-code", "stop"));
}

#[test]
fn a_claude_code_turn_is_a_session_of_steps_in_plain_git() {
    let repo = TestRepo::new();
    repo.git(&["branch", "feature"]);
    let before = repo.user_state();

    claude_code_turn(&repo);

    let session = only_session(&repo);
    let reference = TestRepo::session_ref(&session);
    assert_eq!(
        kinds_and_subjects(&repo, &session),
        [
            ("prompt", "prompt: Add a greet function in src/greet.rs and mention it in the README"),
            ("tool", "Write src/greet.rs"),
            ("tool", "Edit README.md"),
            ("tool", "Bash: mkdir -p docs && echo 'greet(name) says hello' > docs/greet.md"),
            ("tool", "Bash: cat docs/missing.md (failed)"),
            ("compact", "compact (manual)"),
            (
                "model",
                "model: I added greet() in src/greet.rs, documented it in docs/greet.md and mentioned it in the READ…"
            ),
        ]
        .map(|(kind, subject)| (kind.to_string(), subject.to_string()))
    );
    // Step 1 sits on HEAD; the agent is named in the author and a trailer.
    assert_eq!(
        repo.git(&["rev-parse", &format!("{reference}~6^")]),
        repo.git(&["rev-parse", "HEAD"])
    );
    assert_eq!(
        repo.git(&["log", "-1", "--format=%an <%ae>", &reference]).trim(),
        "claude-code via cairn <cairn@localhost>"
    );
    assert!(
        repo.git(&["log", "-1", "--format=%B", &reference]).contains("Cairn-Agent: claude-code\n")
    );

    // Each step's diff is exactly its tool's effect.
    let changed = |rev: &str| {
        repo.git(&["diff", "--name-only", &format!("{rev}^"), rev, "--", ".", ":!.cairn"])
    };
    assert_eq!(changed(&format!("{reference}~5")), "src/greet.rs\n");
    assert_eq!(changed(&format!("{reference}~4")), "README.md\n");
    assert_eq!(changed(&format!("{reference}~3")), "docs/greet.md\n");
    assert_eq!(changed(&reference), "");

    let write = json_at(&repo, &format!("{reference}~5"), ".cairn/state/step.json");
    assert_eq!(write["kind"], "tool");
    assert_eq!(write["agent"], "claude-code");
    assert_eq!(write["hook"]["event"], "PostToolUse");
    assert_eq!(write["hook"]["agent_session"], "2fd86723-2273-4e72-ac99-913103706e24");
    assert_eq!(write["tool_calls"][0]["name"], "Write");
    assert_eq!(write["tool_calls"][0]["id"], "toolu_mock01");
    assert_eq!(write["tool_results"][0]["is_error"], false);
    let failed = json_at(&repo, &format!("{reference}~2"), ".cairn/state/step.json");
    assert_eq!(failed["tool_results"][0]["is_error"], true);
    assert_eq!(
        failed["tool_results"][0]["content"],
        "Exit code 1\ncat: docs/missing.md: No such file or directory"
    );
    let info = repo.git(&["cat-file", "-p", &format!("{reference}:.cairn/session.toml")]);
    assert!(info.contains("agent = \"claude-code\"\n"), "{info}");
    assert!(info.contains("agent_session = \"2fd86723-2273-4e72-ac99-913103706e24\"\n"), "{info}");

    // The conversation: the prompt, each call with its result, the last answer.
    let messages =
        repo.git(&["ls-tree", "--name-only", &format!("{reference}:.cairn/state/messages")]);
    let names: Vec<&str> = messages.lines().collect();
    assert_eq!(names.len(), 10, "{names:?}");
    assert_eq!(names[0], "000001-user.json");
    assert_eq!(names[9], "000010-assistant.json");
    let prompt = json_at(&repo, &reference, ".cairn/state/messages/000001-user.json");
    assert_eq!(prompt["text"], "Add a greet function in src/greet.rs and mention it in the README");
    let call = json_at(&repo, &reference, ".cairn/state/messages/000002-assistant.json");
    assert_eq!(call["tool_calls"][0]["name"], "Write");
    let result = json_at(&repo, &reference, ".cairn/state/messages/000003-toolresult.json");
    assert_eq!(result["call_id"], "toolu_mock01");

    assert_eq!(repo.user_state(), before, "HEAD, index, branches untouched");
    repo.assert_fsck_clean();
}

#[test]
fn log_export_diff_push_blame_and_rewind_work_on_a_hook_made_session() {
    let repo = TestRepo::new();
    claude_code_turn(&repo);
    let session = only_session(&repo);
    let before = repo.user_state();

    // log: the current session is the hook's.
    let log: Value = serde_json::from_str(&repo.ok(&["log", "--json"])).unwrap();
    let logged: Vec<&str> =
        log.as_array().unwrap().iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(logged, ["prompt", "tool", "tool", "tool", "tool", "compact", "model"]);
    assert_eq!(log[1]["agent"], "claude-code");

    // export: the conversation and each step's diff.
    let export: Value =
        serde_json::from_str(&repo.ok(&["export", &session, "--format", "json"])).unwrap();
    assert_eq!(export["session"]["agent"], "claude-code");
    let steps = export["steps"].as_array().unwrap();
    assert_eq!(
        steps[0]["messages"],
        json!([{"role": "user", "text": "Add a greet function in src/greet.rs and mention it in the README"}])
    );
    assert_eq!(steps[1]["messages"][0]["tool_calls"][0]["name"], "Write");
    assert_eq!(steps[1]["messages"][1]["role"], "tool_result");
    assert!(steps[1]["diff"].as_str().unwrap().contains("+pub fn greet(name: &str) -> String {"));
    assert_eq!(steps[6]["messages"][0]["role"], "assistant");
    let markdown = repo.ok(&["export", &session]);
    assert!(
        markdown
            .contains("- agent: claude-code (its session `2fd86723-2273-4e72-ac99-913103706e24`)"),
        "{markdown}"
    );
    assert!(markdown.contains("**Tool call** `Edit` (`toolu_mock03`)"), "{markdown}");

    // blame: the Edit wrote README's second line, the base commit its first.
    let blame: Value = serde_json::from_str(&repo.ok(&["blame", "README.md", "--json"])).unwrap();
    assert_eq!(blame[0]["origin"], "base");
    assert_eq!(
        (blame[1]["origin"].as_str(), blame[1]["session"].as_str(), blame[1]["step"].as_u64()),
        (Some("step"), Some(session.as_str()), Some(3))
    );
    let greet: Value =
        serde_json::from_str(&repo.ok(&["blame", "src/greet.rs", "--json"])).unwrap();
    assert!(greet.as_array().unwrap().iter().all(|line| line["step"] == 2), "{greet}");

    // diff and push, as for any session.
    let stat = repo.ok(&["diff", &format!("{session}@1"), &session, "--stat"]);
    for path in ["README.md", "docs/greet.md", "src/greet.rs"] {
        assert!(stat.contains(path), "{stat}");
    }
    let bare = repo.home.join("remote.git");
    repo.git(&["init", "-q", "--bare", bare.to_str().unwrap()]);
    repo.git(&["remote", "add", "origin", bare.to_str().unwrap()]);
    repo.ok(&["push", "origin", &session]);
    assert_eq!(
        repo.git(&["ls-remote", bare.to_str().unwrap(), &TestRepo::session_ref(&session)])
            .split_whitespace()
            .next(),
        Some(repo.git(&["rev-parse", &TestRepo::session_ref(&session)]).trim())
    );

    // rewind to the Write: README and the docs go back, the session ref moves, the old tip
    // is archived.
    repo.ok(&["rewind", &format!("{session}@2")]);
    assert_eq!(repo.read("README.md"), "hello\n");
    assert!(!repo.path("docs/greet.md").exists());
    assert!(repo.path("src/greet.rs").exists());
    assert_eq!(kinds(&repo, &session).len(), 2);
    assert_eq!(
        repo.git(&["for-each-ref", "--format=%(refname)", "refs/cairn/archive"]).lines().count(),
        1
    );

    // The agent's next event continues the same session from the rewound step.
    repo.write("README.md", "hello\nSee greet() in src/greet.rs.\n");
    hook(&repo, "claude-code", &fixture(&repo, "claude-code", "post-tool-use-edit"));
    assert_eq!(only_session(&repo), session);
    assert_eq!(kinds(&repo, &session), ["prompt", "tool", "tool"]);
    assert_eq!(repo.user_state(), before);
    repo.assert_fsck_clean();
}

#[test]
fn one_agent_session_is_one_cairn_session_even_without_the_cache() {
    let repo = TestRepo::new();
    let prompt = fixture(&repo, "claude-code", "user-prompt-submit");
    hook(&repo, "claude-code", &prompt);
    hook(&repo, "claude-code", &fixture(&repo, "claude-code", "stop"));
    let first = only_session(&repo);

    // Another agent session: another cairn session.
    let other = prompt.replace("2fd86723-2273-4e72-ac99-913103706e24", "another-session");
    hook(&repo, "claude-code", &other);
    assert_eq!(sessions(&repo).len(), 2);

    // The cache is only a cache: without it the first agent session still finds its own.
    std::fs::remove_dir_all(repo.path(".git/cairn/hooks")).unwrap();
    repo.write("notes.txt", "edited by hand between turns\n");
    hook(&repo, "claude-code", &prompt);
    assert_eq!(sessions(&repo).len(), 2);
    assert_eq!(
        kinds(&repo, &first),
        ["prompt", "model", "user-edits", "prompt"],
        "the user's edit stays theirs"
    );
    let edits =
        json_at(&repo, &format!("{}~1", TestRepo::session_ref(&first)), ".cairn/state/step.json");
    assert!(edits.get("agent").is_none(), "user edits are not the agent's: {edits}");
    assert!(
        repo.path(".git/cairn/hooks/claude-code/2fd86723-2273-4e72-ac99-913103706e24").exists(),
        "the cache is written again"
    );
}

#[test]
fn hooks_of_one_agent_session_firing_together_share_one_session() {
    let repo = TestRepo::new();
    let payload = fixture(&repo, "claude-code", "post-tool-use-bash");
    // All start, then all get their payload at once: they race for the new session.
    let mut children: Vec<_> = (0..8)
        .map(|_| {
            let mut command = repo.command_in(&repo.home, &["hook", "claude-code"]);
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            command.spawn().expect("cairn runs")
        })
        .collect();
    let inputs: Vec<_> = children.iter_mut().map(|child| child.stdin.take().unwrap()).collect();
    for mut input in inputs {
        input.write_all(payload.as_bytes()).unwrap();
    }
    for child in children {
        assert_quiet_success(&child.wait_with_output().unwrap());
    }
    let session = only_session(&repo);
    assert_eq!(kinds(&repo, &session), vec!["tool"; 8]);
    repo.assert_fsck_clean();
}

#[test]
fn codex_notify_passes_the_payload_as_its_last_argument() {
    let repo = TestRepo::new();
    let before = repo.user_state();

    repo.write("README.md", "hello\nSee greet() in src/greet.rs.\n");
    let payload = fixture(&repo, "codex", "notify-agent-turn-complete");
    codex_notify(&repo, &payload);

    let session = only_session(&repo);
    let reference = TestRepo::session_ref(&session);
    assert_eq!(
        kinds_and_subjects(&repo, &session),
        [
            ("prompt", "prompt: Add a greet function in src/greet.rs and mention it in the README"),
            (
                "model",
                "model: I added greet() in src/greet.rs, documented it in docs/greet.md and mentioned it in the READ…"
            ),
        ]
        .map(|(kind, subject)| (kind.to_string(), subject.to_string()))
    );
    // The prompt step holds the workspace as the turn found it; the model step its work.
    assert_eq!(repo.git(&["show", &format!("{reference}~1:README.md")]), "hello\n");
    assert_eq!(
        repo.git(&["show", &format!("{reference}:README.md")]),
        "hello\nSee greet() in src/greet.rs.\n"
    );
    let step = json_at(&repo, &reference, ".cairn/state/step.json");
    assert_eq!(
        step["hook"],
        json!({"event": "agent-turn-complete", "agent_session": "01a23c47-ce39-7d33-8d82-f7c68181f3a7", "turn_id": "01a23c47-ce57-7cc3-9437-078e7628b541"})
    );
    let answer = json_at(&repo, &reference, ".cairn/state/messages/000002-assistant.json");
    assert_eq!(
        answer["text"],
        "I added greet() in src/greet.rs, documented it in docs/greet.md and mentioned it in the README."
    );

    // The next turn of the thread continues the session.
    let next = payload.replace(
        "\"turn-id\": \"01a23c47-ce57-7cc3-9437-078e7628b541\"",
        "\"turn-id\": \"01a23c47-ce57-7cc3-9437-078e7628b542\"",
    );
    codex_notify(&repo, &next);
    assert_eq!(kinds(&repo, &only_session(&repo)), ["prompt", "model", "prompt", "model"]);
    assert_eq!(repo.user_state(), before);

    // On an unborn branch the turn's prompt stands on the empty workspace.
    let unborn = TestRepo::empty();
    unborn.write("notes.txt", "salutation\n");
    let payload = fixture(&unborn, "codex", "notify-agent-turn-complete");
    codex_notify(&unborn, &payload);
    let reference = TestRepo::session_ref(&only_session(&unborn));
    assert!(unborn.tree_files(&format!("{reference}~1")).is_empty());
    assert_eq!(unborn.tree_files(&reference).keys().collect::<Vec<_>>(), ["notes.txt"]);
    unborn.git(&["fsck", "--strict", "--no-dangling"]);
}

#[test]
fn codex_hooks_record_prompts_patches_commands_and_the_model() {
    let repo = TestRepo::new();
    hook(&repo, "codex", &fixture(&repo, "codex", "user-prompt-submit"));
    repo.write(
        "src/greet.rs",
        "pub fn greet(name: &str) -> String {\n    format!(\"Hello, {name}!\")\n}\n",
    );
    hook(&repo, "codex", &fixture(&repo, "codex", "post-tool-use-apply-patch-add"));
    repo.write("README.md", "hello\nSee greet() in src/greet.rs.\n");
    hook(&repo, "codex", &fixture(&repo, "codex", "post-tool-use-apply-patch-update"));
    repo.write("docs/greet.md", "greet(name) says hello\n");
    hook(&repo, "codex", &fixture(&repo, "codex", "post-tool-use-bash"));
    hook(&repo, "codex", &fixture(&repo, "codex", "post-tool-use-bash-failed"));
    hook(&repo, "codex", &fixture(&repo, "codex", "pre-compact"));
    hook(&repo, "codex", &fixture(&repo, "codex", "stop"));

    let session = only_session(&repo);
    let reference = TestRepo::session_ref(&session);
    assert_eq!(
        kinds_and_subjects(&repo, &session),
        [
            ("prompt", "prompt: Add a greet function in src/greet.rs and mention it in the README"),
            ("tool", "apply_patch src/greet.rs"),
            ("tool", "apply_patch README.md"),
            ("tool", "Bash: mkdir -p docs && echo 'greet(name) says hello' > docs/greet.md"),
            // Codex 0.169's PostToolUse gives a command's output only, not its exit code.
            ("tool", "Bash: cat docs/missing.md"),
            ("compact", "compact (auto)"),
            (
                "model",
                "model: I added greet() in src/greet.rs, documented it in docs/greet.md and mentioned it in the READ…"
            ),
        ]
        .map(|(kind, subject)| (kind.to_string(), subject.to_string()))
    );
    let changed = |rev: &str| {
        repo.git(&["diff", "--name-only", &format!("{rev}^"), rev, "--", ".", ":!.cairn"])
    };
    assert_eq!(changed(&format!("{reference}~5")), "src/greet.rs\n");
    assert_eq!(changed(&format!("{reference}~4")), "README.md\n");
    assert_eq!(changed(&format!("{reference}~3")), "docs/greet.md\n");
    assert_eq!(changed(&format!("{reference}~2")), "");
    let message = repo.git(&["log", "-1", "--format=%an%n%B", &reference]);
    assert!(message.starts_with("codex via cairn (gpt-5.5)\n"), "{message}");
    assert!(message.contains("Cairn-Model: gpt-5.5\n"), "{message}");
    let step = json_at(&repo, &format!("{reference}~5"), ".cairn/state/step.json");
    assert_eq!(step["hook"]["turn_id"], "01a23c47-ce57-7cc3-9437-078e7628b541");
    assert_eq!(
        step["tool_results"][0]["content"],
        "Exit code: 0\nWall time: 0 seconds\nOutput:\nSuccess. Updated the following files:\nA src/greet.rs\n"
    );
    repo.assert_fsck_clean();
}

#[test]
fn gemini_hooks_record_the_turn_and_its_prompt_once() {
    let repo = TestRepo::new();
    hook(&repo, "gemini", &fixture(&repo, "gemini", "before-agent"));
    repo.write(
        "src/greet.rs",
        "pub fn greet(name: &str) -> String {\n    format!(\"Hello, {name}!\")\n}\n",
    );
    hook(&repo, "gemini", &fixture(&repo, "gemini", "after-tool-write-file"));
    repo.write("README.md", "hello\nSee greet() in src/greet.rs.\n");
    hook(&repo, "gemini", &fixture(&repo, "gemini", "after-tool-replace"));
    repo.write("docs/greet.md", "greet(name) says hello\n");
    hook(&repo, "gemini", &fixture(&repo, "gemini", "after-tool-run-shell-command"));
    hook(&repo, "gemini", &fixture(&repo, "gemini", "after-tool-run-shell-command-failed"));
    hook(&repo, "gemini", &fixture(&repo, "gemini", "after-agent"));

    let session = only_session(&repo);
    assert_eq!(
        kinds_and_subjects(&repo, &session),
        [
            ("prompt", "prompt: Add a greet function in src/greet.rs and mention it in the README"),
            ("tool", "write_file src/greet.rs"),
            ("tool", "replace README.md"),
            (
                "tool",
                "run_shell_command: mkdir -p docs && echo 'greet(name) says hello' > docs/greet.md"
            ),
            ("tool", "run_shell_command: cat docs/missing.md (failed)"),
            (
                "model",
                "model: I added greet() in src/greet.rs, documented it in docs/greet.md and mentioned it in the READ…"
            ),
        ]
        .map(|(kind, subject)| (kind.to_string(), subject.to_string())),
        "AfterAgent repeats the prompt BeforeAgent recorded"
    );
    let export: Value =
        serde_json::from_str(&repo.ok(&["export", &session, "--format", "json"])).unwrap();
    let users = export["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|step| step["messages"].as_array().unwrap())
        .filter(|message| message["role"] == "user")
        .count();
    assert_eq!(users, 1);
    let reference = TestRepo::session_ref(&session);
    assert_eq!(
        repo.git(&["show", &format!("{reference}:README.md")]),
        "hello\nSee greet() in src/greet.rs.\n"
    );
    assert_eq!(
        repo.git(&["show", &format!("{reference}:docs/greet.md")]),
        "greet(name) says hello\n"
    );

    // Only AfterAgent configured: the turn's prompt is recorded from it.
    let alone = fixture(&repo, "gemini", "after-agent")
        .replace("ed401e60-89f6-486d-a4eb-69b541d40b2b", "gemini-two");
    hook(&repo, "gemini", &alone);
    let second = sessions(&repo).into_iter().find(|id| *id != session).expect("a second session");
    assert_eq!(kinds(&repo, &second), ["prompt", "model"]);
}

#[test]
fn unusable_payloads_and_unrecorded_events_say_why_and_change_nothing() {
    let repo = TestRepo::new();
    let before = repo.user_state();
    let outside = repo.home.join("not-a-repo");
    std::fs::create_dir_all(&outside).unwrap();
    let stop = fixture(&repo, "claude-code", "stop");
    let cases: Vec<(&str, Vec<&str>, String, i32, &str)> = vec![
        ("claude-code", vec![], "{\"session_id\": ".into(), 1, "the hook payload is not JSON"),
        ("claude-code", vec![], "".into(), 1, "the hook payload is empty"),
        ("gemini", vec![], "[\"AfterTool\"]".into(), 1, "not a JSON object"),
        (
            "claude-code",
            vec![],
            json!({"hook_event_name": "Stop", "cwd": "/x"}).to_string(),
            1,
            "has no `session_id`",
        ),
        ("codex", vec![], json!({"thread-id": "t"}).to_string(), 1, "has no `type`"),
        ("cursor", vec![], stop.clone(), 1, "unknown agent 'cursor'"),
        ("claude-code", vec!["--no-such-flag"], stop.clone(), 1, "unexpected argument"),
        (
            "claude-code",
            vec![],
            stop.replace("\"Stop\"", "\"TeammateIdle\""),
            0,
            "'TeammateIdle' event is not one cairn records",
        ),
        (
            "claude-code",
            vec![],
            fixture(&repo, "claude-code", "session-start"),
            0,
            "'SessionStart' event is not one cairn records",
        ),
        (
            "claude-code",
            vec![],
            stop.replace(repo.root.to_str().unwrap(), outside.to_str().unwrap()),
            0,
            "(the payload's cwd) is not inside a git repository",
        ),
    ];
    for (agent, args, payload, code, says) in cases {
        let out = hook_with(&repo, agent, &args, &payload);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{agent} {payload}: {stderr}");
        assert!(stderr.contains(says), "{agent} {payload}: expected {says:?} in {stderr:?}");
        assert!(out.stdout.is_empty(), "nothing on stdout");
        assert!(stderr.starts_with("cairn hook") || stderr.starts_with("error:"), "{stderr}");
        assert_eq!(repo.git(&["for-each-ref", "refs/cairn"]), "", "no ref after {agent} {payload}");
        assert_eq!(repo.user_state(), before);
    }
    assert!(!outside.join(".git").exists(), "no repository is created outside one");
}

#[test]
fn secrets_in_a_hook_payload_are_redacted_unless_configured_off() {
    let repo = TestRepo::new();
    let key = "AKIAIOSFODNN7EXAMPLE";
    let payload = fixture(&repo, "claude-code", "post-tool-use-bash").replace(
        "mkdir -p docs && echo 'greet(name) says hello' > docs/greet.md",
        &format!("aws configure set key {key}"),
    );
    hook(&repo, "claude-code", &payload);
    let reference = TestRepo::session_ref(&only_session(&repo));
    let stored = repo.git(&["log", "-1", "--format=%B", &reference])
        + &repo.git(&["cat-file", "-p", &format!("{reference}:.cairn/state/step.json")])
        + &repo.git(&[
            "cat-file",
            "-p",
            &format!("{reference}:.cairn/state/messages/000001-assistant.json"),
        ]);
    assert!(!stored.contains(key), "{stored}");
    assert!(stored.contains("[redacted AWS access key id]"), "{stored}");

    std::fs::write(repo.home.join("cairn-config.toml"), "[transcript]\nredact_secrets = false\n")
        .unwrap();
    hook(&repo, "claude-code", &payload.replace("2fd86723", "9d46bed2"));
    let plain =
        sessions(&repo).into_iter().map(|id| TestRepo::session_ref(&id)).collect::<Vec<_>>();
    let raw: String = plain
        .iter()
        .map(|r| repo.git(&["cat-file", "-p", &format!("{r}:.cairn/state/step.json")]))
        .collect();
    assert!(raw.contains(key), "redaction off keeps the text as it was");
}

#[test]
fn with_transcript_a_turns_end_stores_the_agents_transcript() {
    let repo = TestRepo::new();
    let transcript = repo.home.join("transcript.jsonl");
    let lines = "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":\"hi\"}}\n{\"type\":\"assistant\",\"message\":{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"hello\"}]}}\n";
    std::fs::write(&transcript, lines).unwrap();
    let stop = fixture(&repo, "claude-code", "stop");
    let stop: Value = serde_json::from_str(&stop).unwrap();
    let mut with_path = stop.clone();
    with_path["transcript_path"] = json!(transcript.to_str().unwrap());
    let out = hook_with(&repo, "claude-code", &["--with-transcript"], &with_path.to_string());
    assert_quiet_success(&out);
    let reference = TestRepo::session_ref(&only_session(&repo));
    assert_eq!(
        repo.git(&["cat-file", "-p", &format!("{reference}:.cairn/state/transcript.jsonl")]),
        lines
    );

    // A transcript that is gone does not stop the step; stderr says what was left out.
    let mut missing = stop;
    missing["transcript_path"] = json!(repo.home.join("gone.jsonl").to_str().unwrap());
    let out = hook_with(&repo, "claude-code", &["--with-transcript"], &missing.to_string());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr.contains("cannot read the transcript") && stderr.contains("recorded without it"),
        "{stderr}"
    );
    assert_eq!(kinds(&repo, &only_session(&repo)), ["model", "model"]);
}

#[test]
fn checkpoint_records_another_agents_prompt_and_transcript() {
    let repo = TestRepo::new();
    let before = repo.user_state();
    let transcript = repo.home.join("chat.json");
    std::fs::write(
        &transcript,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"fix the bug\"}]}\n",
    )
    .unwrap();
    repo.write("bug.rs", "fixed\n");

    let (session, step, commit) = repo.checkpoint(&[
        "--new",
        "--agent",
        "aider",
        "--prompt",
        "fix the bug",
        "--transcript",
        transcript.to_str().unwrap(),
    ]);
    assert_eq!(step, 1);
    assert_eq!(
        repo.git(&["log", "-1", "--format=%an%n%s", &commit]),
        "aider via cairn\nprompt: fix the bug\n"
    );
    let step_json = json_at(&repo, &commit, ".cairn/state/step.json");
    assert_eq!(
        (step_json["kind"].as_str(), step_json["agent"].as_str()),
        (Some("prompt"), Some("aider"))
    );
    assert_eq!(
        json_at(&repo, &commit, ".cairn/state/messages/000001-user.json"),
        json!({"role": "user", "text": "fix the bug"})
    );
    assert_eq!(
        repo.git(&["cat-file", "-p", &format!("{commit}:.cairn/state/transcript.json")]),
        std::fs::read_to_string(&transcript).unwrap()
    );
    assert!(
        repo.git(&["cat-file", "-p", &format!("{commit}:.cairn/session.toml")])
            .contains("agent = \"aider\"")
    );
    let export: Value =
        serde_json::from_str(&repo.ok(&["export", &session, "--format", "json"])).unwrap();
    assert_eq!(export["steps"][0]["messages"][0]["text"], "fix the bug");

    // A model step with -m; refused inputs record nothing.
    repo.checkpoint(&["--agent", "aider", "--kind", "model", "-m", "aider: done"]);
    let refs_before = repo.git(&["for-each-ref", "refs/cairn"]);
    let missing =
        repo.fails(&["checkpoint", "--prompt", "x", "--transcript", "/nonexistent/t.jsonl"]);
    assert!(missing.contains("cannot read the transcript /nonexistent/t.jsonl"), "{missing}");
    std::fs::write(&transcript, "{\"ok\": 1}\n{oops\n").unwrap();
    let invalid =
        repo.fails(&["checkpoint", "--new", "--transcript", transcript.to_str().unwrap()]);
    assert!(invalid.contains("neither JSON nor JSON Lines: line 2"), "{invalid}");
    let kind = repo.cairn(&["checkpoint", "--kind", "rewind"]);
    assert_eq!(kind.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&kind.stderr)
            .contains("a checkpoint is manual, prompt, model or tool")
    );
    let name = repo.cairn(&["checkpoint", "--agent", "bad name <x>"]);
    assert_eq!(name.status.code(), Some(2));
    assert_eq!(repo.git(&["for-each-ref", "refs/cairn"]), refs_before, "nothing recorded");
    assert_eq!(kinds(&repo, &session), ["prompt", "model"]);
    assert_eq!(repo.user_state(), before);
    repo.assert_fsck_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_continues_a_hook_made_session_with_its_conversation() {
    let repo = TestRepo::new();
    claude_code_turn(&repo);
    let session = only_session(&repo);
    let model = mock_model::start([Reply::chat_text("Carrying on from Claude Code's work.")]).await;
    repo.use_model(&model.base_url());
    let mut command = repo.command_in(
        &repo.root,
        &["resume", &session, "what is next?", "--approval", "auto", "--json"],
    );
    let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let requests = model.requests();
    let seen = requests.last().unwrap().body["messages"].as_array().unwrap().clone();
    let text = serde_json::to_string(&seen).unwrap();
    assert!(text.contains("Add a greet function in src/greet.rs"), "the hook's prompt: {text}");
    assert!(text.contains("toolu_mock01"), "the Write call: {text}");
    assert!(text.contains("what is next?"));
    assert_eq!(only_session(&repo), session);
    let all = kinds(&repo, &session);
    assert_eq!(&all[all.len() - 2..], ["prompt", "model"]);
}

#[test]
fn edits_made_before_an_agent_session_begins_are_the_users_step() {
    let repo = TestRepo::new();
    repo.write("README.md", "edited by hand before the agent started\n");
    hook(&repo, "claude-code", &fixture(&repo, "claude-code", "user-prompt-submit"));
    repo.write(
        "src/greet.rs",
        "pub fn greet(name: &str) -> String {\n    format!(\"Hello, {name}!\")\n}\n",
    );
    hook(&repo, "claude-code", &fixture(&repo, "claude-code", "post-tool-use-write"));

    let session = only_session(&repo);
    let reference = TestRepo::session_ref(&session);
    assert_eq!(kinds(&repo, &session), ["user-edits", "prompt", "tool"]);
    let authors =
        repo.git(&["log", "--reverse", "--format=%an <%ae>", &reference, "--not", "HEAD"]);
    let authors: Vec<&str> = authors.lines().collect();
    assert_eq!(authors[0], "Test User <test@example.com>", "the edits are the user's");
    assert!(authors[2].starts_with("claude-code via cairn"), "{authors:?}");
    let changed = |rev: &str| {
        repo.git(&["diff", "--name-only", &format!("{rev}^"), rev, "--", ".", ":!.cairn"])
    };
    assert_eq!(changed(&format!("{reference}~2")), "README.md\n");
    assert_eq!(changed(&reference), "src/greet.rs\n");

    // With nothing unrecorded, a new agent session starts with its prompt.
    let second = fixture(&repo, "claude-code", "user-prompt-submit")
        .replace("\"session_id\": \"", "\"session_id\": \"second-");
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-qm", "everything"]);
    hook(&repo, "claude-code", &second);
    let new = sessions(&repo).into_iter().find(|id| *id != session).expect("a second session");
    assert_eq!(kinds(&repo, &new), ["prompt"]);
    repo.assert_fsck_clean();
}

#[test]
fn codex_notify_and_stop_hook_together_record_each_turn_once() {
    let repo = TestRepo::new();
    let stop = fixture(&repo, "codex", "stop");
    let stop_payload: Value = serde_json::from_str(&stop).unwrap();
    let notify_for = |turn: &str| {
        let mut notify: Value =
            serde_json::from_str(&fixture(&repo, "codex", "notify-agent-turn-complete")).unwrap();
        notify["thread-id"] = stop_payload["session_id"].clone();
        notify["turn-id"] = turn.into();
        notify["input-messages"] =
            json!(["Add a greet function in src/greet.rs and mention it in the README"]);
        notify.to_string()
    };
    let notify = |payload: String| codex_notify(&repo, &payload);
    let turn = stop_payload["turn_id"].as_str().unwrap().to_string();

    // The hook first, then notify for the same turn.
    hook(&repo, "codex", &fixture(&repo, "codex", "user-prompt-submit"));
    repo.write("CHANGES", "- add CHANGES\n");
    hook(&repo, "codex", &stop);
    notify(notify_for(&turn));
    let session = only_session(&repo);
    assert_eq!(kinds(&repo, &session), ["prompt", "model"]);

    // The next turn's notify arriving before its Stop hook: still one model step.
    let next = "01a23c47-ce57-7cc3-9437-999999999999";
    repo.write("CHANGES", "- add CHANGES\n- list the files\n");
    notify(notify_for(next));
    hook(&repo, "codex", &stop.replace(&turn, next));
    assert_eq!(kinds(&repo, &session), ["prompt", "model", "prompt", "model"]);
    let reference = TestRepo::session_ref(&session);
    let step = json_at(&repo, &reference, ".cairn/state/step.json");
    assert_eq!(step["hook"]["turn_id"], next);
    repo.assert_fsck_clean();
}

/// Writes Gemini CLI's JSONL transcript for the PreCompress tests: a metadata line and one
/// line per message.
fn gemini_transcript(path: &Path, ids: &[&str]) {
    let mut text = json!({"sessionId": "ed401e60-89f6-486d-a4eb-69b541d40b2b", "projectHash": "p", "startTime": "2026-11-24T15:30:00.000Z"}).to_string();
    text.push('\n');
    for id in ids {
        text.push_str(&json!({"id": id, "timestamp": "2026-11-24T15:30:01.000Z", "type": "user", "content": [{"text": id}]}).to_string());
        text.push('\n');
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn gemini_precompress_is_a_compact_step_only_when_the_history_was_compressed() {
    let repo = TestRepo::new();
    let transcript = repo.home.join(".gemini/tmp/project/chats/session.jsonl");
    let with_transcript = |name: &str| {
        let mut payload: Value = serde_json::from_str(&fixture(&repo, "gemini", name)).unwrap();
        payload["transcript_path"] = transcript.to_str().unwrap().into();
        payload.to_string()
    };
    gemini_transcript(&transcript, &["m1", "m2", "m3", "m4"]);
    hook(&repo, "gemini", &with_transcript("before-agent"));
    // Gemini fires PreCompress before each model request; below its threshold nothing
    // follows.
    hook(&repo, "gemini", &with_transcript("pre-compress"));
    repo.write(
        "src/greet.rs",
        "pub fn greet(name: &str) -> String {\n    format!(\"Hello, {name}!\")\n}\n",
    );
    hook(&repo, "gemini", &with_transcript("after-tool-write-file"));
    hook(&repo, "gemini", &with_transcript("pre-compress"));
    hook(&repo, "gemini", &with_transcript("after-agent"));
    let session = only_session(&repo);
    assert_eq!(kinds(&repo, &session), ["prompt", "tool", "model"]);

    // A PreCompress after which Gemini replaced the history with a shorter one.
    hook(&repo, "gemini", &with_transcript("before-agent"));
    hook(&repo, "gemini", &with_transcript("pre-compress"));
    let mut text = std::fs::read_to_string(&transcript).unwrap();
    text.push_str(&json!({"$set": {"messages": [{"id": "summary"}, {"id": "m4"}]}}).to_string());
    text.push('\n');
    std::fs::write(&transcript, text).unwrap();
    repo.write("docs/greet.md", "greet(name) says hello\n");
    hook(&repo, "gemini", &with_transcript("after-tool-run-shell-command"));
    assert_eq!(
        kinds_and_subjects(&repo, &session)[3..],
        [
            ("prompt", "prompt: Add a greet function in src/greet.rs and mention it in the README"),
            ("compact", "compact (auto)"),
            (
                "tool",
                "run_shell_command: mkdir -p docs && echo 'greet(name) says hello' > docs/greet.md"
            )
        ]
        .map(|(kind, subject)| (kind.to_string(), subject.to_string()))
    );
    let reference = TestRepo::session_ref(&session);
    let compact = json_at(&repo, &format!("{reference}~1"), ".cairn/state/step.json");
    assert_eq!(compact["hook"]["event"], "PreCompress");
    assert_eq!(compact["hook"]["confirmed_by"], "AfterTool");
    // Evidence is used once: the next call records no second compaction.
    hook(&repo, "gemini", &with_transcript("after-agent"));
    assert_eq!(kinds(&repo, &session).iter().filter(|kind| *kind == "compact").count(), 1);

    // A transcript that is a FIFO or missing is no evidence, and the hook does not hang.
    let fifo = repo.home.join("fifo.jsonl");
    let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    let at_fifo = |name: &str| {
        let mut payload: Value = serde_json::from_str(&fixture(&repo, "gemini", name)).unwrap();
        payload["transcript_path"] = fifo.to_str().unwrap().into();
        payload.to_string()
    };
    hook(&repo, "gemini", &at_fifo("pre-compress"));
    hook(&repo, "gemini", &at_fifo("after-agent"));
    assert_eq!(kinds(&repo, &session).iter().filter(|kind| *kind == "compact").count(), 1);
    repo.assert_fsck_clean();
}

#[test]
fn a_gemini_shell_command_that_exits_non_zero_is_a_failed_step() {
    let repo = TestRepo::new();
    hook(&repo, "gemini", &fixture(&repo, "gemini", "before-agent"));
    let mut failed: Value =
        serde_json::from_str(&fixture(&repo, "gemini", "after-tool-run-shell-command")).unwrap();
    failed["tool_input"]["command"] = "make test".into();
    failed["tool_response"]["llmContent"] =
        "Output: 2 tests failed\nExit Code: 2\nProcess Group PGID: 4242".into();
    hook(&repo, "gemini", &failed.to_string());
    // Output that prints an exit code of its own does not fake a failure.
    failed["tool_input"]["command"] = "cat log".into();
    failed["tool_response"]["llmContent"] =
        "Output: Exit Code: 1\nall fine\nProcess Group PGID: 4243".into();
    hook(&repo, "gemini", &failed.to_string());

    let session = only_session(&repo);
    let subjects: Vec<String> =
        kinds_and_subjects(&repo, &session).into_iter().map(|(_, subject)| subject).collect();
    assert_eq!(
        subjects[1..],
        ["run_shell_command: make test (failed)", "run_shell_command: cat log"]
    );
    let reference = TestRepo::session_ref(&session);
    let step = json_at(&repo, &format!("{reference}~1"), ".cairn/state/step.json");
    assert_eq!(step["tool_results"][0]["is_error"], true);
}

fn setup(repo: &TestRepo, args: &[&str]) -> String {
    let mut all = vec!["hook"];
    all.extend_from_slice(args);
    repo.ok(&all)
}

const CLAUDE_SETTINGS: &str = "{\n  \"model\": \"opus\",\n  \"hooks\": {\n    \"PostToolUse\": [\n      {\n        \"matcher\": \"Write\",\n        \"hooks\": [\n          {\n            \"type\": \"command\",\n            \"command\": \"prettier --write\"\n          }\n        ]\n      }\n    ]\n  }\n}\n";

#[test]
fn hook_install_merges_into_the_agents_settings_and_uninstall_takes_out_only_that() {
    let repo = TestRepo::new();
    repo.write(".claude/settings.json", CLAUDE_SETTINGS);
    let before = repo.user_state();

    let out = setup(&repo, &["install", "claude-code"]);
    assert!(out.contains("added cairn's hooks for UserPromptSubmit, PostToolUse, PostToolUseFailure, Stop, PreCompact to"), "{out}");
    assert!(out.contains("\nnext: Claude Code reads its hooks when a session starts"), "{out}");
    let settings: Value = serde_json::from_str(&repo.read(".claude/settings.json")).unwrap();
    assert_eq!(settings["model"], "opus");
    assert_eq!(settings["hooks"]["PostToolUse"][0]["hooks"][0]["command"], "prettier --write");
    assert_eq!(
        settings["hooks"]["PostToolUse"][1]["hooks"][0]["command"],
        "cairn hook claude-code"
    );
    assert_eq!(repo.read(".claude/settings.json.cairn-backup"), CLAUDE_SETTINGS);
    // Installing again writes nothing.
    let installed = repo.read(".claude/settings.json");
    let out = setup(&repo, &["install", "claude-code"]);
    assert!(out.contains("already in"), "{out}");
    assert_eq!(repo.read(".claude/settings.json"), installed);

    // The installed hooks record, and status says so.
    hook(&repo, "claude-code", &fixture(&repo, "claude-code", "user-prompt-submit"));
    let status: Value =
        serde_json::from_str(&setup(&repo, &["status", "claude-code", "--json"])).unwrap();
    let agent = &status["agents"][0];
    assert_eq!(agent["agent"], "claude-code");
    assert_eq!(agent["files"][0]["scope"], "project");
    assert_eq!(agent["files"][0]["missing"], json!([]));
    assert_eq!(agent["files"][1]["exists"], false, "no user file: {agent}");
    assert!(agent["last_recorded_unix"].as_i64().is_some(), "{agent}");
    let text = setup(&repo, &["status"]);
    assert!(text.contains("last recorded a step: just now"), "{text}");
    assert!(
        text.contains("Codex\n") && text.contains("not configured: `cairn hook install codex`"),
        "{text}"
    );

    let out = setup(&repo, &["uninstall", "claude-code"]);
    assert!(out.starts_with("removed cairn's hooks for UserPromptSubmit"), "{out}");
    assert_eq!(repo.read(".claude/settings.json"), CLAUDE_SETTINGS);
    std::fs::remove_file(repo.path(".claude/settings.json.cairn-backup")).unwrap();
    assert_eq!(repo.user_state(), before);
    assert_eq!(repo.git(&["status", "--porcelain"]), "?? .claude/\n");
}

#[test]
fn hook_install_refuses_a_projects_settings_that_lead_outside_it() {
    let repo = TestRepo::new();
    // A cloned repository whose `.claude` points at the user's own settings.
    let outside = repo.home.join("dotfiles-claude");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("settings.json"), CLAUDE_SETTINGS).unwrap();
    std::os::unix::fs::symlink(&outside, repo.path(".claude")).unwrap();
    let err = repo.fails(&["hook", "install", "claude-code"]);
    assert!(err.contains(".claude is a symbolic link; cairn writes a project's settings only as a regular file inside the repository"), "{err}");
    assert_eq!(std::fs::read_to_string(outside.join("settings.json")).unwrap(), CLAUDE_SETTINGS);
    assert!(!outside.join("settings.json.cairn-backup").exists());

    // The same for Codex's project config, through a symlinked file inside a real directory.
    let theirs = repo.home.join("codex-config.toml");
    std::fs::write(&theirs, "model = \"theirs\"\n").unwrap();
    std::fs::create_dir_all(repo.path(".codex")).unwrap();
    std::os::unix::fs::symlink(&theirs, repo.path(".codex/config.toml")).unwrap();
    let err = repo.fails(&["hook", "install", "codex"]);
    assert!(err.contains("config.toml is a symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "model = \"theirs\"\n");

    // A settings file that is not plain JSON is left as it is.
    let gemini = "{\n  // mine\n  \"theme\": \"dark\"\n}\n";
    repo.write(".gemini/settings.json", gemini);
    let err = repo.fails(&["hook", "install", "gemini"]);
    assert!(err.contains("cairn does not edit") && err.contains("without comments"), "{err}");
    assert!(err.contains("`cairn hook install gemini --print` shows them"), "{err}");
    assert_eq!(repo.read(".gemini/settings.json"), gemini);
    let printed = setup(&repo, &["install", "gemini", "--print"]);
    assert!(
        printed.contains(
            "\"AfterTool\": [{ \"matcher\": \"*\", \"hooks\": [{ \"name\": \"cairn-tool\""
        ),
        "{printed}"
    );
}

#[test]
fn hook_status_reads_codex_reviews_and_gemini_folder_trust() {
    let repo = TestRepo::new();
    let out = setup(&repo, &["install", "codex", "--user"]);
    let config = repo.home.join(".codex/config.toml");
    assert!(out.contains(&format!("to {}", config.display())), "{out}");
    assert!(out.contains("open `/hooks` in Codex"), "{out}");
    let status = setup(&repo, &["status", "codex"]);
    assert!(status.contains("trusted  0 of 3 reviewed in Codex; trust the rest"), "{status}");

    // Codex records each reviewed handler under `[hooks.state]`, keyed by its place.
    let mut text = std::fs::read_to_string(&config).unwrap();
    for event in ["user_prompt_submit", "post_tool_use", "stop"] {
        text.push_str(&format!(
            "\n[hooks.state.\"{}:{event}:0:0\"]\ntrusted_hash = \"sha256:00\"\n",
            config.display()
        ));
    }
    std::fs::write(&config, &text).unwrap();
    let status = setup(&repo, &["status", "codex"]);
    assert!(status.contains("trusted  3 of 3 reviewed in Codex\n"), "{status}");
    // Uninstall leaves Codex's own review records.
    setup(&repo, &["uninstall", "codex", "--user"]);
    let left: toml::Table = toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(left["hooks"].as_table().unwrap().keys().collect::<Vec<_>>(), ["state"]);

    setup(&repo, &["install", "gemini"]);
    let status = setup(&repo, &["status", "gemini"]);
    assert!(status.contains("is not trusted yet"), "{status}");
    let root = repo.root.canonicalize().unwrap();
    std::fs::create_dir_all(repo.home.join(".gemini")).unwrap();
    std::fs::write(
        repo.home.join(".gemini/trustedFolders.json"),
        json!({ root.to_str().unwrap(): "TRUST_FOLDER" }).to_string(),
    )
    .unwrap();
    let status = setup(&repo, &["status", "gemini", "--json"]);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["agents"][0]["folder_trusted"], true, "{status}");
    let out = setup(&repo, &["install", "gemini"]);
    assert!(out.contains("next: nothing: Gemini CLI already trusts"), "{out}");
}

/// A cloned repository's `cairn.toml` that does not load (here, one that tries to turn
/// redaction off with a value of the wrong type) does not stop a hook: it says so, records
/// the prompt under the built-in settings (redaction on), and leaves the user's HEAD,
/// index and refs as they were.
#[test]
fn a_hook_under_a_broken_project_config_records_with_the_defaults() {
    let repo = TestRepo::new();
    repo.write("cairn.toml", "[transcript]\nredact_secrets = \"no\"\n");
    let before = repo.user_state();
    let key = format!("AKIA{:0<16}", "HOOK");
    let payload = fixture(&repo, "claude-code", "user-prompt-submit")
        .replace("Add a greet function", &format!("Use the key {key} to add a greet function"));

    let out = hook_with(&repo, "claude-code", &[], &payload);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty(), "nothing for Claude Code's prompt");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cairn.toml:2:18: invalid type: string \"no\", expected a boolean")
            && stderr.contains("using the default configuration"),
        "{stderr}"
    );
    let tip = format!("refs/cairn/sessions/{}", only_session(&repo));
    let grep = |text: &str| {
        let out = Command::new("git")
            .args(["grep", "-F", "-l", text, &tip, "--", ".cairn"])
            .current_dir(&repo.root)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(grep("Use the key [redacted AWS access key id]").contains(".cairn/"), "not recorded");
    assert_eq!(grep(&key), "", "redaction stays on");
    assert_eq!(repo.user_state(), before);
    repo.assert_fsck_clean();
}
