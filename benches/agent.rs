//! Agent benchmark: a scripted 12-request session of `cairn run` (10 `edit_file` steps, 1
//! `shell` step, a final answer) on a synthetic repository of 200,000 files, in three modes
//! side by side, against the same session with checkpointing switched off and against
//! Codex CLI on the same script. It measures what cairn adds to each step, what
//! checkpointing costs a whole session, and the peak memory of each process.
//!
//! ```sh
//! cargo bench --locked --bench agent                           # 200,000 files (~5 min)
//! CAIRN_BENCH_FILES=10000 cargo bench --locked --bench agent   # any size
//! ```
//!
//! The modes, run on the same workspace, interleaved round by round
//! (`CAIRN_BENCH_ROUNDS`, default 3):
//! - **Watchman**: `[snapshot] fsmonitor = "watchman"` against a private Watchman server
//!   (the agent starts no watcher of its own; every snapshot asks Watchman). Skipped, with
//!   a message, where `watchman` does not start. A warm-up session before the rounds makes
//!   Watchman's first crawl of the workspace, reported apart.
//! - **watcher**: cairn's own file watcher (`fsmonitor = "none"`, the default).
//! - **neither**: no Watchman and no watcher (`CAIRN_BENCH_NO_WATCHER=1`, a benchmark-only
//!   switch), as where no watcher can run: the agent scans (incrementally) before each
//!   model call to find the user's edits, and after the shell command.
//! - **no snapshots**: `CAIRN_BENCH_NO_SNAPSHOTS=1`, a benchmark-only switch: the same
//!   agent loop and tools with no snapshot, no step commit and no watcher. Without
//!   snapshots the modes above differ in nothing, so it runs once per round, and each
//!   mode's *checkpointing cost* is its session's wall time minus this one's.
//! - **Codex CLI** (`codex exec`, which takes no checkpoints), when found: `CAIRN_BENCH_CODEX`
//!   names it, else `codex` on `PATH`; an npm install's `codex` (a node wrapper) is replaced
//!   by the native binary it would start, so its peak memory is Codex's own. Its model is
//!   `scripts/e2e/mock_models.py` (Python 3) playing the same script over the Responses API
//!   (`apply_patch` edits, one `exec_command`), with `HOME` and `CODEX_HOME` in the
//!   benchmark's scratch folder. Codex runs its command unsandboxed
//!   (`sandbox_mode = "danger-full-access"`); cairn in its default `workspace-write`
//!   sandbox. Skipped, with a message, when no Codex is found.
//!
//! Each session edits files of its own (10, spread over the tree), so every session does the
//! same work. cairn's model is the tests' scripted server (`tests/support/mock_model.rs`)
//! on 127.0.0.1 (real HTTP, openai-chat streams). The harness's time for a step is the gap
//! between the model finishing a reply and the next request arriving: parsing the stream,
//! running the tool, recording the step commit, flushing user edits, building and sending
//! the next request; the model's own time is outside it. For Codex the mock writes the same
//! two instants per request (`--timings`). Peak memory is the `ru_maxrss` that `wait4`
//! reports for the process, read by a small wrapper process (this binary again, see
//! [`measured_command`]) since Linux would count the benchmark's own peak in a child of it;
//! wall times are the wrapper's too, start-up includes its `exec` (about a millisecond).
//!
//! Baselines in the same run: a full incremental snapshot of the workspace with nothing
//! changed (what a step pays that must scan), the git-CLI snapshot method other agents run
//! per step (`git add -A` into a private index, `git write-tree`), and the sandbox's setup
//! cost (`sh -c true` through the sandbox launcher against `sh -c true` alone).
//!
//! `CAIRN_BENCH_KEEP=1` keeps the temporary folder (under `$TMPDIR`) for inspection: each
//! step's `.cairn/state/step.json` holds its timings; `codex/` holds Codex's output.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmarks fail loudly")]

mod common;
#[path = "../tests/support/mock_model.rs"]
#[allow(dead_code, reason = "the benchmark uses part of the test server")]
mod mock_model;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn::checkpoint::{Store, StoreOptions};
use common::*;
use mock_model::{Reply, ScriptedModel};
use serde_json::{Value, json};

/// The session: `EDITS` edits, one shell command, a final answer.
const EDITS: usize = 10;
const REQUESTS: usize = EDITS + 2;
/// Steps a recorded session holds: the prompt, one per tool call, the final answer.
const STEP_COMMITS: usize = EDITS + 3;
const SCAN_RUNS: usize = 5;
const DEFAULT_FILES: usize = 200_000;
const DEFAULT_ROUNDS: usize = 3;
const PROMPT: &str = "edit the files and check the build";

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|arg| arg == MEASURE_ARG) {
        std::process::exit(measure_child(&args[2..]));
    }
    if let Err(err) = bench_main() {
        eprintln!("benchmark failed: {err}");
        std::process::exit(1);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Watchman,
    Watcher,
    Neither,
    NoSnapshots,
    Codex,
}

