//! MCP servers end to end: the built `cairn` against the scripted model and the test MCP
//! server (`tests/support/mcp_test_server.rs`, built by `cargo test` as an example; with
//! `cargo test --test it` alone, build it first with `cargo build --example mcp_test_server`).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use crate::support::mock_model::{self, Reply};
use crate::support::{TestRepo, cairn, session_of};

/// The test server's binary, next to the `cairn` binary's directory.
fn server() -> PathBuf {
    let cairn = Path::new(env!("CARGO_BIN_EXE_cairn"));
    let path = cairn.parent().unwrap().join("examples").join("mcp_test_server");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --example mcp_test_server` (plain `cargo test` builds it)",
        path.display()
    );
    path
}

/// An `[mcp.<name>]` table running the test server with `extra` lines.
pub(crate) fn server_table(name: &str, extra: &str) -> String {
    format!("\n[mcp.{name}]\ncommand = {}\n{extra}\n", toml_string(&server().display().to_string()))
}

fn toml_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// Adds `tables` to the test's user configuration.
pub(crate) fn configure(repo: &TestRepo, tables: &str) {
    let path = repo.home.join("cairn-config.toml");
    let mut config = std::fs::read_to_string(&path).unwrap_or_default();
    config.push_str(tables);
    std::fs::write(path, config).unwrap();
}

/// Where the test servers keep their counters: outside the workspace, so a confined
/// server may write there only because [`counted`] allows it.
fn counters(repo: &TestRepo) -> PathBuf {
    let dir = repo.home.join("mcp-counters");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A counter file the test server appends a line to at each start.
pub(crate) fn counter(repo: &TestRepo, name: &str) -> PathBuf {
    counters(repo).join(format!("{name}.starts"))
}

pub(crate) fn starts(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

/// The process ids the test server wrote to a counter file.
pub(crate) fn pids(path: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|line| line.strip_prefix("started ")?.parse().ok()).collect()
}

/// The live processes whose command line holds `tag` (the host's ids, wherever they run).
pub(crate) fn tagged(tag: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(tag) && running(*pid)
        })
        .collect()
}

/// Whether a process still runs: it exists and is not a zombie waiting for its parent.
pub(crate) fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => {
            stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        }
        Err(_) => false,
    }
}

/// Lines of an `[mcp.<name>]` table that make the server count its starts (its sandbox
/// may write the counters).
pub(crate) fn counted(repo: &TestRepo, name: &str) -> String {
    format!(
        "env = {{ MCP_TEST_COUNTER = {} }}\nsandbox.writable_paths = [{}]",
        toml_string(&counter(repo, name).display().to_string()),
        toml_string(&counters(repo).display().to_string()),
    )
}

pub(crate) fn tool_names(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["function"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn tool_result(request: &Value, call_id: &str) -> String {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool" && m["tool_call_id"] == call_id)
        .unwrap_or_else(|| panic!("no tool result for {call_id} in {request}"))["content"]
        .as_str()
        .unwrap()
        .to_string()
}

fn step_json(repo: &TestRepo, rev: &str) -> Value {
    serde_json::from_str(&repo.git(&["cat-file", "-p", &format!("{rev}:.cairn/state/step.json")]))
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_list_shows_each_server_its_status_and_tools() {
    let repo = TestRepo::new();
    let mut tables = server_table("echo", &counted(&repo, "echo"));
    tables += &server_table("picky", "tools = [\"echo\", \"nope\"]");
    tables += &server_table("off", &format!("enabled = false\n{}", counted(&repo, "off")));
    tables += &server_table("dies", "args = [\"--fail-at-start\"]");
    tables += "\n[mcp.missing]\ncommand = \"/nonexistent/cairn-no-such-server\"\n";
    configure(&repo, &tables);

    let out = cairn(&repo, &["mcp", "list", "--json"]).await;

    assert!(out.status.success(), "{}", stderr(&out));
    let listing: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let servers = listing["servers"].as_array().unwrap();
    let by_name = |name: &str| servers.iter().find(|s| s["name"] == name).unwrap().clone();
    let names: Vec<&str> = servers.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dies", "echo", "missing", "off", "picky"]);

    let echo = by_name("echo");
    assert_eq!(echo["status"], "started");
    let tools: Vec<&str> =
        echo["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        tools,
        [
            "echo__echo",
            "echo__fail",
            "echo__crash",
            "echo__write",
            "echo__env",
            "echo__connect",
            "echo__sees",
            "echo__dotted_name"
        ]
    );
    assert_eq!(echo["tools"][7]["tool"], "dotted.name", "the server's own name is kept");
    assert_eq!(echo["tools"][0]["input_schema"]["required"], json!(["text"]));

    let picky = by_name("picky");
    assert_eq!(picky["tools"].as_array().unwrap().len(), 1, "{picky}");
    assert_eq!(picky["tools"][0]["name"], "picky__echo");
    assert_eq!(picky["notes"], json!(["`tools` names `nope`, which the server does not offer"]));

    assert_eq!(by_name("off")["status"], "disabled");
    assert_eq!(starts(&counter(&repo, "off")), 0, "a disabled server is not started");
    assert_eq!(starts(&counter(&repo, "echo")), 1);

    let missing = by_name("missing");
    assert_eq!(missing["status"], "failed");
    let error = missing["error"].as_str().unwrap();
    assert!(error.contains("could not run `/nonexistent/cairn-no-such-server`"), "{error}");
    let dies = by_name("dies");
    assert_eq!(dies["status"], "failed");
    let error = dies["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "the connection closed during the MCP handshake (the server exited, or is not an \
             MCP server speaking over stdio)\n  stderr: test server: missing API token, giving up\n"
        ),
        "{error}"
    );
    assert!(error.contains("it ran in the workspace-write sandbox"), "the hint: {error}");
    assert_eq!(echo["sandbox"]["confined"], true, "{echo}");

    let out = cairn(&repo, &["mcp", "list"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("echo: started\n"), "{text}");
    assert!(
        text.contains("  sandbox: workspace-write sandbox: writes in the workspace except .git, its $TMPDIR, configured paths; no network\n"),
        "{text}"
    );
    assert!(text.contains("    echo__echo         Echo the text back.\n"), "{text}");
    assert!(text.contains("off: disabled (enabled = false)\n"), "{text}");
    assert!(text.contains("missing: failed: could not run"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_result_reaches_the_model_and_the_step_and_its_file_changes_are_recorded() {
    let repo = TestRepo::new();
    let model = mock_model::start([
        Reply::chat_tool_calls(&[
            ("call_1", "echo__echo", json!({"text": "hi"})),
            ("call_2", "echo__write", json!({"path": "from-mcp.txt", "content": "made by mcp\n"})),
            ("call_3", "echo__env", json!({"name": "SET_BY_CONFIG"})),
        ]),
        Reply::chat_text("Done."),
        Reply::chat_text("Resumed."),
    ])
    .await;
    repo.use_model(&model.base_url());
    configure(&repo, &server_table("echo", "env = { SET_BY_CONFIG = \"from the config\" }"));

    let out = cairn(&repo, &["run", "use the server", "--approval", "auto", "--json"]).await;

    assert!(out.status.success(), "{}", stderr(&out));
    let requests = model.requests();
    let offered = &requests[0].body["tools"];
    let echo = offered
        .as_array()
        .unwrap()
        .iter()
        .find(|tool| tool["function"]["name"] == "echo__echo")
        .unwrap_or_else(|| panic!("echo__echo is not offered: {offered}"));
    assert_eq!(echo["function"]["parameters"]["properties"]["text"]["type"], "string");
    assert!(tool_names(&requests[0].body).contains(&"shell".to_string()));
    assert_eq!(tool_result(&requests[1].body, "call_1"), "echo: hi");
    assert_eq!(tool_result(&requests[1].body, "call_2"), "wrote from-mcp.txt");
    assert_eq!(tool_result(&requests[1].body, "call_3"), "from the config");

    let session = session_of(&out);
    let tip = TestRepo::session_ref(&session);
    let tool_step = format!("{tip}~1");
    let step = step_json(&repo, &tool_step);
    assert_eq!(step["kind"], "tool");
    let results = step["tool_results"].as_array().unwrap_or_else(|| panic!("{step}"));
    assert_eq!(results[0]["name"], "echo__echo");
    assert_eq!(results[0]["content"], "echo: hi");
    assert_eq!(results[0]["is_error"], false);
    // The server wrote a file cairn was not told about: the step's full scan found it.
    assert_eq!(repo.git(&["show", &format!("{tool_step}:from-mcp.txt")]), "made by mcp\n");
    let subject = repo.git(&["log", "-1", "--format=%s", &tool_step]);
    assert!(subject.starts_with("echo__echo {\"text\":\"hi\"}"), "{subject}");

    // `cairn resume` starts the servers too.
    let out = cairn(&repo, &["resume", &session, "again", "--approval", "auto", "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(tool_names(&model.requests()[2].body).contains(&"echo__write".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_results_and_a_crashed_server_restarted_once_are_told_to_the_model() {
    let repo = TestRepo::new();
    let model = mock_model::start([
        Reply::chat_tool_calls(&[("c1", "echo__fail", json!({}))]),
        Reply::chat_tool_calls(&[("c2", "echo__crash", json!({}))]),
        Reply::chat_tool_calls(&[("c3", "echo__echo", json!({"text": "still there?"}))]),
        Reply::chat_tool_calls(&[("c4", "echo__crash", json!({}))]),
        Reply::chat_tool_calls(&[("c5", "echo__echo", json!({"text": "anyone?"}))]),
        Reply::chat_text("The server is gone."),
    ])
    .await;
    repo.use_model(&model.base_url());
    configure(&repo, &server_table("echo", &counted(&repo, "echo")));

    let out = cairn(&repo, &["run", "break it", "--approval", "auto", "--json"]).await;

    assert!(out.status.success(), "{}", stderr(&out));
    let requests = model.requests();
    assert_eq!(requests.len(), 6);
    assert_eq!(tool_result(&requests[1].body, "c1"), "it failed on purpose");
    let session = session_of(&out);
    let tip = TestRepo::session_ref(&session);
    let fail_step = step_json(&repo, &format!("{tip}~5"));
    assert_eq!(fail_step["tool_results"][0]["is_error"], true, "{fail_step}");

    let crash = tool_result(&requests[2].body, "c2");
    assert!(
        crash.starts_with(
            "the MCP server `echo` exited while running `echo__crash`; cairn restarted it"
        ),
        "{crash}"
    );
    assert!(crash.ends_with("\n  stderr: test server: crashing on purpose"), "its stderr: {crash}");
    eprintln!("{crash}");
    assert_eq!(tool_result(&requests[3].body, "c3"), "echo: still there?");
    let again = tool_result(&requests[4].body, "c4");
    assert!(again.contains("already been restarted once, so it stays down"), "{again}");
    let down = tool_result(&requests[5].body, "c5");
    assert!(down.contains("the MCP server `echo` is down (it exited twice)"), "{down}");
    assert_eq!(starts(&counter(&repo, "echo")), 2, "started, then restarted once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_goes_on_without_servers_that_fail_are_disabled_or_from_the_project() {
    let repo = TestRepo::new();
    let model = mock_model::start([Reply::chat_text("Hello.")]).await;
    repo.use_model(&model.base_url());
    let mut tables =
        "\n[mcp.missing]\ncommand = \"/nonexistent/cairn-no-such-server\"\n".to_owned();
    tables += &server_table("off", &format!("enabled = false\n{}", counted(&repo, "off")));
    tables += &server_table("picky", "tools = [\"echo\"]");
    configure(&repo, &tables);
    let project_server = server_table("project", &counted(&repo, "project"));
    repo.write("cairn.toml", &project_server);

    let out = cairn(&repo, &["run", "hello", "--json"]).await;

    assert!(out.status.success(), "{}", stderr(&out));
    let stderr = stderr(&out);
    assert!(
        stderr.contains(
            "warning: MCP server `missing` did not start, so the session goes on without it: \
             could not run `/nonexistent/cairn-no-such-server`"
        ),
        "{stderr}"
    );
    // The project's own server is not even configured: the file is not trusted.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let notice = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["type"] == "notice")
        .unwrap_or_else(|| panic!("no notice in {stdout}"));
    let message = notice["message"].as_str().unwrap();
    assert!(
        message.contains("cairn.toml is not trusted, so cairn ignored: mcp.project."),
        "{message}"
    );
    assert!(message.contains("run `cairn trust`"), "{message}");
    let tools = tool_names(&model.requests()[0].body);
    let mcp: Vec<&String> = tools.iter().filter(|name| name.contains("__")).collect();
    assert_eq!(mcp, ["picky__echo"]);
    assert_eq!(starts(&counter(&repo, "off")), 0);
    assert_eq!(starts(&counter(&repo, "project")), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_runs_refuse_mcp_tools_without_auto_approval() {
    let repo = TestRepo::new();
    let model = mock_model::start([
        Reply::chat_tool_calls(&[(
            "c1",
            "echo__write",
            json!({"path": "refused.txt", "content": "x"}),
        )]),
        Reply::chat_text("Understood."),
    ])
    .await;
    repo.use_model(&model.base_url());
    configure(&repo, &server_table("echo", ""));

    let out = cairn(&repo, &["run", "write through mcp"]).await;

    assert!(out.status.success(), "{}", stderr(&out));
    let result = tool_result(&model.requests()[1].body, "c1");
    assert!(result.contains("headless") && result.contains("--approval auto"), "{result}");
    assert!(!repo.path("refused.txt").exists());

    let model = mock_model::start([
        Reply::chat_tool_calls(&[("c1", "echo__echo", json!({"text": "x"}))]),
        Reply::chat_text("Understood."),
    ])
    .await;
    repo.use_model(&model.base_url());
    configure(&repo, &server_table("echo", ""));
    let out = cairn(&repo, &["run", "read only", "--approval", "read-only"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let result = tool_result(&model.requests()[1].body, "c1");
    assert!(result.contains("read-only"), "{result}");
}

#[test]
fn mcp_config_errors_name_the_file_line_and_what_was_expected() {
    let repo = TestRepo::new();
    for (table, expected) in [
        ("[mcp.x]\ncommand = 3\n", ":2:11: invalid type: integer `3`, expected a string"),
        (
            "[mcp.x]\ncommand = \"a\"\nargs = \"-v\"\n",
            ":3:8: invalid type: string \"-v\", expected a sequence",
        ),
        (
            "[mcp.x]\ncommand = \"a\"\nenabled = \"yes\"\n",
            ":3:11: invalid type: string \"yes\", expected a boolean",
        ),
        ("[mcp.x]\nargs = []\n", ":1:1: mcp server `x` needs `command`"),
        ("[mcp.x]\ncommand = \"a\"\ncomand = \"b\"\n", ":3:1: unknown field `comand`"),
        ("[mcp.\"a__b\"]\ncommand = \"a\"\n", ":1:1: `a__b` cannot name an mcp server"),
        (
            "[mcp.x]\ncommand = \"a\"\nstartup_timeout_ms = 0\n",
            ":3:22: `startup_timeout_ms` must be at least 1",
        ),
    ] {
        std::fs::write(repo.home.join("cairn-config.toml"), table).unwrap();
        let err = repo.fails(&["mcp", "list"]);
        assert!(err.contains(expected), "{table:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_stop_with_the_session_even_if_they_ignore_their_stdin_closing() {
    let repo = TestRepo::new();
    let model = mock_model::start([Reply::chat_text("Hello.")]).await;
    repo.use_model(&model.base_url());
    // Unconfined, so the process ids it counts are the host's.
    let stubborn = format!(
        "args = [\"--ignore-eof\"]\n{}\nsandbox.mode = \"off\"",
        counted(&repo, "stubborn")
    );
    configure(&repo, &server_table("stubborn", &stubborn));
    // Confined, in a PID namespace of its own: found by a tag on its command line.
    let tag = format!("--tag={}", repo.home.display());
    let boxed = format!("args = [\"--ignore-eof\", {tag:?}]\n{}", counted(&repo, "boxed"));
    configure(&repo, &server_table("boxed", &boxed));

    let out = cairn(&repo, &["run", "hello"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cairn(&repo, &["mcp", "list"]).await;
    assert!(out.status.success(), "{}", stderr(&out));

    let pids = pids(&counter(&repo, "stubborn"));
    assert_eq!(pids.len(), 2, "one start per command");
    for pid in pids {
        assert!(!running(pid), "the server {pid} outlived cairn");
    }
    assert_eq!(starts(&counter(&repo, "boxed")), 2, "one start per command");
    assert_eq!(tagged(&tag), Vec::<u32>::new(), "the confined server outlived cairn");
}

/// Runs one call of the `box` server's tools per step, with `sandbox` as the server's
/// sandbox setting; returns the session and each call's result.
async fn run_box_calls(
    repo: &TestRepo,
    sandbox: &str,
    calls: &[(&str, Value)],
) -> (String, Vec<String>) {
    let mut script: Vec<Reply> = calls
        .iter()
        .enumerate()
        .map(|(i, (tool, arguments))| {
            Reply::chat_tool_calls(&[(&format!("c{i}"), *tool, arguments.clone())])
        })
        .collect();
    script.push(Reply::chat_text("done"));
    let model = mock_model::start(script).await;
    repo.use_model(&model.base_url());
    configure(repo, &server_table("box", &format!("sandbox = {sandbox}")));
    let out = cairn(repo, &["run", "work", "--approval", "auto", "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let requests = model.requests();
    let results =
        (0..calls.len()).map(|i| tool_result(&requests[i + 1].body, &format!("c{i}"))).collect();
    (session_of(&out), results)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confined_server_writes_only_in_the_workspace_and_reaches_no_network_or_process() {
    let repo = TestRepo::new();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.path("link-out")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let write = |path: String| ("box__write", json!({"path": path, "content": "x"}));
    let calls = |name: &str| {
        vec![
            write(format!("{name}.txt")),
            write(repo.home.join(name).display().to_string()),
            write(format!(".git/hooks/{name}")),
            write(format!("link-out/{name}")),
            ("box__connect", json!({"port": port})),
            ("box__sees", json!({"pid": std::process::id()})),
        ]
    };
    let escapes = |name: &str| {
        [
            repo.home.join(name).exists(),
            repo.path(&format!(".git/hooks/{name}")).exists(),
            outside.path().join(name).exists(),
        ]
    };
    let before = repo.user_state();

    // The default: workspace-write, no network, a PID namespace of its own.
    let (session, results) = run_box_calls(&repo, "\"workspace-write\"", &calls("boxed")).await;
    assert_eq!(results[0], "wrote boxed.txt");
    assert_eq!(repo.read("boxed.txt"), "x");
    assert_eq!(escapes("boxed"), [false; 3], "{results:#?}");
    for result in &results[1..4] {
        assert!(result.contains("blocked by the sandbox (probably): "), "{result}");
    }
    assert!(results[2].contains("Read-only file system"), "{}", results[2]);
    assert!(!results[4].contains("connected"), "{}", results[4]);
    assert!(listener.accept().is_err(), "the connection reached the listener");
    assert_eq!(results[5], "no", "it saw a process outside its sandbox");
    assert_eq!(repo.user_state(), before);
    // The step of the call that wrote holds its file; the refused ones changed nothing.
    let reference = TestRepo::session_ref(&session);
    let diff = |from: usize, to: usize| {
        let (from, to) = (format!("{reference}~{from}"), format!("{reference}~{to}"));
        repo.git(&["diff", "--name-status", &from, &to, "--", ".", ":!.cairn"])
    };
    // Steps: prompt, six calls, the final answer.
    assert_eq!(diff(7, 6), "A\tboxed.txt\n");
    assert_eq!(diff(6, 1), "");

    // The control: with the server's sandbox off, every one of them gets through.
    let (_, results) = run_box_calls(&repo, "\"off\"", &calls("free")).await;
    assert_eq!(escapes("free"), [true; 3], "{results:#?}");
    assert_eq!(results[4], "connected");
    assert!(listener.accept().is_ok());
    assert_eq!(results[5], "yes");
    repo.assert_fsck_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_may_be_given_the_network_and_paths_of_its_own() {
    let repo = TestRepo::new();
    let cache = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cached = cache.path().join("entry").display().to_string();
    let calls = [
        ("box__connect", json!({"port": port})),
        ("box__write", json!({"path": cached, "content": "kept"})),
        ("box__write", json!({"path": repo.home.join("x").display().to_string(), "content": "x"})),
    ];
    let sandbox = format!("{{ network = true, writable_paths = [{:?}] }}", cache.path());
    let (_, results) = run_box_calls(&repo, &sandbox, &calls).await;
    assert_eq!(results[0], "connected");
    assert_eq!(std::fs::read_to_string(cache.path().join("entry")).unwrap(), "kept");
    assert!(results[2].contains("blocked by the sandbox"), "{}", results[2]);
    assert!(!repo.home.join("x").exists(), "only the paths given are writable");
}
