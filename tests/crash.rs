//! Crash safety under fault injection: `cairn checkpoint`, `cairn rewind` and a scripted
//! `cairn run` are killed with SIGKILL at random moments on a repository of a few thousand
//! files, while the test edits files around and during them. After every kill the
//! repository must be sound and nothing the user wrote may be lost:
//!
//! - `git fsck --strict` (the real git) finds nothing wrong;
//! - every ref under `refs/cairn/sessions` and `refs/cairn/archive` names a complete step
//!   commit (a `Cairn-Step` trailer, `.cairn/state/step.json` and `.cairn/session.toml`);
//! - the next `cairn checkpoint` works, records no temporary file of the killed process,
//!   and leaves none behind;
//! - every version of every file the test ever wrote is a blob of some recorded step;
//! - at the end, no temporary pack or object file and no lock is left in `.git`.
//!
//! The kill moments and edits come from a seeded generator; the seed is printed and
//! `CAIRN_CRASH_SEED=<seed>` replays the same choices (the moments a kill lands on still
//! depend on the machine). `CAIRN_CRASH_KILLS` sets how many kills to deliver (default
//! 24, about half a minute); a long run:
//!
//! ```sh
//! CAIRN_CRASH_KILLS=500 cargo test --locked --test crash -- --nocapture
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::TestRepo;
use support::mock_model::{MockModel, Reply};

/// Files in the repository's first commit.
const TRACKED_FILES: usize = 3000;
/// Directories they are spread over.
const DIRS: usize = 50;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum Kind {
    Checkpoint,
    Rewind,
    Run,
}

#[derive(Default)]
struct Figures {
    /// Per kind: (started, killed while running, finished before the kill).
    commands: BTreeMap<Kind, (usize, usize, usize)>,
    kills: usize,
    recoveries: usize,
    steps_verified: usize,
    refs_verified: usize,
    refs_at_end: usize,
    versions_written: usize,
    /// Facts on `refs/cairn/memory` at the last check.
    facts_at_end: usize,
}

/// Every version of every file the test wrote, as blob ids, with the path for messages.
#[derive(Default)]
struct Versions {
    all: Vec<(String, gix::ObjectId)>,
    counter: HashMap<String, u64>,
}