impl Mode {
    const ALL: [Mode; 5] =
        [Mode::Watchman, Mode::Watcher, Mode::Neither, Mode::NoSnapshots, Mode::Codex];
    /// The modes that record checkpoints.
    const CHECKPOINTING: [Mode; 3] = [Mode::Watchman, Mode::Watcher, Mode::Neither];

    fn label(self) -> &'static str {
        match self {
            Mode::Watchman => "Watchman",
            Mode::Watcher => "cairn's watcher",
            Mode::Neither => "neither (scans)",
            Mode::NoSnapshots => "no snapshots",
            Mode::Codex => "Codex CLI",
        }
    }

    fn column(self) -> usize {
        Mode::ALL.iter().position(|m| *m == self).unwrap()
    }
}

/// One step of the scripted session.
enum Step {
    Edit { path: String, old: String, new: String },
    Shell(String),
    Answer(String),
}

/// The script of one session, on files no other session edits.
struct Script(Vec<Step>);

impl Script {
    fn new(root: &Path, targets: &[String], session: usize) -> BoxResult<Script> {
        let mut steps = Vec::with_capacity(REQUESTS);
        for (step, path) in targets.iter().enumerate() {
            let content = std::fs::read_to_string(root.join(path))?;
            let old = content.lines().next().ok_or("an empty generated file")?.to_string();
            let new = format!("{old} // edited in session {session} at step {step}");
            steps.push(Step::Edit { path: path.clone(), old, new });
        }
        steps.push(Step::Shell(format!("echo 'check {session}' > status.txt")));
        steps.push(Step::Answer("All ten edits are done and the check ran.".into()));
        Ok(Script(steps))
    }

    /// cairn's model: openai-chat streams, one tool call each.
    fn replies(&self) -> Vec<Reply> {
        self.0
            .iter()
            .enumerate()
            .map(|(n, step)| {
                let id = format!("call-{n}");
                match step {
                    Step::Edit { path, old, new } => Reply::chat_tool_calls(&[(
                        &id,
                        "edit_file",
                        json!({"path": path, "old_string": old, "new_string": new}),
                    )]),
                    Step::Shell(command) => {
                        Reply::chat_tool_calls(&[(&id, "shell", json!({"command": command}))])
                    }
                    Step::Answer(text) => Reply::chat_text(text),
                }
            })
            .collect()
    }

    /// Codex's model: a `--plan` for `scripts/e2e/mock_models.py`.
    fn plan(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|step| match step {
                    Step::Edit { path, old, new } => json!(["replace", path, [old, new]]),
                    Step::Shell(command) => json!(["shell", command, null]),
                    Step::Answer(text) => json!(["answer", text, null]),
                })
                .collect(),
        )
    }

    /// Fails unless every edit of the script is on disk.
    fn check_applied(&self, root: &Path, who: &str) -> BoxResult<()> {
        for step in &self.0 {
            if let Step::Edit { path, new, .. } = step {
                let content = std::fs::read_to_string(root.join(path))?;
                if content.lines().next() != Some(new.as_str()) {
                    return Err(format!("{who} did not make the edit of {path}").into());
                }
            }
        }
        Ok(())
    }
}

/// What one session measured.
struct SessionRun {
    wall: Duration,
    startup: Duration,
    edits: Vec<Duration>,
    shell: Duration,
    /// From the end of the final answer to the process's exit.
    finish: Duration,
    max_rss: u64,
    /// The shell step's `tools_ms` and `snapshot_ms` from its `step.json`.
    shell_parts: Option<(Duration, Duration)>,
}

/// What every session of a run shares.
struct Bench {
    root: PathBuf,
    home: PathBuf,
    scratch: PathBuf,
    files: Vec<String>,
    sessions: usize,
    watchman: Option<Watchman>,
    codex: Option<PathBuf>,
    runtime: tokio::runtime::Runtime,
}

impl Bench {
    /// The script of the next session, on ten files no session has edited.
    fn next_script(&mut self) -> BoxResult<Script> {
        let start = self.sessions * EDITS;
        let targets = self
            .files
            .get(start..start + EDITS)
            .ok_or("the workspace is too small for this many sessions")?
            .to_vec();
        self.sessions += 1;
        Script::new(&self.root, &targets, self.sessions)
    }

