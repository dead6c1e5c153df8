//! The sandbox end to end: a scripted model runs commands through the built binary in each
//! mode, and what they could write, reach and see is checked from outside, along with the
//! step commits that recorded them.

use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use crate::support::TestRepo;
use crate::support::mock_model::{self, MockModel, Reply};

/// Runs one `shell` call per command (one step each) with `--sandbox MODE`; returns the
/// output and each command's tool result.
async fn run_commands(repo: &TestRepo, mode: &str, commands: &[String]) -> (Output, Vec<String>) {
    let mut script: Vec<Reply> = commands
        .iter()
        .enumerate()
        .map(|(i, command)| {
            Reply::chat_tool_calls(&[(&format!("c{i}"), "shell", json!({"command": command}))])
        })
        .collect();
    script.push(Reply::chat_text("done"));
    let model = mock_model::start(script).await;
    repo.use_model(&model.base_url());
    let out =
        cairn(repo, &["run", "work", "--approval", "auto", "--json", "--sandbox", mode]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (out, results(&model, commands.len()))
}

/// Runs `cairn` while the mock server keeps serving.
async fn cairn(repo: &TestRepo, args: &[&str]) -> Output {
    let mut command = repo.command_in(&repo.root, args);
    tokio::task::spawn_blocking(move || command.output().expect("cairn runs")).await.unwrap()
}

fn results(model: &MockModel, count: usize) -> Vec<String> {
    let requests = model.requests();
    (0..count)
        .map(|i| {
            let id = format!("c{i}");
            requests[i + 1].body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["role"] == "tool" && m["tool_call_id"] == id.as_str())
                .and_then(|m| m["content"].as_str())
                .unwrap_or_else(|| panic!("no result for {id}"))
                .to_owned()
        })
        .collect()
}

fn session_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|event| event["type"] == "session_started")
        .and_then(|event| event["session"].as_str().map(String::from))
        .expect("session_started")
}

/// The hostile commands of the tests, and the places they aim at outside the workspace.
struct Targets {
    outside: tempfile::TempDir,
    listener: TcpListener,
}

