//! Agent benchmark: a scripted 50-step `cairn run` on a synthetic repository, measuring
//! what cairn itself adds to each step, and the peak memory of the process.
//!
//! ```sh
//! cargo bench --locked --bench agent                          # 100,000 files (~2 min)
//! CAIRN_BENCH_FILES=10000 cargo bench --locked --bench agent  # any size
//! ```
//!
//! `CAIRN_BENCH_FSMONITOR=watchman` runs the session with `[snapshot] fsmonitor =
//! "watchman"` against a private Watchman server (the agent then starts no watcher of its
//! own; shell steps ask Watchman), instead of cairn's own file watcher.
//!
//! `CAIRN_BENCH_KEEP=1` keeps the temporary repository (under `$TMPDIR`) for inspection:
//! each step's `.cairn/state/step.json` holds its timings.
//!
//! The model is the tests' scripted server (`tests/support/mock_model.rs`) on 127.0.0.1
//! (real HTTP, openai-chat streams). It answers 50 times with one tool call each — 40
//! `edit_file` calls on files spread over the tree and 10 `shell` commands — then with a
//! closing text. The harness's time for a step is the gap between the model finishing a
//! reply and the next request arriving: parsing the stream, running the tool, recording
//! the step commit, flushing user edits, building and sending the next request. The
//! model's own time is outside that gap.
//!
//! Baselines in the same run: a full incremental snapshot of the same workspace with
//! nothing changed (what a shell step would pay without the file watcher, since a command
//! can touch anything), and
//! the git-CLI snapshot method other agents run per step (`git add -A` into a private
//! index, `git write-tree`). Peak memory is the `ru_maxrss` that `wait4` reports for the
//! `cairn run` process. The sandbox's setup cost is `sh -c true` through the sandbox
//! launcher against `sh -c true` alone, interleaved in the same run.

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
use serde_json::json;

const STEPS: usize = 50;
/// Every fifth step runs a shell command; the rest edit a file.
const SHELL_EVERY: usize = 5;
const SCAN_RUNS: usize = 7;