    fn run(&mut self, mode: Mode) -> BoxResult<SessionRun> {
        let script = self.next_script()?;
        let run = match mode {
            Mode::Codex => self.run_codex(&script)?,
            _ => self.run_cairn(mode, &script)?,
        };
        script.check_applied(&self.root, mode.label())?;
        Ok(run)
    }

    fn run_cairn(&self, mode: Mode, script: &Script) -> BoxResult<SessionRun> {
        let fsmonitor = if mode == Mode::Watchman { "watchman" } else { "none" };
        let config = self.home.join(format!("cairn-{fsmonitor}.toml"));
        let (model, run) = self.runtime.block_on(async {
            let model = ScriptedModel::start(script.replies()).await?;
            std::fs::write(
                &config,
                format!(
                    "model = \"bench/scripted\"\n[provider.bench]\nkind = \"openai-chat\"\n\
                     base_url = \"{}\"\n\
                     # The session-end summary's model calls are not steps.\n\
                     [memory]\nsummarize = false\n\
                     [snapshot]\nfsmonitor = \"{fsmonitor}\"\n",
                    model.base_url()
                ),
            )?;
            let report = self.scratch.join("peak-memory");
            let mut command = cairn_command(&self.root, &self.home, &config, &report);
            match mode {
                Mode::Watchman => {
                    let watchman = self.watchman.as_ref().ok_or("no Watchman")?;
                    command.env("WATCHMAN_SOCK", &watchman.socket);
                }
                Mode::Neither => {
                    command.env("CAIRN_BENCH_NO_WATCHER", "1");
                }
                Mode::NoSnapshots => {
                    command.env("CAIRN_BENCH_NO_SNAPSHOTS", "1");
                }
                Mode::Watcher | Mode::Codex => {}
            }
            let run = tokio::task::spawn_blocking(move || {
                run_measured(&mut command, &report).map_err(|err| err.to_string())
            })
            .await??;
            BoxResult::Ok((model, run))
        })?;
        if !run.success {
            return Err(format!("cairn run ({}) failed:\n{}", mode.label(), run.stderr).into());
        }
        let requests = model.requests();
        if requests.len() != REQUESTS {
            return Err(format!(
                "{}: expected {REQUESTS} model calls, saw {}:\n{}",
                mode.label(),
                requests.len(),
                run.stderr
            )
            .into());
        }
        let mut gaps = Vec::with_capacity(REQUESTS);
        for pair in requests.windows(2) {
            let replied = pair[0].replied_at.ok_or("a reply did not complete")?;
            gaps.push(pair[1].received_at.saturating_duration_since(replied));
        }
        let last = requests[REQUESTS - 1].replied_at.ok_or("the last reply did not complete")?;
        let session = session_id(&run.stdout)?;
        let reference = format!("refs/cairn/sessions/{session}");
        let shell_parts = if mode == Mode::NoSnapshots {
            if !git(&self.root, &["for-each-ref", &reference])?.is_empty() {
                return Err("a session without snapshots recorded steps".into());
            }
            None
        } else {
            let steps: usize =
                git(&self.root, &["rev-list", "--count", &reference, "^HEAD"])?.parse()?;
            if steps != STEP_COMMITS {
                return Err(format!(
                    "{}: {steps} step commits, expected {STEP_COMMITS}",
                    mode.label()
                )
                .into());
            }
            Some(shell_step_timings(&self.root, &reference)?)
        };
        Ok(SessionRun {
            wall: run.wall,
            startup: requests[0].received_at.saturating_duration_since(run.started),
            edits: gaps[..EDITS].to_vec(),
            shell: gaps[EDITS],
            finish: run.ended.saturating_duration_since(last),
            max_rss: run.max_rss,
            shell_parts,
        })
    }