impl Targets {
    fn new(repo: &TestRepo) -> Targets {
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), repo.path("link-out")).unwrap();
        Targets { outside, listener: TcpListener::bind("127.0.0.1:0").unwrap() }
    }

    fn outside(&self) -> &Path {
        self.outside.path()
    }

    /// Every command, in order: the first writes in the workspace, the rest try to get out.
    fn commands(&self, repo: &TestRepo) -> Vec<String> {
        let port = self.listener.local_addr().unwrap().port();
        vec![
            "echo inside > inside.txt".into(),
            format!("echo home > {}/x", repo.home.display()),
            format!("echo out > {}/tmp/../direct.txt", self.outside().display()),
            "echo hook > .git/hooks/x".into(),
            "echo link > link-out/through-link.txt".into(),
            format!("bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' && echo connected"),
        ]
    }

    /// Whether each escape of [`Targets::commands`] left a trace.
    fn escapes(&self, repo: &TestRepo) -> Vec<bool> {
        self.listener.set_nonblocking(true).unwrap();
        vec![
            repo.home.join("x").exists(),
            self.outside().join("direct.txt").exists(),
            repo.path(".git/hooks/x").exists(),
            self.outside().join("through-link.txt").exists(),
            self.listener.accept().is_ok(),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_write_allows_the_workspace_and_blocks_every_way_out() {
    let repo = TestRepo::new();
    let targets = Targets::new(&repo);
    std::fs::create_dir_all(targets.outside().join("tmp")).unwrap();
    let before = repo.user_state();

    let (out, results) = run_commands(&repo, "workspace-write", &targets.commands(&repo)).await;

    assert!(results[0].starts_with("exit code: 0"), "{}", results[0]);
    assert_eq!(repo.read("inside.txt"), "inside\n");
    assert_eq!(targets.escapes(&repo), [false; 5], "{results:#?}");
    for result in &results[1..] {
        assert!(result.contains("blocked by the sandbox"), "{result}");
    }
    assert!(results[3].contains("Read-only file system"), "{}", results[3]);
    // Landlock refuses the connect before the empty network namespace could.
    assert!(!results[5].contains("connected"), "{}", results[5]);
    assert_eq!(repo.user_state(), before);

    // The step of the command that wrote holds its file, and the blocked ones changed
    // nothing.
    let session = session_of(&out);
    let reference = TestRepo::session_ref(&session);
    let diff = |from: usize, to: usize| {
        repo.git(&[
            "diff",
            "--name-status",
            &format!("{reference}~{from}"),
            &format!("{reference}~{to}"),
            "--",
            ".",
            ":!.cairn",
        ])
    };
    // Steps: prompt, six commands, the final answer.
    assert_eq!(diff(7, 6), "A\tinside.txt\n");
    assert_eq!(diff(6, 1), "");
    repo.assert_fsck_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_allows_no_write_but_its_own_temporary_directory() {
    let repo = TestRepo::new();
    let targets = Targets::new(&repo);
    std::fs::create_dir_all(targets.outside().join("tmp")).unwrap();
    let mut commands = targets.commands(&repo);
    commands.push("echo scratch > \"$TMPDIR/scratch\" && cat \"$TMPDIR/scratch\"".into());

    let (_, results) = run_commands(&repo, "read-only", &commands).await;

    assert!(!repo.path("inside.txt").exists());
    assert!(results[0].contains("blocked by the sandbox"), "{}", results[0]);
    assert_eq!(targets.escapes(&repo), [false; 5], "{results:#?}");
    assert!(results[6].starts_with("exit code: 0") && results[6].contains("scratch"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_runs_every_command_as_the_user_would() {
    let repo = TestRepo::new();
    let targets = Targets::new(&repo);
    std::fs::create_dir_all(targets.outside().join("tmp")).unwrap();

    let (_, results) = run_commands(&repo, "off", &targets.commands(&repo)).await;

    assert_eq!(repo.read("inside.txt"), "inside\n");
    assert_eq!(targets.escapes(&repo), [true; 5], "{results:#?}");
    assert!(results.iter().all(|result| !result.contains("blocked by the sandbox")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_cannot_turn_the_sandbox_off_but_may_make_it_stricter() {
    let repo = TestRepo::new();
    repo.write("cairn.toml", "sandbox = \"off\"\n");

    // Without a flag, the project's `off` is ignored: commands stay confined.
    let model = mock_model::start([
        Reply::chat_tool_calls(&[("c0", "shell", json!({"command": "echo y > ../escaped.txt"}))]),
        Reply::chat_text("done"),
    ])
    .await;
    repo.use_model(&model.base_url());
    let out = cairn(&repo, &["run", "work", "--approval", "auto"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sandbox"), "the notice names it");
    assert!(!repo.root.parent().unwrap().join("escaped.txt").exists());
    assert!(results_of(&model)[0].contains("blocked by the sandbox"));

    repo.write("cairn.toml", "[sandbox]\nmode = \"read-only\"\n");
    let model = mock_model::start([
        Reply::chat_tool_calls(&[("c0", "shell", json!({"command": "echo z > in.txt"}))]),
        Reply::chat_text("done"),
    ])
    .await;
    repo.use_model(&model.base_url());
    let out = cairn(&repo, &["run", "work", "--approval", "auto"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!repo.path("in.txt").exists(), "the project made it read-only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_launcher_the_sandbox_is_unavailable_and_an_explicit_mode_is_not_dropped() {
    let repo = TestRepo::new();
    // `cairn` alone, without `cairn-sandbox` next to it.
    let bin = tempfile::tempdir().unwrap();
    let lone = bin.path().join("cairn");
    let built = Path::new(env!("CARGO_BIN_EXE_cairn"));
    std::fs::hard_link(built, &lone).or_else(|_| std::fs::copy(built, &lone).map(drop)).unwrap();
    let escaped = repo.root.parent().unwrap().join("escaped.txt");
    let run = |args: &'static [&'static str]| {
        let repo = &repo;
        let lone = &lone;
        async move {
            let model = mock_model::start([
                Reply::chat_tool_calls(&[(
                    "c0",
                    "shell",
                    json!({"command": "echo y > ../escaped.txt"}),
                )]),
                Reply::chat_text("done"),
            ])
            .await;
            repo.use_model(&model.base_url());
            crate::mcp::configure(repo, &crate::mcp::server_table("box", ""));
            let mut command = repo.program_in(lone, &repo.root, args);
            let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            (String::from_utf8_lossy(&out.stderr).into_owned(), results_of(&model).remove(0))
        }
    };

    // Asked for explicitly: the command is refused and the server not started, each
    // saying why.
    let (stderr, result) =
        run(&["run", "work", "--approval", "auto", "--sandbox", "workspace-write"]).await;
    assert!(stderr.contains("cairn-sandbox is missing"), "{stderr}");
    assert!(
        stderr.contains("each command is asked about (`--approval ask`) or refused"),
        "{stderr}"
    );
    assert!(
        stderr.contains("MCP server `box` did not start")
            && stderr.contains("so it was not started"),
        "{stderr}"
    );
    assert!(result.contains("the user can pass `--sandbox off`"), "{result}");
    assert!(!escaped.exists(), "an explicit sandbox was dropped");

    // The default mode: said once, then commands and servers run unconfined.
    let (stderr, result) = run(&["run", "work", "--approval", "auto"]).await;
    assert!(
        stderr.contains("NOT sandboxed") && stderr.contains("cairn-sandbox is missing"),
        "{stderr}"
    );
    assert!(stderr.contains("commands and MCP servers run unconfined"), "{stderr}");
    assert!(!stderr.contains("did not start"), "{stderr}");
    assert!(result.starts_with("exit code: 0"), "{result}");
    assert!(escaped.exists());
}

fn results_of(model: &MockModel) -> Vec<String> {
    results(model, 1)
}
