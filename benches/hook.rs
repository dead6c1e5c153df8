//! The hook case: one `cairn checkpoint` process after one file changed, as every hook call
//! of another agent is, side by side with the git-CLI warm method, at monorepo sizes.
//!
//! ```sh
//! cargo bench --locked --bench hook                          # 200,000 files
//! CAIRN_BENCH_FILES=100000,200000 cargo bench --locked --bench hook
//! ```
//!
//! Beside them, the floor of any scan: one `lstat` per file, in parallel, in-process.
//! Then rewind of 10 files: each run edits 10 files, records them with `cairn checkpoint`
//! and times `cairn rewind @~1`, which checks for unsaved edits and puts the 10 files
//! back, with Watchman and with the scan (git has no equivalent here).
//!
//! Three ways, alternating each run: `cairn checkpoint` with `[snapshot] fsmonitor =
//! "watchman"` (a private Watchman server of the benchmark's own; skipped where `watchman`
//! is not installed), `cairn checkpoint` with the incremental scan, and the git-CLI warm
//! method (a private index kept between runs, `git add -A`, `git write-tree`,
//! `git commit-tree`). Figures are whole-process wall time and peak RSS, medians over
//! `CAIRN_BENCH_RUNS` runs (default 15), each after one file was edited. Peak RSS is read by
//! a small wrapper process, as in `benches/agent.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmarks fail loudly")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Wall time and peak RSS (KiB) of one process, read by a wrapper process
/// ([`measured_command`]), since a direct child would report this benchmark's own peak.
fn measure(command: &mut Command) -> (Duration, i64) {
    let report = report_path();
    let status = command.stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "{command:?} failed");
    let (kib, wall) = read_measure_report(&report).unwrap();
    (wall, kib as i64)
}

/// The report file [`measure`] reads.
fn report_path() -> PathBuf {
    std::env::temp_dir().join(format!("cairn-hook-bench-{}", std::process::id()))
}

struct Mode {
    name: &'static str,
    home: PathBuf,
    samples: Samples,
    peak_kib: i64,
    rewinds: Samples,
}

impl Mode {
    fn new(name: &'static str, base: &Path, config: &str) -> Mode {
        let home = base.join(name.replace(' ', "-"));
        std::fs::create_dir_all(home.join(".config/cairn")).unwrap();
        std::fs::write(home.join(".config/cairn/config.toml"), config).unwrap();
        Mode { name, home, samples: Samples::default(), peak_kib: 0, rewinds: Samples::default() }
    }

    fn checkpoint(&self, repo: &Path, watchman: Option<&Watchman>) -> Command {
        self.cairn(repo, watchman, &["checkpoint", "-m", "hook"])
    }

    fn cairn(&self, repo: &Path, watchman: Option<&Watchman>, args: &[&str]) -> Command {
        let mut command = measured_command(Path::new(env!("CARGO_BIN_EXE_cairn")), &report_path());
        command.args(args).current_dir(repo).env("HOME", &self.home);
        command.env_remove("XDG_CONFIG_HOME");
        if let Some(watchman) = watchman {
            command.env("WATCHMAN_SOCK", &watchman.socket);
        }
        command
    }
}