    /// Runs `codex exec` on `script`, its model `scripts/e2e/mock_models.py`.
    fn run_codex(&self, script: &Script) -> BoxResult<SessionRun> {
        let codex = self.codex.as_ref().ok_or("no Codex")?;
        let dir = self.scratch.join("codex");
        let codex_home = dir.join("home/.codex");
        std::fs::create_dir_all(&codex_home)?;
        let n = self.sessions;
        let plan = dir.join(format!("plan-{n}.json"));
        let timings = dir.join(format!("timings-{n}.jsonl"));
        let port_file = dir.join(format!("port-{n}"));
        std::fs::write(&plan, script.plan().to_string())?;
        let mock = MockModels::start(&port_file, &plan, &timings, &self.root)?;
        let q = |s: &str| Value::from(s).to_string(); // a TOML basic string is a JSON string
        std::fs::write(
            codex_home.join("config.toml"),
            format!(
                "model = \"gpt-5.5\"\nmodel_provider = \"mock\"\napproval_policy = \"never\"\n\
                 sandbox_mode = \"danger-full-access\"\ncheck_for_update_on_startup = false\n\n\
                 [analytics]\nenabled = false\n\n[feedback]\nenabled = false\n\n\
                 [model_providers.mock]\nname = \"mock\"\nbase_url = {}\n\
                 wire_api = \"responses\"\nenv_key = \"MOCK_API_KEY\"\n\n\
                 [projects.{}]\ntrust_level = \"trusted\"\n",
                q(&format!("http://127.0.0.1:{}/openai/v1", mock.port)),
                q(&self.root.to_string_lossy()),
            ),
        )?;
        let out = std::fs::File::create(dir.join(format!("out-{n}.jsonl")))?;
        let report = dir.join("peak-memory");
        let mut command = measured_command(codex, &report);
        command
            .args(["exec", "--skip-git-repo-check", "--json", PROMPT])
            .current_dir(&self.root)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", dir.join("home"))
            .env("CODEX_HOME", &codex_home)
            .env("MOCK_API_KEY", "mock-key")
            .env("TMPDIR", std::env::temp_dir())
            .env("LANG", "C.UTF-8")
            .env("TERM", "dumb")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::piped());
        let spawned = monotonic();
        let run = run_measured(&mut command, &report)?;
        let exited = monotonic();
        drop(mock);
        if !run.success {
            return Err(format!("codex exec failed:\n{}", run.stderr).into());
        }
        let mut posts: Vec<(f64, f64)> = std::fs::read_to_string(&timings)?
            .lines()
            .map(serde_json::from_str::<Value>)
            .filter_map(Result::ok)
            .filter(|entry| entry["path"].as_str().is_some_and(|p| p.ends_with("/responses")))
            .filter_map(|entry| Some((entry["received"].as_f64()?, entry["replied"].as_f64()?)))
            .collect();
        posts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if posts.len() != REQUESTS {
            return Err(format!(
                "Codex: expected {REQUESTS} model calls, saw {} ({})",
                posts.len(),
                dir.display()
            )
            .into());
        }
        let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
        let gaps: Vec<Duration> = posts.windows(2).map(|p| secs(p[1].0 - p[0].1)).collect();
        Ok(SessionRun {
            wall: run.wall,
            startup: secs(posts[0].0 - spawned),
            edits: gaps[..EDITS].to_vec(),
            shell: gaps[EDITS],
            finish: secs(exited - posts[REQUESTS - 1].1),
            max_rss: run.max_rss,
            shell_parts: None,
        })
    }
}

/// `scripts/e2e/mock_models.py`, serving one plan; stopped when dropped.
struct MockModels {
    child: std::process::Child,
    port: u16,
}

impl MockModels {
    fn start(port_file: &Path, plan: &Path, timings: &Path, root: &Path) -> BoxResult<MockModels> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/e2e/mock_models.py");
        let child = Command::new("python3")
            .arg(script)
            .arg("--port-file")
            .arg(port_file)
            .arg("--plan")
            .arg(plan)
            .arg("--timings")
            .arg(timings)
            .arg("--workspace")
            .arg(format!("codex={}", root.display()))
            .stdin(Stdio::null())
            .spawn()?;
        let mut mock = MockModels { child, port: 0 };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(port) = std::fs::read_to_string(port_file)
                && let Ok(port) = port.trim().parse()
            {
                mock.port = port;
                return Ok(mock);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err("scripts/e2e/mock_models.py did not start".into())
    }
}

impl Drop for MockModels {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `CLOCK_MONOTONIC` in seconds, the clock of Python's `time.monotonic()`.
fn monotonic() -> f64 {
    // SAFETY: clock_gettime only writes the timespec it is given.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

/// The Codex to run: `CAIRN_BENCH_CODEX`, else `codex` on `PATH`; an npm install's node
/// wrapper (`bin/codex.js`) is replaced by the native binary it starts.
fn find_codex() -> Option<PathBuf> {
    let named = match std::env::var_os("CAIRN_BENCH_CODEX") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path).map(|dir| dir.join("codex")).find(|p| p.is_file())
        })?,
    };
    let real = named.canonicalize().ok()?;
    if real.extension().is_none_or(|ext| ext != "js") {
        return Some(real);
    }
    let triple = match std::env::consts::ARCH {
        "x86_64" => ("codex-linux-x64", "x86_64-unknown-linux-musl"),
        "aarch64" => ("codex-linux-arm64", "aarch64-unknown-linux-musl"),
        _ => return Some(real),
    };
    // <node_modules>/@openai/codex/bin/codex.js → <node_modules>/@openai/<platform package>
    let scope = real.parent()?.parent()?.parent()?;
    let native = scope.join(triple.0).join("vendor").join(triple.1).join("bin/codex");
    Some(if native.is_file() { native } else { real })
}

