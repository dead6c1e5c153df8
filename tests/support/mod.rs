//! Shared helpers for the integration tests: temporary repositories isolated from the
//! user's configuration, the built `cairn` binary, and the real `git` CLI as an
//! independent reader.
#![allow(dead_code)]

pub mod mock_model;
pub mod unprivileged;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct TestRepo {
    _dir: tempfile::TempDir,
    /// Home and XDG directories, so no user configuration leaks in.
    pub home: PathBuf,
    pub root: PathBuf,
}

impl TestRepo {
    /// A repository with one commit holding `README.md`.
    pub fn new() -> TestRepo {
        let repo = TestRepo::empty();
        repo.write("README.md", "hello\n");
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-qm", "initial"]);
        repo
    }

    /// A repository with no commits (unborn `HEAD`).
    pub fn empty() -> TestRepo {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = dir.path().join("home");
        let root = dir.path().join("work");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        let repo = TestRepo { _dir: dir, home, root };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Test User"]);
        repo.git(&["config", "user.email", "test@example.com"]);
        repo
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    fn env(&self, command: &mut Command) {
        command
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", self.home.join(".gitconfig"))
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .env("NO_COLOR", "1");
    }

    /// Runs `git` in `dir`, panicking with its stderr on failure.
    pub fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let mut command = Command::new("git");
        command.args(args).current_dir(dir);
        self.env(&mut command);
        let out = command.output().expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn git(&self, args: &[&str]) -> String {
        self.git_in(&self.root, args)
    }

    /// Runs the built `cairn` in `dir`.
    pub fn cairn_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.command_in(dir, args).output().expect("cairn runs")
    }

    /// The `cairn` command, ready to run in `dir` with the test environment.
    pub fn command_in(&self, dir: &Path, args: &[&str]) -> Command {
        self.program_in(Path::new(env!("CARGO_BIN_EXE_cairn")), dir, args)
    }

    /// Like [`TestRepo::command_in`], for a `cairn` binary at `program`.
    pub fn program_in(&self, program: &Path, dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command.args(args).current_dir(dir);
        self.env(&mut command);
        let config = self.home.join("cairn-config.toml");
        if config.exists() {
            command.env("CAIRN_CONFIG", config);
        }
        command
    }

    /// Points cairn at a scripted model server (`provider mock`, kind openai-chat), with
    /// the session-end summary off: it costs two model calls that most scripts don't
    /// hold (`use_model_with` turns it on).
    pub fn use_model(&self, base_url: &str) {
        self.use_model_with(base_url, "[memory]\nsummarize = false\n");
    }

    /// Like [`TestRepo::use_model`], with `extra` TOML appended instead.
    pub fn use_model_with(&self, base_url: &str, extra: &str) {
        let config = format!(
            "model = \"mock/scripted\"\n{extra}[provider.mock]\nkind = \"openai-chat\"\nbase_url = \"{base_url}\"\n"
        );
        std::fs::write(self.home.join("cairn-config.toml"), config).unwrap();
    }

    pub fn cairn(&self, args: &[&str]) -> Output {
        self.cairn_in(&self.root, args)
    }

