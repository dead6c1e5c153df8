//! Several cairn processes stepping at once, in one repository and in linked worktrees of
//! it: every step a command reports lands on its session, no ref ever moves backwards or
//! sideways (each session's reflog is one chain of parent to child), and git finds the
//! repository sound.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use crate::support::TestRepo;
use crate::support::mock_model::{self, Reply};

/// Runs each command on its own thread, all at once; returns their outputs in order.
fn all_at_once(repo: &TestRepo, commands: Vec<(PathBuf, Vec<String>)>) -> Vec<Output> {
    let barrier = std::sync::Barrier::new(commands.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = commands
            .iter()
            .map(|(dir, args)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    let mut command = repo.command_in(dir, &args);
                    barrier.wait();
                    command.output().expect("cairn runs")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The step numbers of a session, newest first, read with git.
fn step_numbers(repo: &TestRepo, session: &str) -> Vec<u64> {
    repo.git(&[
        "log",
        "--format=%(trailers:key=Cairn-Step,valueonly,separator=)",
        &TestRepo::session_ref(session),
        "--not",
        "HEAD",
    ])
    .lines()
    .map(|line| line.trim().parse().unwrap())
    .collect()
}

/// Asserts the session ref's reflog is one chain: each entry starts where the last ended,
/// each new tip is a child of the old one, and the last entry is the ref. Returns how
/// many moves it holds.
fn assert_linear_reflog(repo: &TestRepo, session: &str) -> usize {
    let git_dir = PathBuf::from(repo.git(&["rev-parse", "--git-common-dir"]).trim());
    let git_dir = if git_dir.is_absolute() { git_dir } else { repo.root.join(git_dir) };
    let log = std::fs::read_to_string(git_dir.join("logs").join(TestRepo::session_ref(session)))
        .expect("a reflog");
    let mut previous = "0".repeat(40);
    let mut moves = 0;
    for line in log.lines() {
        let mut fields = line.split(' ');
        let (old, new) = (fields.next().unwrap(), fields.next().unwrap());
        assert_eq!(old, previous, "the reflog of {session} jumps: {log}");
        if old != "0".repeat(40) {
            let parent = repo.git(&["rev-parse", &format!("{new}^")]);
            assert_eq!(parent.trim(), old, "{new} is not a child of {old}");
        }
        previous = new.to_string();
        moves += 1;
    }
    let tip = repo.git(&["rev-parse", &TestRepo::session_ref(session)]);
    assert_eq!(tip.trim(), previous, "the reflog ends at the ref");
    moves
}

fn stdout_json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

#[test]
fn four_checkpoints_on_one_session_at_once_all_land_in_one_chain() {
    let repo = TestRepo::new();
    let (session, _, _) = repo.checkpoint(&["--new", "-m", "start"]);
    let rounds = 5;
    let mut landed = 0;
    let mut refused = 0;
    for round in 0..rounds {
        let commands = (0..4)
            .map(|i| {
                repo.write(&format!("w{i}/r{round}.txt"), &format!("writer {i} round {round}\n"));
                let args = ["checkpoint", "--json", "-m", &format!("w{i} r{round}")];
                (repo.root.clone(), args.map(String::from).to_vec())
            })
            .collect();
        for out in all_at_once(&repo, commands) {
            if out.status.success() {
                assert_eq!(stdout_json(&out)["session"], session.as_str());
                landed += 1;
            } else {
                // Losing the race five times over is allowed, and said clearly.
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(err.contains("moved by another process"), "{err}");
                refused += 1;
            }
        }
    }
    println!(
        "concurrency: 4 checkpoints × {rounds} rounds on one session: {landed} landed, {refused} refused"
    );
    let steps = step_numbers(&repo, &session);
    assert_eq!(steps.len(), 1 + landed, "every reported step landed ({refused} refused)");
    let expected: Vec<u64> = (1..=steps.len() as u64).rev().collect();
    assert_eq!(steps, expected, "steps are numbered without gaps or repeats");
    assert_eq!(assert_linear_reflog(&repo, &session), steps.len());
    assert!(landed >= rounds, "at least one checkpoint per round lands");
    // The last step holds every file (each checkpoint scans the whole workspace).
    let files = repo.tree_files(&TestRepo::session_ref(&session));
    assert_eq!(files.keys().filter(|p| p.starts_with('w')).count(), 4 * rounds);
    repo.assert_fsck_clean();
}

#[test]
fn four_new_sessions_at_once_each_get_their_steps() {
    let repo = TestRepo::new();
    let commands = (0..4)
        .map(|i| {
            let args = ["checkpoint", "--new", "--json", "-m", &format!("session {i}")];
            (repo.root.clone(), args.map(String::from).to_vec())
        })
        .collect();
    let outs = all_at_once(&repo, commands);
    let mut sessions: Vec<String> =
        outs.iter().map(|out| stdout_json(out)["session"].as_str().unwrap().to_string()).collect();
    sessions.sort();
    sessions.dedup();
    assert_eq!(sessions.len(), 4, "four distinct sessions: {sessions:?}");
    for session in &sessions {
        assert_eq!(step_numbers(&repo, session), [1]);
        assert_linear_reflog(&repo, session);
    }
    repo.assert_fsck_clean();
}

/// A scripted model for one run: `turns` responses each writing a file of `who`'s, then
/// an answer.
async fn writer_model(who: &str, turns: usize) -> mock_model::MockModel {
    let mut script: Vec<Reply> = (1..=turns)
        .map(|k| {
            Reply::chat_tool_calls(&[(
                "c",
                "write_file",
                json!({"path": format!("{who}/{k}.txt"), "content": format!("{who} {k}\n")}),
            )])
        })
        .collect();
    script.push(Reply::chat_text("done"));
    mock_model::start(script).await
}

/// A config file pointing at `model`, for one process (`CAIRN_CONFIG`).
fn config_for(repo: &TestRepo, name: &str, model: &mock_model::MockModel) -> PathBuf {
    let path = repo.home.join(format!("{name}.toml"));
    let text = format!(
        "model = \"mock/scripted\"\n[provider.mock]\nkind = \"openai-chat\"\nbase_url = \"{}\"\n",
        model.base_url()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `cairn run --json` in each (directory, config) at once; returns each run's
/// session and the steps it reported.
async fn runs_at_once(repo: &TestRepo, runs: Vec<(PathBuf, PathBuf)>) -> Vec<(String, u64)> {
    let mut handles = Vec::new();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(runs.len()));
    for (dir, config) in runs {
        let mut command =
            repo.command_in(&dir, &["run", "write your files", "--approval", "auto", "--json"]);
        command.env("CAIRN_CONFIG", config);
        let barrier = barrier.clone();
        handles.push(tokio::task::spawn_blocking(move || {
            barrier.wait();
            command.output().expect("cairn runs")
        }));
    }
    let mut out = Vec::new();
    for handle in handles {
        let output = handle.await.unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let session = events.iter().find(|e| e["type"] == "session_started").unwrap()["session"]
            .as_str()
            .unwrap()
            .to_string();
        let steps = events.iter().filter(|e| e["type"] == "step_recorded").count() as u64;
        out.push((session, steps));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_scripted_sessions_stepping_at_once_all_land() {
    let repo = TestRepo::new();
    let turns = 6;
    let mut models = Vec::new();
    let mut runs = Vec::new();
    for i in 0..4 {
        let model = writer_model(&format!("agent{i}"), turns).await;
        runs.push((repo.root.clone(), config_for(&repo, &format!("agent{i}"), &model)));
        models.push(model);
    }
    let results = runs_at_once(&repo, runs).await;
    let mut total = 0;
    for (session, reported) in &results {
        let steps = step_numbers(&repo, session);
        // prompt, one step per tool turn, the answer; other sessions' writes show up as
        // user-edits steps in between.
        assert!(*reported >= turns as u64 + 2, "{session}: {reported} steps");
        assert_eq!(steps.len() as u64, *reported, "{session}: every reported step landed");
        assert_eq!(steps[0], *reported);
        assert_eq!(assert_linear_reflog(&repo, session) as u64, *reported);
        total += reported;
    }
    println!("concurrency: 4 sessions, {total} steps landed");
    for i in 0..4 {
        for k in 1..=turns {
            assert_eq!(repo.read(&format!("agent{i}/{k}.txt")), format!("agent{i} {k}\n"));
        }
    }
    repo.assert_fsck_clean();
}

fn add_worktree(repo: &TestRepo, name: &str) -> PathBuf {
    let linked = repo.root.parent().unwrap().join(name);
    repo.git(&["worktree", "add", "-q", linked.to_str().unwrap(), "-b", name]);
    linked
}

fn in_worktree(dir: &Path, args: &[&str]) -> (PathBuf, Vec<String>) {
    (dir.to_path_buf(), args.iter().map(|a| a.to_string()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_in_two_linked_worktrees_step_at_once() {
    let repo = TestRepo::new();
    let worktrees = [add_worktree(&repo, "left"), add_worktree(&repo, "right")];
    // Each worktree gets its own current session.
    let start: Vec<(PathBuf, Vec<String>)> = worktrees
        .iter()
        .map(|dir| in_worktree(dir, &["checkpoint", "--new", "--json", "-m", "start"]))
        .collect();
    let sessions: Vec<String> = all_at_once(&repo, start)
        .iter()
        .map(|out| stdout_json(out)["session"].as_str().unwrap().to_string())
        .collect();
    assert_ne!(sessions[0], sessions[1]);
    let rounds = 6;
    for round in 0..rounds {
        let commands = worktrees
            .iter()
            .map(|dir| {
                std::fs::write(dir.join(format!("r{round}.txt")), format!("round {round}\n"))
                    .unwrap();
                in_worktree(dir, &["checkpoint", "--json", "-m", &format!("r{round}")])
            })
            .collect();
        for (out, session) in all_at_once(&repo, commands).iter().zip(&sessions) {
            assert_eq!(stdout_json(out)["session"], session.as_str(), "no contention, all land");
        }
    }
    // And a scripted run in each worktree at once.
    let mut models = Vec::new();
    let mut runs = Vec::new();
    for (i, dir) in worktrees.iter().enumerate() {
        let model = writer_model(&format!("agent{i}"), 3).await;
        runs.push((dir.clone(), config_for(&repo, &format!("wt{i}"), &model)));
        models.push(model);
    }
    let results = runs_at_once(&repo, runs).await;
    for session in &sessions {
        let steps = step_numbers(&repo, session);
        assert_eq!(steps.len(), 1 + rounds, "{session}");
        assert_eq!(assert_linear_reflog(&repo, session), 1 + rounds);
    }
    for (i, (session, reported)) in results.iter().enumerate() {
        assert_eq!(step_numbers(&repo, session).len() as u64, *reported);
        assert_eq!(assert_linear_reflog(&repo, session) as u64, *reported);
        let file = worktrees[i].join(format!("agent{i}/3.txt"));
        assert_eq!(std::fs::read_to_string(file).unwrap(), format!("agent{i} 3\n"));
        let other = worktrees[1 - i].join(format!("agent{i}"));
        assert!(!other.exists(), "a run writes only its own worktree");
    }
    repo.assert_fsck_clean();
}