fn codex_version(codex: &Path) -> String {
    Command::new(codex)
        .arg("--version")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|version| !version.is_empty())
        .unwrap_or_else(|| "codex".into())
}

fn bench_main() -> BoxResult<()> {
    let number = |name: &str, default: usize| -> BoxResult<usize> {
        match std::env::var(name) {
            Ok(n) if !n.trim().is_empty() => Ok(n.trim().replace('_', "").parse()?),
            _ => Ok(default),
        }
    };
    let files = number("CAIRN_BENCH_FILES", DEFAULT_FILES)?;
    let rounds = number("CAIRN_BENCH_ROUNDS", DEFAULT_ROUNDS)?.max(1);
    let mut base = tempfile::Builder::new().prefix("cairn-agent-bench-").tempdir()?;
    base.disable_cleanup(std::env::var("CAIRN_BENCH_KEEP").is_ok_and(|v| v == "1"));
    let root = base.path().join("repo");
    let home = base.path().join("home");
    std::fs::create_dir_all(&home)?;
    eprintln!("cairn agent benchmark in {}", base.path().display());

    eprintln!("[{files}] writing and committing the workspace…");
    let layout = build_workspace(&root, files)?;
    git_init(&root)?;
    git(&root, &["add", "-A"])?;
    git(&root, &["commit", "-q", "-m", "synthetic workspace"])?;

    eprintln!("[{files}] baselines: full snapshot and the git-CLI method…");
    let mut full_scan = Samples::default();
    time_full_scans(&root, &mut full_scan)?;
    let git_method = git_cli_snapshots(&root, base.path())?;

    let watchman = Watchman::start(base.path());
    if watchman.is_none() {
        eprintln!("note: watchman does not start here; the Watchman mode is skipped");
    }
    let codex = find_codex();
    match &codex {
        Some(path) => eprintln!("Codex CLI: {} ({})", path.display(), codex_version(path)),
        None => eprintln!(
            "note: no Codex CLI (set CAIRN_BENCH_CODEX=/path/to/codex or put codex on PATH); \
             the Codex comparison is skipped"
        ),
    }
    let mut modes: Vec<Mode> = Mode::ALL.to_vec();
    modes.retain(|mode| match mode {
        Mode::Watchman => watchman.is_some(),
        Mode::Codex => codex.is_some(),
        _ => true,
    });
    let sessions = (rounds + 1) * modes.len();
    let mut bench = Bench {
        files: distinct_files(&layout, sessions)?,
        root: root.clone(),
        home,
        scratch: base.path().to_path_buf(),
        sessions: 0,
        watchman,
        codex,
        runtime: tokio::runtime::Runtime::new()?,
    };

    // Not counted: Watchman's first watch crawls the whole workspace once per server, and
    // Codex's first run sets up its home.
    let mut warm_ups = Vec::new();
    for mode in [Mode::Watchman, Mode::Codex] {
        if modes.contains(&mode) {
            eprintln!("[{files}] warm-up session: {}…", mode.label());
            warm_ups.push((mode, bench.run(mode)?));
        }
    }
    let mut runs: Vec<Vec<SessionRun>> = Mode::ALL.iter().map(|_| Vec::new()).collect();
    for round in 1..=rounds {
        for &mode in &modes {
            eprintln!("[{files}] round {round}/{rounds}: {}…", mode.label());
            let run = bench.run(mode)?;
            runs[mode.column()].push(run);
        }
    }
    // The machine drifts over a run; baseline scans on both sides of the sessions.
    eprintln!("[{files}] baselines again…");
    time_full_scans(&root, &mut full_scan)?;
    let (unconfined, confined) = sandbox_setup(&root, base.path())?;

    let report = Report { runs: &runs, modes: &modes };
    println!();
    println!(
        "cairn agent benchmark: a {REQUESTS}-request scripted session ({EDITS} edit_file, 1 shell, \
         a final answer), `cairn run --approval auto --json`"
    );
    println!(
        "   workspace: {} files in {} directories (+ {} ignored), committed; {rounds} rounds, \
         modes interleaved; {STEP_COMMITS} step commits per recorded session",
        layout.files, layout.dirs, layout.ignored_files
    );
    println!(
        "   medians [min–max]; harness time of a step = next request − end of the model's reply"
    );
    if let Some(codex) = &bench.codex {
        println!("   Codex CLI: {} ({})", codex_version(codex), codex.display());
    }
    println!();
    report.table();
    for (mode, run) in &warm_ups {
        println!(
            "{:<36} | start-up {}, session {}",
            format!("warm-up, {} (not counted)", mode.label()),
            fmt_d(run.startup),
            fmt_d(run.wall)
        );
    }
    println!();
    report.targets(files);
    println!();
    let scan = full_scan.median();
    println!("{:<58} | {:<30} |", "baselines", "");
    println!("{}", "-".repeat(110));
    println!(
        "{:<58} | {:<30} | shell step with the watcher / full scan = {:.3}",
        "full snapshot, nothing changed (before+after)",
        full_scan.summary(),
        ratio(report.shell(Mode::Watcher), scan),
    );
    println!(
        "{:<58} | {:<30} | full scan / git = {:.2}",
        "git-CLI method per step (add -A, write-tree)",
        git_method.summary(),
        ratio(scan, git_method.median()),
    );
    println!(
        "{:<58} | {:<30} | < 5 ms {}",
        "sandbox setup per command (sandboxed − off, `sh -c true`)",
        fmt_d(confined.median().saturating_sub(unconfined.median())),
        verdict(confined.median().saturating_sub(unconfined.median()) < Duration::from_millis(5))
    );
    println!("{:<58} | {:<30} |", "   `sh -c true`, workspace-write sandbox", confined.summary());
    println!("{:<58} | {:<30} |", "   `sh -c true`, sandbox off", unconfined.summary());
    Ok(())
}