    /// Runs `cairn`, asserting success, and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cairn(args);
        assert!(
            out.status.success(),
            "cairn {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `cairn`, asserting it fails with exit code 1, and returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cairn(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "cairn {args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `cairn checkpoint --json` → (session, step, commit).
    pub fn checkpoint(&self, args: &[&str]) -> (String, u64, String) {
        let mut all = vec!["checkpoint", "--json"];
        all.extend_from_slice(args);
        let out: serde_json::Value = serde_json::from_str(&self.ok(&all)).expect("json output");
        (
            out["session"].as_str().unwrap().to_string(),
            out["step"].as_u64().unwrap(),
            out["commit"].as_str().unwrap().to_string(),
        )
    }

    /// Everything of the user's git state that cairn must never change, byte for byte:
    /// `HEAD`, the index, branches, tags, the stash and its reflog.
    pub fn user_state(&self) -> BTreeMap<String, Vec<u8>> {
        let git_dir = PathBuf::from(self.git(&["rev-parse", "--git-dir"]).trim());
        let git_dir = if git_dir.is_absolute() { git_dir } else { self.root.join(git_dir) };
        let mut state = BTreeMap::new();
        for file in ["HEAD", "index", "packed-refs", "logs/HEAD", "logs/refs/stash"] {
            if let Ok(bytes) = std::fs::read(git_dir.join(file)) {
                state.insert(file.to_string(), bytes);
            }
        }
        let refs = self.git(&[
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/heads",
            "refs/tags",
            "refs/stash",
        ]);
        state.insert("refs".to_string(), refs.into_bytes());
        state
    }

    /// Asserts `git fsck --strict` finds nothing wrong.
    pub fn assert_fsck_clean(&self) {
        let mut command = Command::new("git");
        command.args(["fsck", "--strict", "--no-dangling"]).current_dir(&self.root);
        self.env(&mut command);
        let out = command.output().expect("git fsck runs");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "git fsck: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `git ls-tree -r` of a revision without `.cairn/`, as (mode, path) → object id.
    pub fn tree_files(&self, rev: &str) -> BTreeMap<String, (String, String)> {
        self.git(&["ls-tree", "-r", "-z", rev])
            .split('\0')
            .filter(|line| !line.is_empty())
            .filter_map(|line| {
                let (meta, path) = line.split_once('\t')?;
                let mut parts = meta.split(' ');
                let mode = parts.next()?.to_string();
                let _kind = parts.next()?;
                let id = parts.next()?.to_string();
                (!path.starts_with(".cairn/")).then(|| (path.to_string(), (mode, id)))
            })
            .collect()
    }

    /// The session ref's name for `id`.
    pub fn session_ref(id: &str) -> String {
        format!("refs/cairn/sessions/{id}")
    }

    /// A copy of step `commit` on `parent` whose tree has `content` at `path`, as a
    /// hand-edited, damaged or crafted history has it; returns the copy's id. No ref moves.
    pub fn rewrite_step(&self, commit: &str, parent: &str, path: &str, content: &str) -> String {
        let index = self.home.join("rewrite-index");
        let git =
            |args: &[&str], input: &str| self.git_stdin_with_index(&index, args, input.as_bytes());
        git(&["read-tree", commit], "");
        let blob = git(&["hash-object", "-w", "--stdin"], content);
        git(&["update-index", "--cacheinfo", &format!("100644,{blob},{path}")], "");
        let tree = git(&["write-tree"], "");
        let message = self.git(&["log", "-1", "--format=%B", commit]);
        git(&["commit-tree", &tree, "-p", parent], &message)
    }

    /// `git args` in `dir` with `input` on stdin, asserting success; stdout trimmed. For
    /// plumbing that builds objects by hand (`hash-object`, `mktree`, `commit-tree`).
    pub fn git_stdin_in(&self, dir: &Path, args: &[&str], input: &[u8]) -> String {
        self.git_stdin(Command::new("git").current_dir(dir), args, input)
    }

    /// [`TestRepo::git_stdin_in`] at the root, with `index` as git's index.
    fn git_stdin_with_index(&self, index: &Path, args: &[&str], input: &[u8]) -> String {
        self.git_stdin(
            Command::new("git").current_dir(&self.root).env("GIT_INDEX_FILE", index),
            args,
            input,
        )
    }

    fn git_stdin(&self, command: &mut Command, args: &[&str], input: &[u8]) -> String {
        use std::io::Write as _;
        let mut child = command
            .args(args)
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// A bare repository inside this one's temporary home, added as its `origin` and
    /// holding its `main`; returns the remote's URL.
    pub fn bare_remote(&self) -> String {
        let bare = self.home.join("remote.git");
        self.git(&["init", "-q", "--bare", bare.to_str().unwrap()]);
        let url = bare.to_str().unwrap().to_string();
        self.git(&["remote", "add", "origin", &url]);
        self.git(&["push", "-q", "origin", "main"]);
        url
    }

    /// Another clone of `url` with its `main` checked out: a second user of the remote.
    pub fn clone_of(url: &str) -> TestRepo {
        let clone = TestRepo::empty();
        clone.git(&["remote", "add", "origin", url]);
        clone.git(&["fetch", "-q", "origin"]);
        clone.git(&["checkout", "-q", "-B", "main", "origin/main"]);
        clone
    }
}

/// Asserts that a command succeeded, showing its output when it did not.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sets a file's or directory's mtime into the past, so the stat cache's racy-timestamp
/// guard (which distrusts anything modified after the cache was written) does not make
/// counts depend on the clock.
pub fn age(path: &Path) {
    let status =
        Command::new("touch").args(["-h", "-d", "2020-01-01 00:00:00"]).arg(path).status().unwrap();
    assert!(status.success());
}

/// Runs `cairn` with `args` on a blocking thread, so a scripted model server on this
/// test's runtime keeps serving.
pub async fn cairn(repo: &TestRepo, args: &[&str]) -> Output {
    let mut command = repo.command_in(&repo.root, args);
    tokio::task::spawn_blocking(move || command.output().expect("cairn runs")).await.unwrap()
}

/// The session id from the `session_started` event of a `--json` run.
pub fn session_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["type"] == "session_started")
        .and_then(|event| event["session"].as_str().map(String::from))
        .expect("a session_started event")
}