fn bench(files: usize, runs: usize) -> BoxResult<()> {
    let dir = tempfile::tempdir()?;
    let repo = dir.path().join("repo");
    eprintln!("building {files} files in {}", repo.display());
    let layout = build_workspace(&repo, files)?;
    git_init(&repo)?;
    git(&repo, &["add", "-A"])?;
    git(&repo, &["commit", "-qm", "base"])?;
    let watchman = Watchman::start(dir.path());
    let mut modes =
        vec![Mode::new("cairn, scan", dir.path(), "[snapshot]\nfsmonitor = \"none\"\n")];
    if watchman.is_some() {
        modes.push(Mode::new(
            "cairn, watchman",
            dir.path(),
            "[snapshot]\nfsmonitor = \"watchman\"\n",
        ));
    } else {
        eprintln!("watchman is not installed: its mode is skipped");
    }
    let index = dir.path().join("git-cli.index");
    let git_method = |repo: &Path| -> BoxResult<()> {
        run(git_cmd(repo, Some(&index)).args(["add", "-A"]))?;
        let tree = run(git_cmd(repo, Some(&index)).args(["write-tree"]))?;
        run(git_cmd(repo, Some(&index)).args(["commit-tree", &tree, "-m", "hook"]))?;
        Ok(())
    };
    // Warm: each mode's cache or Watchman state, and git's private index.
    for mode in &modes {
        for _ in 0..2 {
            measure(&mut mode.checkpoint(&repo, watchman.as_ref()));
        }
    }
    git_method(&repo)?;
    let mut git_samples = Samples::default();
    for round in 0..runs {
        let path = layout.pick(round, 1).remove(0);
        edit_file(&repo.join(&path), "hook", round as u64)?;
        let order: Vec<usize> = if round % 2 == 0 {
            (0..modes.len()).collect()
        } else {
            (0..modes.len()).rev().collect()
        };
        for index in order {
            let mode = &mut modes[index];
            let (elapsed, peak) = measure(&mut mode.checkpoint(&repo, watchman.as_ref()));
            mode.samples.push(elapsed);
            mode.peak_kib = mode.peak_kib.max(peak);
        }
        git_samples.time(|| git_method(&repo))?;
    }
    // The floor of any scan: one `lstat` per file, in parallel, in this process.
    let root = repo.as_path();
    let paths: Vec<PathBuf> = layout
        .leaves
        .iter()
        .flat_map(|(dir, count)| (0..*count).map(move |n| root.join(format!("{dir}/f{n:02}.txt"))))
        .collect();
    let mut floor = Samples::default();
    for _ in 0..runs {
        floor.time(|| {
            use rayon::prelude::*;
            paths.par_iter().for_each(|path| {
                let _ = std::fs::symlink_metadata(path);
            })
        });
    }
    let rewind_runs = runs.min(7);
    for round in 0..rewind_runs {
        for mode in &mut modes {
            for path in layout.pick(1000 + round, 10) {
                edit_file(&repo.join(&path), "rewind", round as u64)?;
            }
            measure(&mut mode.checkpoint(&repo, watchman.as_ref()));
            let (elapsed, _) =
                measure(&mut mode.cairn(&repo, watchman.as_ref(), &["rewind", "@~1"]));
            mode.rewinds.push(elapsed);
        }
    }
    println!("\n{files} files, {runs} runs, one file changed before each");
    let git_median = git_samples.median().as_secs_f64();
    println!("  {:<18} {}", "git-CLI method", git_samples.summary());
    println!(
        "  {:<18} {}  ratio to git {:.2}  (one lstat per tracked file, parallel, in-process)",
        "lstat floor",
        floor.summary(),
        floor.median().as_secs_f64() / git_median
    );
    for mode in &modes {
        println!(
            "  {:<18} {}  ratio to git {:.2}  peak RSS {:.1} MiB",
            mode.name,
            mode.samples.summary(),
            mode.samples.median().as_secs_f64() / git_median,
            mode.peak_kib as f64 / 1024.0
        );
    }
    println!("rewind of 10 files (`cairn rewind @~1`, whole process)");
    for mode in &modes {
        println!("  {:<18} {}", mode.name, mode.rewinds.summary());
    }
    Ok(())
}

fn main() -> BoxResult<()> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|arg| arg == MEASURE_ARG) {
        std::process::exit(measure_child(&args[2..]));
    }
    let sizes: Vec<usize> = match std::env::var("CAIRN_BENCH_FILES") {
        Ok(list) => list.split(',').map(|n| n.trim().parse()).collect::<Result<_, _>>()?,
        Err(_) => vec![200_000],
    };
    let runs = match std::env::var("CAIRN_BENCH_RUNS") {
        Ok(n) => n.parse()?,
        Err(_) => 15,
    };
    for files in sizes {
        bench(files, runs)?;
    }
    Ok(())
}