/// `median [min–max]`, short enough for a column.
fn spread(samples: &Samples) -> String {
    let sorted = samples.sorted();
    match (sorted.first(), sorted.last()) {
        (Some(min), Some(max)) if sorted.len() > 1 => {
            format!("{} [{}–{}]", fmt_d(samples.median()), fmt_d(*min), fmt_d(*max))
        }
        _ => fmt_d(samples.median()),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

/// The measured sessions, by mode.
struct Report<'a> {
    runs: &'a [Vec<SessionRun>],
    modes: &'a [Mode],
}

impl Report<'_> {
    fn of(&self, mode: Mode) -> &[SessionRun] {
        &self.runs[mode.column()]
    }

    fn samples(&self, mode: Mode, each: impl Fn(&SessionRun) -> Vec<Duration>) -> Samples {
        Samples(self.of(mode).iter().flat_map(each).collect())
    }

    fn wall(&self, mode: Mode) -> Duration {
        self.samples(mode, |run| vec![run.wall]).median()
    }

    fn shell(&self, mode: Mode) -> Duration {
        self.samples(mode, |run| vec![run.shell]).median()
    }

    fn peak(&self, mode: Mode) -> u64 {
        self.of(mode).iter().map(|run| run.max_rss).max().unwrap_or(0)
    }

    /// Checkpointing's cost in a session of `mode`: its wall time minus that of the session
    /// without snapshots.
    fn checkpointing(&self, mode: Mode) -> Option<(Duration, f64)> {
        if self.of(mode).is_empty() || self.of(Mode::NoSnapshots).is_empty() {
            return None;
        }
        let (with, without) = (self.wall(mode), self.wall(Mode::NoSnapshots));
        Some((with.saturating_sub(without), ratio(with.saturating_sub(without), with)))
    }

    fn row(&self, label: &str, cell: impl Fn(Mode) -> String) {
        let mut line = format!("{label:<36}");
        for &mode in self.modes {
            let text = if self.of(mode).is_empty() { "-".to_string() } else { cell(mode) };
            line.push_str(&format!(" | {text:<26}"));
        }
        println!("{}", line.trim_end());
    }

    fn table(&self) {
        self.row("", |mode| mode.label().to_string());
        println!("{}", "-".repeat(36 + 29 * self.modes.len()));
        let rounds = self.runs.iter().map(Vec::len).max().unwrap_or(0);
        self.row(&format!("session, wall clock (n={rounds})"), |mode| {
            spread(&self.samples(mode, |r| vec![r.wall]))
        });
        self.row("start-up to the first request", |mode| {
            fmt_d(self.samples(mode, |r| vec![r.startup]).median())
        });
        self.row(&format!("edit step, harness (n={})", rounds * EDITS), |mode| {
            spread(&self.samples(mode, |r| r.edits.clone()))
        });
        self.row(&format!("shell step, harness (n={rounds})"), |mode| {
            spread(&self.samples(mode, |r| vec![r.shell]))
        });
        let part = |mode: Mode, pick: fn(&(Duration, Duration)) -> Duration| {
            let samples = Samples(
                self.of(mode).iter().filter_map(|r| r.shell_parts.as_ref().map(pick)).collect(),
            );
            if samples.0.is_empty() { "-".to_string() } else { fmt_d(samples.median()) }
        };
        self.row("   of which the command", |mode| part(mode, |p| p.0));
        self.row("   of which the snapshot", |mode| part(mode, |p| p.1));
        self.row("final answer to exit", |mode| {
            fmt_d(self.samples(mode, |r| vec![r.finish]).median())
        });
        self.row("peak RSS (ru_maxrss, max)", |mode| fmt_bytes(self.peak(mode)));
        self.row("checkpointing cost (− no snapshots)", |mode| match mode {
            Mode::NoSnapshots | Mode::Codex => String::new(),
            _ => self
                .checkpointing(mode)
                .map(|(cost, share)| format!("{} ({:.1} %)", fmt_d(cost), share * 100.0))
                .unwrap_or_else(|| "-".into()),
        });
        self.row("session / Codex CLI", |mode| {
            if self.of(Mode::Codex).is_empty() || mode == Mode::Codex {
                String::new()
            } else {
                format!("{:.2}×", ratio(self.wall(mode), self.wall(Mode::Codex)))
            }
        });
    }

    /// The targets of issue #15, for the modes that ran.
    fn targets(&self, files: usize) {
        println!("targets (issue #15, set for 200,000 files; this run: {files})");
        let ran: Vec<Mode> =
            Mode::CHECKPOINTING.into_iter().filter(|mode| !self.of(*mode).is_empty()).collect();
        let each = |cell: &dyn Fn(Mode) -> String| {
            ran.iter()
                .map(|&mode| format!("{} {}", mode.label(), cell(mode)))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if !self.of(Mode::Watchman).is_empty() {
            let shell = self.shell(Mode::Watchman);
            println!(
                "   shell step with Watchman < 20 ms: {} {}",
                fmt_d(shell),
                verdict(shell < Duration::from_millis(20))
            );
        }
        if !self.of(Mode::NoSnapshots).is_empty() {
            println!(
                "   checkpointing < 10 % of the session: {}",
                each(&|mode| match self.checkpointing(mode) {
                    Some((_, share)) => format!("{:.1} % {}", share * 100.0, verdict(share < 0.10)),
                    None => "-".into(),
                })
            );
        }
        if !self.of(Mode::Codex).is_empty() {
            let codex = self.wall(Mode::Codex);
            println!(
                "   session faster than Codex CLI ({}): {}",
                fmt_d(codex),
                each(&|mode| {
                    let wall = self.wall(mode);
                    format!("{} {}", fmt_d(wall), verdict(wall < codex))
                })
            );
        }
        println!(
            "   peak RSS of `cairn run` < 50 MiB: {}",
            each(&|mode| {
                let peak = self.peak(mode);
                format!("{} {}", fmt_bytes(peak), verdict(peak < 50 << 20))
            })
        );
    }
}

/// `sessions × EDITS` different files, the `EDITS` of each session (consecutive in the
/// list) spread over the whole tree.
fn distinct_files(layout: &Layout, sessions: usize) -> BoxResult<Vec<String>> {
    let count = sessions * EDITS;
    let leaves = layout.leaves.len();
    // The `k`th file of a walk over the tree: one per leaf directory while there are
    // enough of them, else the next file of each.
    let spread = |k: usize| {
        if count <= leaves {
            layout.file(k * leaves / count, 0)
        } else {
            layout.file(k % leaves, k / leaves)
        }
    };
    let mut seen = std::collections::HashSet::new();
    let mut files = Vec::with_capacity(count);
    for session in 0..sessions {
        for edit in 0..EDITS {
            let file = spread(edit * sessions + session);
            if !seen.insert(file.clone()) {
                return Err(format!("the workspace has too few files for {count} edits").into());
            }
            files.push(file);
        }
    }
    Ok(files)
}

/// Times `sh -c true` run directly and through the sandbox launcher, interleaved, the way
/// the `shell` tool starts it in each mode.
fn sandbox_setup(root: &Path, scratch: &Path) -> BoxResult<(Samples, Samples)> {
    const RUNS: usize = 30;
    let tmp = scratch.join("sandbox-tmp");
    std::fs::create_dir_all(&tmp)?;
    let (mut unconfined, mut confined) = (Samples::default(), Samples::default());
    let status = |command: &mut Command| -> BoxResult<()> {
        let status = command.current_dir(root).stdin(Stdio::null()).status()?;
        if status.success() { Ok(()) } else { Err(format!("{command:?} failed").into()) }
    };
    for _ in 0..RUNS {
        unconfined.time(|| status(Command::new("sh").args(["-c", "true"])))?;
        confined.time(|| {
            status(
                Command::new(env!("CARGO_BIN_EXE_cairn-sandbox"))
                    .args(["--mode", "workspace-write", "--workspace"])
                    .arg(root)
                    .arg("--tmp")
                    .arg(&tmp)
                    .arg("--protect")
                    .arg(root.join(".git"))
                    .args(["--", "sh", "-c", "true"]),
            )
        })?;
    }
    Ok((unconfined, confined))
}

/// Times `SCAN_RUNS` full snapshots of a warm workspace with nothing changed.
fn time_full_scans(root: &Path, samples: &mut Samples) -> BoxResult<()> {
    let store = Store::discover(root, StoreOptions::default())?;
    store.snapshot()?;
    for _ in 0..SCAN_RUNS {
        samples.time(|| store.snapshot())?;
    }
    Ok(())
}

/// The `tools_ms` and `snapshot_ms` the session's shell step recorded in its `step.json`.
fn shell_step_timings(root: &Path, reference: &str) -> BoxResult<(Duration, Duration)> {
    let commit =
        git(root, &["log", "-1", "--format=%H", "--grep=^Cairn-Tools: shell$", reference])?;
    if commit.is_empty() {
        return Err(format!("no shell step in {reference}").into());
    }
    let json = git(root, &["show", &format!("{commit}:.cairn/state/step.json")])?;
    let value: Value = serde_json::from_str(&json)?;
    let millis = |name: &str| -> BoxResult<Duration> {
        let ms = value["timings"][name].as_f64().ok_or(format!("a shell step without {name}"))?;
        Ok(Duration::from_secs_f64(ms / 1000.0))
    };
    Ok((millis("tools_ms")?, millis("snapshot_ms")?))
}

/// The session id of a `cairn run --json` from its `session_started` event.
fn session_id(stdout: &str) -> BoxResult<String> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["type"] == "session_started")
        .and_then(|event| event["session"].as_str().map(str::to_string))
        .ok_or_else(|| "no session_started event".into())
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::EPSILON)
}

