//! `[snapshot] fsmonitor = "watchman"`: `cairn checkpoint` against a real Watchman server
//! of the test's own (its own socket, state and log), each step's tree checked against the
//! git CLI's view of the workspace. Skipped, saying so, where `watchman` is not installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::TestRepo;

/// A Watchman server for one test, stopped when dropped.
struct Server {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts one, or `None` (after saying so) where Watchman is not installed.
    fn start() -> Option<Server> {
        if Command::new("watchman").arg("--version").output().is_err() {
            eprintln!("skipping: `watchman` is not installed (Debian package `watchman`)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sock");
        let child = Command::new("watchman")
            .arg(format!("--sockname={}", socket.display()))
            .arg(format!("--logfile={}", dir.path().join("log").display()))
            .arg(format!("--pidfile={}", dir.path().join("pid").display()))
            .arg(format!("--statefile={}", dir.path().join("state").display()))
            .args(["--no-save-state", "--foreground"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("watchman starts");
        let started = Instant::now();
        while !socket.exists() {
            assert!(started.elapsed() < Duration::from_secs(20), "watchman made no socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Server { child, socket, _dir: dir })
    }

    /// Runs the `watchman` CLI against this server.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("watchman")
            .arg(format!("--sockname={}", self.socket.display()))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn watched_repo() -> TestRepo {
    let repo = TestRepo::new();
    std::fs::create_dir_all(repo.home.join(".config/cairn")).unwrap();
    std::fs::write(
        repo.home.join(".config/cairn/config.toml"),
        "[snapshot]\nfsmonitor = \"watchman\"\n",
    )
    .unwrap();
    repo.write(".gitignore", "build/\n");
    for dir in ["src", "docs", "old"] {
        for n in 0..5 {
            repo.write(&format!("{dir}/f{n}.txt"), &format!("{dir} {n}\n"));
        }
    }
    repo
}

/// Runs `cairn checkpoint -v` against `server` and returns what it said about Watchman.
fn checkpoint(repo: &TestRepo, server: &Server, message: &str) -> String {
    checkpoint_at(repo, &server.socket, message)
}

fn checkpoint_at(repo: &TestRepo, socket: &Path, message: &str) -> String {
    let out = repo
        .command_in(&repo.root, &["checkpoint", "-v", "-m", message])
        .env("WATCHMAN_SOCK", socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr.lines().find(|line| line.starts_with("cairn checkpoint:")).unwrap_or("").to_string()
}

/// The workspace as git itself would snapshot it: `git add -A` into a scratch index.
fn git_view(repo: &TestRepo) -> String {
    let index = repo.home.join("scratch-index");
    let _ = std::fs::remove_file(&index);
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(&repo.root)
            .env("GIT_INDEX_FILE", &index)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["add", "-A"]);
    git(&["ls-tree", "-r", &git(&["write-tree"])])
}

/// The last step's workspace, in `git ls-tree -r` form without `.cairn/`.
fn step_view(repo: &TestRepo) -> String {
    let session = repo.git(&["for-each-ref", "--format=%(refname)", "refs/cairn/sessions"]);
    let listing = repo.git(&["ls-tree", "-r", session.trim()]);
    listing.lines().filter(|line| !line.contains("\t.cairn/")).collect::<Vec<_>>().join("\n")
}

fn assert_step_is_the_workspace(repo: &TestRepo) {
    assert_eq!(step_view(repo), git_view(repo), "the step holds the workspace as git sees it");
}

const FROM_WATCHMAN: &str = "cairn checkpoint: read what Watchman reported changed";

#[test]
fn watchman_tells_checkpoints_what_changed_and_they_record_exactly_the_workspace() {
    let Some(server) = Server::start() else { return };
    let repo = watched_repo();
    let head = repo.git(&["rev-parse", "HEAD"]);
    let index = std::fs::read(repo.path(".git/index")).ok();
    assert_eq!(
        checkpoint(&repo, &server, "first"),
        "cairn checkpoint: scanned the workspace: no earlier Watchman clock"
    );
    assert_step_is_the_workspace(&repo);

    // An edit, a new file, a new directory, a deletion, an ignored file, a symlink and an
    // executable: Watchman's list is all the next snapshot reads.
    repo.write("src/f1.txt", "changed\n");
    repo.write("src/new.txt", "new\n");
    repo.write("fresh/deep/file.txt", "deep\n");
    std::fs::remove_file(repo.path("docs/f2.txt")).unwrap();
    repo.write("build/out.o", "ignored\n");
    std::os::unix::fs::symlink("f0.txt", repo.path("src/link")).unwrap();
    repo.write("run.sh", "#!/bin/sh\n");
    std::fs::set_permissions(
        repo.path("run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    assert_eq!(checkpoint(&repo, &server, "second"), FROM_WATCHMAN);
    assert_step_is_the_workspace(&repo);
    assert!(!step_view(&repo).contains("build/out.o"));

    // Nothing changed: still Watchman, still the workspace.
    assert_eq!(checkpoint(&repo, &server, "third"), FROM_WATCHMAN);
    assert_step_is_the_workspace(&repo);

    // A deleted directory and a changed .gitignore are scanned, and say why.
    std::fs::remove_dir_all(repo.path("old")).unwrap();
    let said = checkpoint(&repo, &server, "fourth");
    assert!(said.contains("scanned the workspace:") && said.contains("old"), "{said}");
    assert_step_is_the_workspace(&repo);
    repo.write(".gitignore", "build/\ndocs/\n");
    let said = checkpoint(&repo, &server, "fifth");
    assert_eq!(said, "cairn checkpoint: scanned the workspace: .gitignore changed");
    assert_step_is_the_workspace(&repo);
    repo.write("src/f3.txt", "after the scan\n");
    assert_eq!(checkpoint(&repo, &server, "sixth"), FROM_WATCHMAN);
    assert_step_is_the_workspace(&repo);

    // HEAD and the index are as they were.
    assert_eq!(repo.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(std::fs::read(repo.path(".git/index")).ok(), index);
    repo.assert_fsck_clean();
    server.stop();
}

#[test]
fn a_watchman_that_recrawls_dies_or_restarts_falls_back_to_a_scan() {
    let Some(server) = Server::start() else { return };
    let repo = watched_repo();
    checkpoint(&repo, &server, "first");
    repo.write("src/f1.txt", "one\n");
    assert_eq!(checkpoint(&repo, &server, "second"), FROM_WATCHMAN);

    // A recrawl: Watchman either answers with a fresh instance (cairn scans) or, as 4.9
    // does, reports every file it re-found as changed (cairn reads them all); either way
    // the step is the workspace.
    server.cli(&["debug-recrawl", repo.root.to_str().unwrap()]);
    repo.write("src/f2.txt", "two\n");
    let said = checkpoint(&repo, &server, "after recrawl");
    assert!(said.contains("fresh instance") || said == FROM_WATCHMAN, "{said}");
    assert_step_is_the_workspace(&repo);

    // The server dies mid-session: cairn scans, and records the change all the same.
    server.stop();
    repo.write("src/f3.txt", "three\n");
    let said = checkpoint_at(&repo, Path::new("/nonexistent/watchman.sock"), "server gone");
    assert!(
        said.starts_with("cairn checkpoint: scanned the workspace: Watchman is not available"),
        "{said}"
    );
    assert_step_is_the_workspace(&repo);

    // A new server knows nothing of the old clock: one scan, then Watchman again.
    let server = Server::start().unwrap();
    repo.write("src/f4.txt", "four\n");
    let said = checkpoint(&repo, &server, "new server");
    assert!(said.starts_with("cairn checkpoint: scanned the workspace:"), "{said}");
    assert_step_is_the_workspace(&repo);
    repo.write("src/f0.txt", "zero\n");
    assert_eq!(checkpoint(&repo, &server, "again"), FROM_WATCHMAN);
    assert_step_is_the_workspace(&repo);
    repo.assert_fsck_clean();
}

/// Without `WATCHMAN_SOCK`, cairn asks `watchman get-sockname` once and connects to the
/// socket it named from then on (the CLI costs a process per snapshot); a remembered socket
/// that is no socket, or whose server is gone, means asking again.
#[test]
fn the_socket_get_sockname_named_is_remembered_and_asked_again_when_it_fails() {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(server) = Server::start() else { return };
    let repo = watched_repo();
    // A `watchman` first on PATH that logs each call and hands it to the real one,
    // pointed at the test's server.
    let real = String::from_utf8(
        Command::new("sh").args(["-c", "command -v watchman"]).output().unwrap().stdout,
    )
    .unwrap();
    let bin = repo.home.join("bin");
    let calls = repo.home.join("watchman-calls");
    std::fs::create_dir_all(&bin).unwrap();
    let point_at = |socket: &Path| {
        let script = format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' '--sockname={}' \"$@\"\n",
            calls.display(),
            real.trim(),
            socket.display()
        );
        std::fs::write(bin.join("watchman"), script).unwrap();
        std::fs::set_permissions(bin.join("watchman"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    };
    point_at(&server.socket);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let checkpoint = |message: &str| {
        let out = repo
            .command_in(&repo.root, &["checkpoint", "-v", "-m", message])
            .env_remove("WATCHMAN_SOCK")
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        stderr.lines().find(|line| line.starts_with("cairn checkpoint:")).unwrap_or("").to_owned()
    };
    let asked =
        || std::fs::read_to_string(&calls).unwrap_or_default().matches("get-sockname").count();

    checkpoint("first");
    assert_eq!(asked(), 1);
    for n in 0..2 {
        repo.write("src/f1.txt", &format!("edit {n}\n"));
        assert_eq!(checkpoint("remembered"), FROM_WATCHMAN);
    }
    assert_eq!(asked(), 1, "asked the CLI although the socket was known");
    assert_step_is_the_workspace(&repo);

    // A remembered socket that is no socket (a file, as a damaged state could name) is
    // not connected to.
    let state_path = repo.root.join(".git/cairn/worktrees/main/fsmonitor");
    let state = std::fs::read_to_string(&state_path).unwrap();
    let socket = server.socket.to_str().unwrap();
    assert!(state.contains(socket), "{state}");
    let decoy = repo.home.join("not-a-socket");
    std::fs::write(&decoy, "").unwrap();
    std::fs::write(&state_path, state.replace(socket, decoy.to_str().unwrap())).unwrap();
    repo.write("src/f2.txt", "two\n");
    assert_eq!(checkpoint("decoy"), FROM_WATCHMAN);
    assert_eq!(asked(), 2);
    assert!(std::fs::read_to_string(&state_path).unwrap().contains(socket));

    // The server is gone and another runs elsewhere: the dead socket fails, the CLI names
    // the new one, which knows nothing of the old clock (one scan), then Watchman again.
    server.stop();
    let server = Server::start().unwrap();
    point_at(&server.socket);
    repo.write("src/f3.txt", "three\n");
    let said = checkpoint("new server");
    assert!(said.starts_with("cairn checkpoint: scanned the workspace:"), "{said}");
    assert_eq!(asked(), 3);
    repo.write("src/f4.txt", "four\n");
    assert_eq!(checkpoint("again"), FROM_WATCHMAN);
    assert_eq!(asked(), 3);
    assert_step_is_the_workspace(&repo);
    repo.assert_fsck_clean();
}

/// `cairn run` with Watchman configured: the shell step's changes (a new file, a deletion)
/// are found through Watchman, without a watcher of cairn's own, and recorded exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_step_of_cairn_run_is_recorded_through_watchman() {
    use crate::support::mock_model::{self, Reply};
    use serde_json::json;
    let Some(server) = Server::start() else { return };
    let repo = watched_repo();
    let model = mock_model::start([
        Reply::chat_tool_calls(&[(
            "call_1",
            "shell",
            json!({"command": "echo made > made.txt && rm docs/f1.txt"}),
        )]),
        Reply::chat_text("Done."),
    ])
    .await;
    repo.use_model_with(
        &model.base_url(),
        "[memory]\nsummarize = false\n[snapshot]\nfsmonitor = \"watchman\"\n",
    );
    let mut command = repo.command_in(&repo.root, &["run", "--approval", "auto", "make it"]);
    command.env("WATCHMAN_SOCK", &server.socket);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(repo.path("made.txt").exists());
    assert_step_is_the_workspace(&repo);
    let listing = step_view(&repo);
    assert!(listing.contains("\tmade.txt") && !listing.contains("docs/f1.txt"), "{listing}");
    // The run saved Watchman's clock for the next process.
    let state = std::fs::read_to_string(repo.path(".git/cairn/worktrees/main/fsmonitor")).unwrap();
    assert!(state.contains("\"clock\":\"c:"), "{state}");
}

/// Pipes `payload` to `cairn hook claude-code` against `server`, which must record it.
fn claude_hook(repo: &TestRepo, server: &Server, payload: &str) {
    let mut command = repo.command_in(&repo.home, &["hook", "claude-code"]);
    command.env("WATCHMAN_SOCK", &server.socket);
    let out = crate::hooks::piped_output(command, payload);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Watchman clock and tree cairn saved for the next snapshot.
fn saved_monitor(repo: &TestRepo) -> (String, String) {
    let state = std::fs::read(repo.path(".git/cairn/worktrees/main/fsmonitor")).unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state).unwrap();
    (state["clock"].as_str().unwrap().to_owned(), state["tree"].as_str().unwrap().to_owned())
}

/// A prompt hook whose check for the user's edits finds none (the only change since the
/// last Watchman snapshot is the agent's edit, already recorded by name) saves Watchman's
/// new clock: the next check asks only about what changed since, instead of every path
/// edited since the last recorded scan.
#[test]
fn a_check_for_user_edits_that_finds_none_saves_watchmans_clock() {
    let Some(server) = Server::start() else { return };
    let repo = watched_repo();
    let prompt = crate::hooks::fixture(&repo, "claude-code", "user-prompt-submit");
    let edit = crate::hooks::fixture(&repo, "claude-code", "post-tool-use-edit");
    // The first prompt records the files written above as the user's, by a full scan.
    claude_hook(&repo, &server, &prompt);
    let (first_clock, first_tree) = saved_monitor(&repo);
    // The agent's edit is recorded by the path its payload names, without Watchman.
    repo.write("README.md", "hello\nSee greet() in src/greet.rs.\n");
    claude_hook(&repo, &server, &edit);
    assert_eq!(saved_monitor(&repo).0, first_clock, "a step recorded by name asks no monitor");

    // Watchman reports README.md, which the tip already holds: no user-edits step, but
    // the check's clock and tree are kept.
    claude_hook(&repo, &server, &prompt);
    let (clock, tree) = saved_monitor(&repo);
    assert_ne!(clock, first_clock, "the unchanged check's Watchman clock was dropped");
    assert_ne!(tree, first_tree);
    assert_eq!(repo.git(&["ls-tree", "-r", &tree]).trim_end(), step_view(&repo));
    let session = repo.git(&["for-each-ref", "--format=%(refname)", "refs/cairn/sessions"]);
    let subjects = repo.git(&["log", "--format=%s", session.trim()]);
    assert_eq!(subjects.lines().filter(|s| *s == "user edits").count(), 1, "{subjects}");
    assert_step_is_the_workspace(&repo);
    repo.assert_fsck_clean();
}

#[test]
fn config_show_says_whether_watchman_is_in_use() {
    let Some(server) = Server::start() else { return };
    let repo = watched_repo();
    let show = |socket: &Path| {
        let out = repo
            .command_in(&repo.root, &["config", "show"])
            .env("WATCHMAN_SOCK", socket)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = show(&server.socket);
    let line = text.lines().find(|line| line.starts_with("fsmonitor = ")).unwrap().to_string();
    assert!(line.contains("in use: Watchman 4.") || line.contains("in use: Watchman 20"), "{line}");
    let text = show(Path::new("/nonexistent/watchman.sock"));
    let line = text.lines().find(|line| line.starts_with("fsmonitor = ")).unwrap().to_string();
    assert!(line.contains("not in use, snapshots scan:"), "{line}");
}