impl Versions {
    /// Writes the next version of `rel`. The content keeps the same length from version
    /// to version, so only the stat cache's timestamps can tell versions apart.
    fn write(&mut self, repo: &TestRepo, rel: &str, seed: u64) {
        let n = self.counter.entry(rel.to_string()).or_insert(0);
        *n += 1;
        let content = format!("{rel} version {n:08} seed {seed:020}\n");
        let path = repo.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &content).unwrap();
        let id = gix::objs::compute_hash(
            gix::hash::Kind::Sha1,
            gix::objs::Kind::Blob,
            content.as_bytes(),
        )
        .unwrap();
        self.all.push((rel.to_string(), id));
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn tracked_name(i: usize) -> String {
    format!("src/d{:02}/f{:04}.txt", i % DIRS, i)
}

#[test]
fn killed_commands_never_corrupt_the_repository_or_lose_user_bytes() {
    let seed = env_number("CAIRN_CRASH_SEED").unwrap_or_else(|| fastrand::u64(..));
    let kills_wanted = env_number("CAIRN_CRASH_KILLS").unwrap_or(24) as usize;
    println!("crash: seed {seed} (replay with CAIRN_CRASH_SEED={seed}), {kills_wanted} kills");
    let mut rng = fastrand::Rng::with_seed(seed);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();

    let repo = TestRepo::new();
    let mut versions = Versions::default();
    for i in 0..TRACKED_FILES {
        versions.write(&repo, &tracked_name(i), seed);
    }
    repo.write(".gitignore", "ignored/\n");
    repo.write("ignored/cache.bin", "ignored\n");
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-qm", "a few thousand files"]);
    let user_state = repo.user_state();
    repo.checkpoint(&["--new", "-m", "start"]);

    let mut figures = Figures::default();
    // Typical durations, learnt from commands that finished; kills land within them.
    let mut typical: HashMap<Kind, f64> =
        [(Kind::Checkpoint, 150.0), (Kind::Rewind, 200.0), (Kind::Run, 300.0)].into();
    let mut iteration = 0;
    while figures.kills < kills_wanted && iteration < kills_wanted * 5 + 10 {
        iteration += 1;
        let mut kind = match rng.u32(0..4) {
            0 | 1 => Kind::Checkpoint,
            2 => Kind::Rewind,
            _ => Kind::Run,
        };
        let steps = current_steps(&repo);
        if kind == Kind::Rewind && steps < 2 {
            kind = Kind::Checkpoint;
        }
        // Edits before the command: new versions, new files, deletions.
        let mut touched = HashSet::new();
        for _ in 0..rng.usize(0..6) {
            let rel = match rng.u32(0..10) {
                0 => format!("new/i{iteration}-{}.txt", rng.u32(..)),
                _ => tracked_name(rng.usize(0..TRACKED_FILES)),
            };
            if touched.insert(rel.clone()) {
                if rng.u32(0..12) == 0 && repo.path(&rel).exists() {
                    std::fs::remove_file(repo.path(&rel)).unwrap();
                } else {
                    versions.write(&repo, &rel, seed);
                }
            }
        }

        let model = (kind == Kind::Run).then(|| start_model(&runtime, iteration));
        if let Some(model) = &model {
            repo.use_model(&model.base_url());
        }
        let args: Vec<String> = match kind {
            Kind::Checkpoint => vec!["checkpoint".into(), "-m".into(), format!("c{iteration}")],
            Kind::Rewind => vec!["rewind".into(), format!("@~{}", rng.u64(1..steps.min(6)))],
            Kind::Run => {
                ["run", "write some files", "--approval", "auto"].map(String::from).to_vec()
            }
        };
        let delay = rng.f64() * typical[&kind] * 1.1;
        let started = Instant::now();
        let mut child = repo
            .command_in(&repo.root, &args.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let entry = figures.commands.entry(kind).or_default();
        entry.0 += 1;
        // The user keeps typing while checkpoint and run work (rewind rewrites the
        // workspace, and an edit racing it is the user's own race, as with git checkout).
        if kind != Kind::Rewind {
            std::thread::sleep(Duration::from_secs_f64(delay / 2000.0));
            for _ in 0..rng.usize(0..3) {
                let rel = tracked_name(rng.usize(0..TRACKED_FILES));
                if touched.insert(rel.clone()) {
                    versions.write(&repo, &rel, seed);
                }
            }
            std::thread::sleep(Duration::from_secs_f64(delay / 2000.0));
        } else {
            std::thread::sleep(Duration::from_secs_f64(delay / 1000.0));
        }
        let killed = match child.try_wait().unwrap() {
            None => {
                child.kill().unwrap(); // SIGKILL
                true
            }
            Some(_) => false,
        };
        let out = child.wait_with_output().unwrap();
        let took = started.elapsed().as_secs_f64() * 1000.0;
        if killed {
            entry.1 += 1;
            figures.kills += 1;
        } else {
            entry.2 += 1;
            assert!(
                out.status.success(),
                "iteration {iteration} (seed {seed}): cairn {args:?} failed unkilled: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let learnt = typical.get_mut(&kind).unwrap();
            *learnt = 0.7 * *learnt + 0.3 * took;
        }
        drop(model);

        let context = format!("iteration {iteration}, seed {seed}, {kind:?} killed={killed}");
        check_repository(&repo, &mut figures, &context);
        // The next command works, and records and leaves no temporary file.
        let (_, _, commit) = repo.checkpoint(&["-m", &format!("after {iteration}")]);
        figures.recoveries += 1;
        let names = repo.git(&["ls-tree", "-r", "-z", "--name-only", &commit]);
        let temp = names.split('\0').find(|name| is_temp_name(name));
        assert!(temp.is_none(), "{context}: a temporary file was recorded: {temp:?}");
        assert_no_temp_files_in(&repo.root, &context);
        check_versions(&repo, &versions, &context);
    }
    assert!(
        figures.kills >= kills_wanted,
        "only {} of {kills_wanted} kills landed in {iteration} commands",
        figures.kills
    );

    check_repository(&repo, &mut figures, "the end");
    assert_eq!(repo.user_state(), user_state, "HEAD, index, branches, tags and stash unchanged");
    assert_eq!(repo.read("ignored/cache.bin"), "ignored\n");
    figures.versions_written = versions.all.len();
    print_figures(&figures, seed);
    // A ref lock a kill left is known abandoned once it is 2 seconds old; a command after
    // that sweeps up every one.
    std::thread::sleep(Duration::from_millis(2100));
    repo.checkpoint(&["-m", "the end"]);
    assert_clean_git_dir(&repo.root.join(".git"));
}

/// A scripted model for one `cairn run`: three tool-call turns writing and editing files
/// of the agent's own, taking a note and remembering a fact, then an answer.
fn start_model(runtime: &tokio::runtime::Runtime, iteration: usize) -> MockModel {
    let file = |k: usize| format!("agent/i{iteration}-{k}.txt");
    let script = vec![
        Reply::chat_tool_calls(&[
            ("c1", "write_file", json!({"path": file(1), "content": "one\n"})),
            ("c2", "write_file", json!({"path": file(2), "content": "two\n"})),
        ]),
        Reply::chat_tool_calls(&[(
            "c3",
            "edit_file",
            json!({"path": file(1), "old_string": "one", "new_string": "one\nmore"}),
        )]),
        Reply::chat_tool_calls(&[
            ("c4", "note", json!({"text": format!("iteration {iteration}")})),
            (
                "c5",
                "remember",
                json!({"fact": format!("Crash iteration {iteration} wrote agent files")}),
            ),
        ]),
        Reply::chat_text("Wrote the files."),
    ];
    runtime.block_on(support::mock_model::start(script))
}

/// The step number of the current session's tip (0 if there is none).
fn current_steps(repo: &TestRepo) -> u64 {
    let current = repo.root.join(".git/cairn/worktrees/main/current-session");
    let Ok(id) = std::fs::read_to_string(current) else { return 0 };
    let out = Command::new("git")
        .args([
            "log",
            "-1",
            "--format=%(trailers:key=Cairn-Step,valueonly,separator=)",
            &TestRepo::session_ref(id.trim()),
            "--",
        ])
        .current_dir(&repo.root)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// fsck, and every session and archive ref names a complete step.
fn check_repository(repo: &TestRepo, figures: &mut Figures, context: &str) {
    repo.assert_fsck_clean();
    let refs = repo.git(&[
        "for-each-ref",
        "--format=%(objectname) %(refname)",
        "refs/cairn/sessions",
        "refs/cairn/archive",
    ]);
    let refs: Vec<(&str, &str)> = refs.lines().filter_map(|l| l.split_once(' ')).collect();
    assert!(!refs.is_empty(), "{context}: no session refs");
    let mut queries = String::new();
    for (id, _) in &refs {
        for file in [".cairn/state/step.json", ".cairn/session.toml"] {
            queries.push_str(&format!("{id}:{file}\n"));
        }
    }
    let found = git_with_input(repo, &["cat-file", "--batch-check"], &queries);
    for line in found.lines() {
        assert!(!line.contains("missing"), "{context}: {line}");
    }
    let mut trailers_of = String::new();
    for (id, name) in &refs {
        let step = repo.git(&[
            "log",
            "-1",
            "--format=%(trailers:key=Cairn-Step,valueonly,separator=)",
            id,
        ]);
        assert!(step.trim().parse::<u64>().is_ok(), "{context}: {name} → {id} has no Cairn-Step");
        trailers_of.push_str(&step);
        figures.refs_verified += 1;
    }
    // Every step of every session, all the way down, is a step too.
    let all = repo.git(&[
        "log",
        "--format=%H %(trailers:key=Cairn-Step,valueonly,separator=)",
        "--glob=refs/cairn/sessions",
        "--glob=refs/cairn/archive",
        "--not",
        "HEAD",
    ]);
    for line in all.lines() {
        let (id, step) = line.split_once(' ').unwrap_or((line, ""));
        assert!(step.trim().parse::<u64>().is_ok(), "{context}: {id} is not a step");
    }
    figures.steps_verified = all.lines().count();
    figures.refs_at_end = refs.len();
    check_memory(repo, figures, context);
}

/// Project memory, when a killed run got as far as writing some, is whole: every fact
/// file has its front matter and the index has one line per fact.
fn check_memory(repo: &TestRepo, figures: &mut Figures, context: &str) {
    if repo.git(&["for-each-ref", "refs/cairn/memory"]).trim().is_empty() {
        return;
    }
    // A rewind that reverted the only fact leaves no facts/ directory at all.
    let files = repo.git(&["ls-tree", "-r", "--name-only", "refs/cairn/memory"]);
    let facts: String = files
        .lines()
        .filter_map(|path| path.strip_prefix("facts/"))
        .map(|name| format!("{name}\n"))
        .collect();
    let index = repo.git(&["show", "refs/cairn/memory:MEMORY.md"]);
    assert_eq!(
        index.lines().count(),
        facts.lines().count(),
        "{context}: index\n{index}\nfacts\n{facts}"
    );
    for fact in facts.lines() {
        let content = repo.git(&["show", &format!("refs/cairn/memory:facts/{fact}")]);
        assert!(content.starts_with("+++\n"), "{context}: {fact}: {content}");
    }
    figures.facts_at_end = facts.lines().count();
}

/// Every version the test wrote is a blob of a recorded step.
fn check_versions(repo: &TestRepo, versions: &Versions, context: &str) {
    let objects = repo.git(&[
        "rev-list",
        "--objects",
        "--glob=refs/cairn/sessions",
        "--glob=refs/cairn/archive",
    ]);
    let reachable: HashSet<gix::ObjectId> = objects
        .lines()
        .filter_map(|line| line.split(' ').next())
        .filter_map(|hex| gix::ObjectId::from_hex(hex.as_bytes()).ok())
        .collect();
    for (path, id) in &versions.all {
        assert!(reachable.contains(id), "{context}: a version of {path} ({id}) was lost");
    }
}

fn git_with_input(repo: &TestRepo, args: &[&str], input: &str) -> String {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(&repo.root)
        .env("HOME", &repo.home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Names cairn gives its temporary files in the workspace.
fn is_temp_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with(".cairn-") || (name.starts_with('.') && name.contains(".cairn-"))
}

fn assert_no_temp_files_in(root: &Path, context: &str) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == ".git" && dir == root {
                continue;
            }
            assert!(!is_temp_name(&name), "{context}: {} left behind", entry.path().display());
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
}

/// No temporary pack, object, lock or cache file is left in `.git`.
fn assert_clean_git_dir(git_dir: &Path) {
    let mut stray = Vec::new();
    let mut stack = vec![git_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
                continue;
            }
            let temporary = name.starts_with(".tmp")
                || name.starts_with("tmp_")
                || name.ends_with(".lock")
                || name.ends_with(".keep")
                || name.contains(".cairn-");
            let pack_dir = dir.ends_with("objects/pack");
            let unpaired = pack_dir && {
                let other = if name.ends_with(".pack") {
                    path.with_extension("idx")
                } else {
                    path.with_extension("pack")
                };
                !other.exists()
            };
            if temporary || unpaired {
                stray.push(path.display().to_string());
            }
        }
    }
    assert!(stray.is_empty(), "left in .git: {stray:#?}");
}

fn print_figures(figures: &Figures, seed: u64) {
    println!("crash: seed {seed}: {} kills, all survived", figures.kills);
    for (kind, (started, killed, finished)) in &figures.commands {
        println!("crash:   {kind:?}: {started} started, {killed} killed, {finished} finished");
    }
    println!(
        "crash:   {} recovery checkpoints; {} steps and {} refs verified at the end ({} ref checks in all); {} file versions written, none lost; {} facts whole",
        figures.recoveries,
        figures.steps_verified,
        figures.refs_at_end,
        figures.refs_verified,
        figures.versions_written,
        figures.facts_at_end,
    );
}