fn cairn_command(root: &Path, home: &Path, config: &Path, report: &Path) -> Command {
    let mut command = measured_command(Path::new(env!("CARGO_BIN_EXE_cairn")), report);
    command
        .args(["run", PROMPT, "--approval", "auto", "--json"])
        .args(["--max-steps", &(REQUESTS + 10).to_string()])
        .current_dir(root)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("CAIRN_CONFIG", config)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("CAIRN_BENCH_NO_SNAPSHOTS")
        .env_remove("CAIRN_BENCH_NO_WATCHER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

struct MeasuredRun {
    success: bool,
    stdout: String,
    stderr: String,
    started: Instant,
    ended: Instant,
    wall: Duration,
    max_rss: u64,
}

/// Runs `command`, made by [`measured_command`] with `report`, to completion, and reads the
/// program's peak resident set size and wall time from the report.
fn run_measured(command: &mut Command, report: &Path) -> BoxResult<MeasuredRun> {
    let _ = std::fs::remove_file(report);
    let started = Instant::now();
    let mut child = command.spawn()?;
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let status = child.wait()?;
    let ended = Instant::now();
    let stdout = stdout.join().map_err(|_| "stdout reader panicked")?;
    let stderr = stderr.join().map_err(|_| "stderr reader panicked")?;
    let (kib, wall) = read_measure_report(report)
        .map_err(|err| format!("no peak-memory report ({err}):\n{stderr}"))?;
    // Linux reports kilobytes.
    Ok(MeasuredRun {
        success: status.success(),
        stdout,
        stderr,
        started,
        ended,
        wall,
        max_rss: kib * 1024,
    })
}

/// The git-CLI method's per-step cost, warm: the private index already exists.
fn git_cli_snapshots(root: &Path, scratch: &Path) -> BoxResult<Samples> {
    let index: PathBuf = scratch.join("git-method-index");
    let step = || -> BoxResult<String> {
        run(git_cmd(root, Some(&index)).args(["add", "-A"]))?;
        run(git_cmd(root, Some(&index)).args(["write-tree"]))
    };
    step()?;
    let mut samples = Samples::default();
    for _ in 0..SCAN_RUNS {
        samples.time(step)?;
    }
    Ok(samples)
}