fn main() {
    if let Err(err) = bench_main() {
        eprintln!("benchmark failed: {err}");
        std::process::exit(1);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StepKind {
    Edit,
    Shell,
}

fn bench_main() -> BoxResult<()> {
    let files = match std::env::var("CAIRN_BENCH_FILES") {
        Ok(n) if !n.trim().is_empty() => n.trim().replace('_', "").parse()?,
        _ => 100_000,
    };
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

    let (kinds, script) = build_script(&root, &layout)?;
    let config = home.join("cairn.toml");
    let with_watchman = std::env::var("CAIRN_BENCH_FSMONITOR").is_ok_and(|v| v == "watchman");
    let watchman = if with_watchman {
        Some(
            Watchman::start(base.path())
                .ok_or("CAIRN_BENCH_FSMONITOR=watchman: watchman does not start")?,
        )
    } else {
        None
    };
    let fsmonitor = if with_watchman { "watchman" } else { "none" };
    let runtime = tokio::runtime::Runtime::new()?;
    eprintln!("[{files}] the scripted session ({STEPS} steps)…");
    let (model, run) = runtime.block_on(async {
        let model = ScriptedModel::start(script).await?;
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
        let mut command = cairn_command(&root, &home, &config);
        if let Some(watchman) = &watchman {
            command.env("WATCHMAN_SOCK", &watchman.socket);
        }
        let run = tokio::task::spawn_blocking(move || {
            run_measured(&mut command).map_err(|err| err.to_string())
        })
        .await??;
        BoxResult::Ok((model, run))
    })?;
    if !run.success {
        return Err(format!("cairn run failed:\n{}", run.stderr).into());
    }
    let requests = model.requests();
    if requests.len() != STEPS + 1 {
        return Err(format!("expected {} model calls, saw {}", STEPS + 1, requests.len()).into());
    }
    let recorded = git(&root, &["rev-list", "--count", "--glob=refs/cairn/sessions", "^HEAD"])?;
    // The machine drifts over a run; baseline scans on both sides of the session.
    eprintln!("[{files}] baselines again…");
    time_full_scans(&root, &mut full_scan)?;
    let (shell_commands, shell_snapshots) = shell_step_timings(&root, &kinds)?;

    let (mut edits, mut shells) = (Samples::default(), Samples::default());
    for (step, kind) in kinds.iter().enumerate() {
        let replied = requests[step].replied_at.ok_or("a reply did not complete")?;
        let gap = requests[step + 1].received_at.saturating_duration_since(replied);
        match kind {
            StepKind::Edit => edits.push(gap),
            StepKind::Shell => shells.push(gap),
        }
    }
    let startup = requests[0].received_at.saturating_duration_since(run.started);

    let scan = full_scan.median();
    let git_median = git_method.median();
    println!();
    println!(
        "cairn agent benchmark: {STEPS}-step scripted `cairn run --approval auto --json`, changes from {}",
        if with_watchman { "Watchman" } else { "cairn's file watcher" }
    );
    println!(
        "   workspace: {} files in {} directories (+ {} ignored), committed; {} step commits recorded",
        layout.files, layout.dirs, layout.ignored_files, recorded
    );
    println!(
        "   medians [min–max] over n steps; harness time = next request − end of the model's reply"
    );
    println!();
    println!("{:<58} | {:<30} | target", "measure", "cairn");
    println!("{}", "-".repeat(110));
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    println!(
        "{:<58} | {:<30} | < 15 ms {}",
        "edit step (edit_file, fast-path snapshot, commit)",
        edits.summary(),
        verdict(edits.median() < Duration::from_millis(15))
    );
    println!(
        "{:<58} | {:<30} | < 20 ms {}; shell step / full scan = {:.3}",
        "shell step (command, watched changes, commit)",
        shells.summary(),
        verdict(shells.median() < Duration::from_millis(20)),
        ratio(shells.median(), scan),
    );
    println!(
        "{:<58} | {:<30} |",
        "   of which the command (step.json tools_ms)",
        shell_commands.summary()
    );
    println!(
        "{:<58} | {:<30} |",
        "   of which the snapshot (step.json snapshot_ms)",
        shell_snapshots.summary()
    );
    println!(
        "{:<58} | {:<30} |",
        "   baseline: full snapshot, nothing changed (before+after)",
        full_scan.summary()
    );
    println!(
        "{:<58} | {:<30} | edit step / git = {:.3}, shell step / git = {:.2}",
        "   baseline: git-CLI method per step (add -A, write-tree)",
        git_method.summary(),
        ratio(edits.median(), git_median),
        ratio(shells.median(), git_median),
    );
    let (unconfined, confined) = sandbox_setup(&root, base.path())?;
    println!(
        "{:<58} | {:<30} | < 5 ms {}",
        "sandbox setup per command (sandboxed − off, `sh -c true`)",
        fmt_d(confined.median().saturating_sub(unconfined.median())),
        verdict(confined.median().saturating_sub(unconfined.median()) < Duration::from_millis(5))
    );
    println!("{:<58} | {:<30} |", "   `sh -c true`, workspace-write sandbox", confined.summary());
    println!("{:<58} | {:<30} |", "   `sh -c true`, sandbox off", unconfined.summary());
    println!("{:<58} | {:<30} |", "start-up to the first model call", fmt_d(startup));
    println!("{:<58} | {:<30} |", "whole run (wall clock)", fmt_d(run.wall));
    println!(
        "{:<58} | {:<30} | < 100 MiB {}",
        "peak memory of `cairn run` (ru_maxrss)",
        fmt_bytes(run.max_rss),
        verdict(run.max_rss < 100 << 20)
    );
    Ok(())
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

/// The `tools_ms` and `snapshot_ms` each shell step recorded in its `step.json` (step 1
/// is the prompt, so the script's step `i` is step `i + 2`, `STEPS - i` commits below the
/// tip).
fn shell_step_timings(root: &Path, kinds: &[StepKind]) -> BoxResult<(Samples, Samples)> {
    let session = git(root, &["for-each-ref", "--format=%(refname)", "refs/cairn/sessions"])?;
    let (mut commands, mut snapshots) = (Samples::default(), Samples::default());
    let millis = |value: &serde_json::Value, name: &str| -> BoxResult<Duration> {
        let ms = value["timings"][name].as_f64().ok_or(format!("a shell step without {name}"))?;
        Ok(Duration::from_secs_f64(ms / 1000.0))
    };
    for (step, kind) in kinds.iter().enumerate() {
        if *kind != StepKind::Shell {
            continue;
        }
        let back = kinds.len() - step;
        let json = git(root, &["show", &format!("{session}~{back}:.cairn/state/step.json")])?;
        let value: serde_json::Value = serde_json::from_str(&json)?;
        if value["tool_calls"][0]["name"] != "shell" {
            return Err(format!("step {} is not the shell step expected", step + 2).into());
        }
        commands.push(millis(&value, "tools_ms")?);
        snapshots.push(millis(&value, "snapshot_ms")?);
    }
    Ok((commands, snapshots))
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::EPSILON)
}

/// Picks the files to edit and builds the model's replies; returns each step's kind too.
fn build_script(root: &Path, layout: &Layout) -> BoxResult<(Vec<StepKind>, Vec<Reply>)> {
    let targets = layout.pick(1, STEPS);
    let mut kinds = Vec::with_capacity(STEPS);
    let mut script = Vec::with_capacity(STEPS + 1);
    for (step, path) in targets.iter().enumerate() {
        let id = format!("call-{step}");
        if step % SHELL_EVERY == SHELL_EVERY - 1 {
            kinds.push(StepKind::Shell);
            let command = format!("echo 'check {step}' > status.txt");
            script.push(Reply::chat_tool_calls(&[(&id, "shell", json!({"command": command}))]));
        } else {
            kinds.push(StepKind::Edit);
            let content = std::fs::read_to_string(root.join(path))?;
            let first = content.lines().next().ok_or("an empty generated file")?;
            let arguments = json!({
                "path": path,
                "old_string": first,
                "new_string": format!("{first} // edited at step {step}"),
            });
            script.push(Reply::chat_tool_calls(&[(&id, "edit_file", arguments)]));
        }
    }
    script.push(Reply::chat_text("All fifty steps are done."));
    Ok((kinds, script))
}

fn cairn_command(root: &Path, home: &Path, config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
    command
        .args(["run", "edit the files and check the build", "--approval", "auto", "--json"])
        .args(["--max-steps", &(STEPS + 10).to_string()])
        .current_dir(root)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("CAIRN_CONFIG", config)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

struct MeasuredRun {
    success: bool,
    stderr: String,
    started: Instant,
    wall: Duration,
    max_rss: u64,
}

/// Runs `command` to completion and reads its peak resident set size from `wait4`.
fn run_measured(command: &mut Command) -> BoxResult<MeasuredRun> {
    let started = Instant::now();
    let mut child = command.spawn()?;
    let mut stderr_pipe = child.stderr.take().ok_or("no stderr")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr_pipe, &mut text);
        text
    });
    let pid = libc::pid_t::try_from(child.id())?;
    let mut status = 0;
    // SAFETY: `usage` is a plain C struct that wait4 fills in; `pid` is our own child, not
    // yet reaped (std's `Child` is never waited on below).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if reaped != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()).into());
    }
    let wall = started.elapsed();
    let stderr = reader.join().map_err(|_| "stderr reader panicked")?;
    Ok(MeasuredRun {
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stderr,
        started,
        wall,
        // Linux reports kilobytes.
        max_rss: u64::try_from(usage.ru_maxrss)? * 1024,
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
