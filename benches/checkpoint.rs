//! Checkpoint-store benchmark: cairn's snapshots, steps and rewinds against the git-CLI
//! method other agents use, side by side in the same run, on synthetic repositories.
//!
//! ```sh
//! cargo bench --locked --bench checkpoint               # 10,000 and 100,000 files (~5 min)
//! cargo bench --locked --bench checkpoint -- --quick    # 10,000 files, fewer runs (~30 s)
//! CAIRN_BENCH_FILES=50000 cargo bench --locked --bench checkpoint   # any sizes, comma-separated
//! ```
//!
//! Other knobs: `CAIRN_BENCH_RUNS=<n>` sets the number of warm runs (cold runs are fewer),
//! `CAIRN_BENCH_UNTRACKED=0` skips the first snapshots of untracked files (every object
//! new: slow where creating files is slow), `CAIRN_BENCH_KEEP=1` keeps the temporary
//! repositories. They live under `$TMPDIR` (default `/tmp`) and are deleted at the end.
//!
//! The git-CLI method, as OpenCode and similar agents run it: a private index file
//! (`GIT_INDEX_FILE`, kept between snapshots, so only its first use is cold), then
//! `git add -A`, `git write-tree`, `git commit-tree`; restoring is `git read-tree <tree>`
//! plus `git checkout-index -a -f` with the same index. Every figure is wall-clock time of
//! the whole operation, process start-up included for git. The OS page cache is warm for
//! everything (the files were just written): "cold" means no cairn stat cache and an empty
//! git index, not a cold disk.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmarks fail loudly")]

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn::checkpoint::{
    Changes, ScanCounts, StepKind, StepRecord, Store, StoreOptions, apply_changes, diff_trees,
};
use rayon::prelude::*;

mod common;

use common::*;

const CHANGED: usize = 10;
/// One-file steps in the storage measurement: a 200-step session, as the storage bound is stated for.
const STORAGE_STEPS: usize = 200;

fn main() {
    if let Err(err) = bench_main() {
        eprintln!("benchmark failed: {err}");
        std::process::exit(1);
    }
}

struct Config {
    sizes: Vec<usize>,
    quick: bool,
    warm_runs: usize,
    keep: bool,
    untracked: bool,
}

impl Config {
    fn from_env() -> BoxResult<Config> {
        let quick = std::env::args().skip(1).any(|a| a == "--quick")
            || std::env::var("CAIRN_BENCH_QUICK").is_ok_and(|v| v == "1");
        let sizes = match std::env::var("CAIRN_BENCH_FILES") {
            Ok(list) if !list.trim().is_empty() => list
                .split(',')
                .map(|s| s.trim().replace('_', "").parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| format!("CAIRN_BENCH_FILES: {err}"))?,
            _ if quick => vec![10_000],
            _ => vec![10_000, 100_000],
        };
        let warm_runs = match std::env::var("CAIRN_BENCH_RUNS") {
            Ok(n) => n.parse().map_err(|err| format!("CAIRN_BENCH_RUNS: {err}"))?,
            Err(_) if quick => 5,
            Err(_) => 9,
        };
        let keep = std::env::var("CAIRN_BENCH_KEEP").is_ok_and(|v| v == "1");
        let untracked = !std::env::var("CAIRN_BENCH_UNTRACKED").is_ok_and(|v| v == "0");
        Ok(Config { sizes, quick, warm_runs: warm_runs.max(1), keep, untracked })
    }

    /// Cold runs cost seconds each on large repositories, so there are fewer of them.
    fn cold_runs(&self, files: usize) -> usize {
        match (self.quick, files >= 50_000) {
            (true, _) => 3,
            (false, true) => 3,
            (false, false) => 5,
        }
    }

    /// Cold runs with every object new write one file per object, which is slow on some
    /// disks; one run per side on large repositories.
    fn untracked_runs(&self, files: usize) -> usize {
        if files >= 50_000 { 1 } else { self.cold_runs(files) }
    }

    /// `git checkout-index -a -f` rewrites every file, so its runs are expensive too (minutes
    /// at 100,000 files where the disk is slow): one run on large repositories.
    fn git_rewind_runs(&self, files: usize) -> usize {
        if files >= 50_000 { 1 } else { self.warm_runs.min(5) }
    }
}

// ---------------------------------------------------------------------------------------
// Samples and the report

fn fmt_counts(c: &ScanCounts) -> String {
    format!(
        "dirs_listed={} dirs_reused={} files_hashed={} files_reused={} trees_written={}",
        c.dirs_listed, c.dirs_reused, c.files_hashed, c.files_reused, c.trees_written
    )
}

/// A target from the issue, judged on the 100,000-file repository only.
#[derive(Clone, Copy)]
enum Target {
    /// cairn's median at most this fraction of git's median.
    RatioAtMost(f64),
    /// cairn's median under this.
    Under(Duration),
}

impl Target {
    fn describe(self) -> String {
        match self {
            Target::RatioAtMost(1.0) => "≤ git".into(),
            Target::RatioAtMost(r) => format!("≤ {r}× git"),
            Target::Under(d) => format!("< {}", fmt_d(d)),
        }
    }
}

struct Row {
    scenario: String,
    cairn: Samples,
    git: Option<Samples>,
    target: Option<Target>,
    notes: Vec<String>,
}

impl Row {
    fn new(scenario: impl Into<String>, cairn: Samples, git: Option<Samples>) -> Row {
        Row { scenario: scenario.into(), cairn, git, target: None, notes: Vec::new() }
    }

    fn target(mut self, target: Target) -> Row {
        self.target = Some(target);
        self
    }

    fn note(mut self, note: impl Into<String>) -> Row {
        self.notes.push(note.into());
        self
    }

    fn ratio(&self) -> Option<f64> {
        if self.cairn.0.is_empty() {
            return None;
        }
        let git = self.git.as_ref()?.median().as_secs_f64();
        (git > 0.0).then(|| self.cairn.median().as_secs_f64() / git)
    }

    fn verdict(&self, files: usize) -> String {
        let Some(target) = self.target else { return String::new() };
        let pass = match target {
            Target::RatioAtMost(r) => self.ratio().is_some_and(|x| x <= r),
            Target::Under(d) => self.cairn.median() < d,
        };
        let verdict = if pass { "PASS" } else { "MISS" };
        if files == 100_000 {
            format!("{} {verdict}", target.describe())
        } else {
            format!("{} ({} here; judged at 100k)", target.describe(), verdict.to_lowercase())
        }
    }
}

struct StorageReport {
    steps: usize,
    changed_raw: u64,
    changed_zlib: u64,
    written: WrittenObjects,
    packed_growth: u64,
    packed_by_kind: Vec<(String, usize, u64)>,
    thin_growth: u64,
    refs_growth: u64,
    step_times: Samples,
}

/// The object files a run of steps added, as cairn wrote them.
struct WrittenObjects {
    files: i64,
    bytes: u64,
    disk_bytes: u64,
}

struct SizeReport {
    files: usize,
    header: String,
    setup: Vec<String>,
    rows: Vec<Row>,
    storage: Option<StorageReport>,
    findings: Vec<String>,
}

fn print_report(reports: &[SizeReport]) {
    println!();
    println!(
        "cairn checkpoint benchmark: medians [min–max] over n runs; ratio = cairn/git medians"
    );
    println!(
        "The OS page cache is warm throughout (files were just written): \"cold\" means no cairn \
         stat cache / an empty git temp index, not a cold disk."
    );
    for report in reports {
        println!();
        println!("== {} ==", report.header);
        for line in &report.setup {
            println!("   {line}");
        }
        let w0 = report.rows.iter().map(|r| r.scenario.chars().count()).max().unwrap_or(10);
        let cells: Vec<(String, String, String, String)> = report
            .rows
            .iter()
            .map(|r| {
                (
                    r.cairn.summary(),
                    r.git.as_ref().map_or("-".into(), Samples::summary),
                    r.ratio().map_or("-".into(), |x| format!("{x:.2}")),
                    r.verdict(report.files),
                )
            })
            .collect();
        let w1 = cells.iter().map(|c| c.0.chars().count()).max().unwrap_or(5).max(5);
        let w2 = cells.iter().map(|c| c.1.chars().count()).max().unwrap_or(7).max(7);
        println!(
            "{:<w0$} | {:<w1$} | {:<w2$} | {:>9} | target",
            "scenario", "cairn", "git CLI", "cairn/git"
        );
        println!("{}", "-".repeat(w0 + w1 + w2 + 40));
        for (row, (c, g, ratio, verdict)) in report.rows.iter().zip(cells) {
            println!("{:<w0$} | {c:<w1$} | {g:<w2$} | {ratio:>9} | {verdict}", row.scenario);
            for note in &row.notes {
                println!("{:<w0$}     {note}", "");
            }
        }
        if let Some(s) = &report.storage {
            println!();
            println!(
                "Storage: {} steps (record_step with Changes::Paths), each editing one line of one file",
                s.steps
            );
            println!(
                "   changed content: {} raw, {} zlib level 6 (sum over the {} new file versions, \
                 compressed one by one: the least any store that keeps whole blobs needs)",
                fmt_bytes(s.changed_raw),
                fmt_bytes(s.changed_zlib),
                s.steps
            );
            let judge = |growth: u64| {
                let ratio = growth as f64 / s.changed_zlib.max(1) as f64;
                let verdict = if ratio <= 2.0 { "PASS" } else { "MISS" };
                let verdict = if report.files == 100_000 {
                    verdict.to_string()
                } else {
                    format!("{} here; judged at 100k", verdict.to_lowercase())
                };
                format!("{ratio:.2}× compressed change (target ≤ 2×: {verdict})")
            };
            println!(
                "   .git objects as cairn wrote them (a pack per step, small packs merged by 16): \
                 {:+} files, {} = {}",
                s.written.files,
                fmt_bytes(s.written.bytes),
                judge(s.written.bytes)
            );
            println!(
                "       on disk in whole filesystem blocks: {}",
                fmt_bytes(s.written.disk_bytes)
            );
            println!(
                "   .git objects, packed on their own (`git pack-objects --revs` tip ^base: .pack + .idx, \
                 as `git repack` adds them): {} = {}",
                fmt_bytes(s.packed_growth),
                judge(s.packed_growth)
            );
            for (kind, count, bytes) in &s.packed_by_kind {
                println!("       {kind:<14} {count:>5} objects {:>12}", fmt_bytes(*bytes));
            }
            let objects: usize = s.packed_by_kind.iter().map(|(_, n, _)| n).sum();
            // A v2 .idx: header and fan-out table, then id, CRC and offset per object, then
            // two checksums.
            let idx = (8 + 256 * 4 + objects * 28 + 40) as u64;
            println!(
                "   .git objects, thin pack (deltas may use the objects already there, as a full \
                 `git gc` would store them) + its .idx ({} for {objects} objects): {} = {}",
                fmt_bytes(idx),
                fmt_bytes(s.thin_growth + idx),
                judge(s.thin_growth + idx)
            );
            println!(
                "   refs and reflogs under refs/cairn (loose ref files + logs): {}",
                fmt_bytes(s.refs_growth)
            );
            println!("   time per one-file step: {}", s.step_times.summary());
        }
        if !report.findings.is_empty() {
            println!();
            println!("Observations:");
            for f in &report.findings {
                println!("   - {f}");
            }
        }
    }
    println!();
}

/// The git-CLI snapshot method: add everything to a private index, write its tree, commit.
struct GitMethod {
    dir: PathBuf,
    index: PathBuf,
    parent: Option<String>,
}

impl GitMethod {
    fn snapshot(&mut self) -> BoxResult<String> {
        run(git_cmd(&self.dir, Some(&self.index)).args(["add", "-A"]))?;
        self.commit()
    }

    fn snapshot_paths(&mut self, paths: &[String]) -> BoxResult<String> {
        run(git_cmd(&self.dir, Some(&self.index)).args(["add", "--"]).args(paths))?;
        self.commit()
    }

    fn commit(&mut self) -> BoxResult<String> {
        let tree = run(git_cmd(&self.dir, Some(&self.index)).arg("write-tree"))?;
        let mut cmd = git_cmd(&self.dir, Some(&self.index));
        cmd.args(["commit-tree", &tree, "-m", "snapshot"]);
        if let Some(parent) = &self.parent {
            cmd.args(["-p", parent]);
        }
        self.parent = Some(run(&mut cmd)?);
        Ok(tree)
    }

    fn restore(&self, tree: &str) -> BoxResult<()> {
        run(git_cmd(&self.dir, Some(&self.index)).args(["read-tree", tree]))?;
        run(git_cmd(&self.dir, Some(&self.index)).args(["checkout-index", "-a", "-f"]))?;
        Ok(())
    }

    fn forget_index(&mut self) {
        let _ = std::fs::remove_file(&self.index);
        self.parent = None;
    }
}

/// Runs `measure` for each side `runs` times, alternating which side goes first so that
/// neither always meets the caches the other just warmed.
fn alternate(runs: usize, mut measure: impl FnMut(bool) -> BoxResult<()>) -> BoxResult<()> {
    for run in 0..runs {
        let cairn_first = run % 2 == 0;
        for cairn_side in [cairn_first, !cairn_first] {
            measure(cairn_side)?;
        }
    }
    Ok(())
}

/// A file under `objects/`: loose objects and pack files alike.
struct ObjectFile {
    path: PathBuf,
    bytes: u64,
    /// What it occupies on disk (whole filesystem blocks).
    disk_bytes: u64,
}

/// Every loose object file (`objects/xx/…`) and pack file (`objects/pack/…`).
fn object_files(git_dir: &Path) -> BoxResult<Vec<ObjectFile>> {
    use std::os::unix::fs::MetadataExt as _;
    let objects = git_dir.join("objects");
    let mut dirs = vec![objects.join("pack")];
    for dir in std::fs::read_dir(&objects)? {
        let dir = dir?;
        let name = dir.file_name();
        let name = name.to_string_lossy();
        if name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            dirs.push(dir.path());
        }
    }
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for file in entries {
            let file = file?;
            let meta = file.metadata()?;
            if meta.is_file() {
                out.push(ObjectFile {
                    path: file.path(),
                    bytes: meta.len(),
                    disk_bytes: meta.blocks() * 512,
                });
            }
        }
    }
    Ok(out)
}

/// Removes every object file not in `keep`, so the next snapshot finds all objects new.
fn wipe_objects_except(git_dir: &Path, keep: &HashSet<PathBuf>) -> BoxResult<()> {
    for file in object_files(git_dir)? {
        if !keep.contains(&file.path) {
            std::fs::remove_file(&file.path)?;
        }
    }
    Ok(())
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn zlib_size(data: &[u8]) -> BoxResult<u64> {
    let mut w = gix::zlib::stream::deflate::Write::new(Vec::new(), gix::zlib::Compression::DEFAULT);
    w.write_all(data)?;
    w.flush()?;
    Ok(w.into_inner().len() as u64)
}

// ---------------------------------------------------------------------------------------
// The benchmark for one repository size

struct Bench<'a> {
    config: &'a Config,
    root: PathBuf,
    layout: Layout,
    git: GitMethod,
    rows: Vec<Row>,
    findings: Vec<String>,
    setup: Vec<String>,
    round: usize,
}

impl Bench<'_> {
    fn stat_cache(&self) -> PathBuf {
        self.root.join(".git/cairn/worktrees/main/stat-cache")
    }

    fn edit(&mut self, paths: &[String]) -> BoxResult<Vec<Vec<u8>>> {
        self.round += 1;
        let tag = format!("round {}", self.round);
        paths
            .iter()
            .enumerate()
            .map(|(j, p)| edit_file(&self.root.join(p), &tag, (self.round * 1000 + j) as u64))
            .collect()
    }

    fn next_paths(&mut self, count: usize) -> Vec<String> {
        self.layout.pick(self.round + 1, count)
    }

    fn open(&self) -> BoxResult<Store> {
        Ok(Store::discover(&self.root, StoreOptions::default())?)
    }

    /// First snapshots with every file untracked (a repository whose files were never
    /// added), so both sides must read, hash and store every file. Loose objects are wiped
    /// before each run so every run writes them anew.
    fn untracked_phase(&mut self) -> BoxResult<()> {
        let git_dir = self.root.join(".git");
        git_init(&self.root)?;
        git(&self.root, &["add", ".gitignore", "README.md"])?;
        git(&self.root, &["commit", "-q", "-m", "initial (only .gitignore and README)"])?;
        git(&self.root, &["repack", "-adq"])?;
        git(&self.root, &["prune-packed"])?;
        let initial: HashSet<PathBuf> =
            object_files(&git_dir)?.into_iter().map(|file| file.path).collect();

        let runs = self.config.untracked_runs(self.layout.files);
        let (mut cairn, mut gitm) = (Samples::default(), Samples::default());
        let mut counts = ScanCounts::default();
        alternate(runs, |cairn_side| {
            wipe_objects_except(&git_dir, &initial)?;
            let _ = std::fs::remove_file(self.stat_cache());
            self.git.forget_index();
            if cairn_side {
                counts = cairn.time(|| self.open().and_then(|s| Ok(s.snapshot()?)))?.counts;
            } else {
                gitm.time(|| self.git.snapshot())?;
            }
            Ok(())
        })?;
        self.rows.push(
            Row::new("first snapshot, cold, files untracked (all objects new)", cairn, Some(gitm))
                .note(format!("cairn (discover + snapshot): {}", fmt_counts(&counts))),
        );

        // Warm, nothing changed, on the same untracked repository.
        let store = self.open()?;
        store.snapshot()?;
        self.git.snapshot()?;
        let (mut cairn, mut gitm) = (Samples::default(), Samples::default());
        for _ in 0..self.config.warm_runs.min(5) {
            counts = cairn.time(|| store.snapshot())?.counts;
            gitm.time(|| self.git.snapshot())?;
        }
        self.rows.push(
            Row::new("snapshot, nothing changed, files untracked", cairn, Some(gitm))
                .note(format!("cairn: {}", fmt_counts(&counts))),
        );
        drop(store);
        // The tracked phase goes on in this repository: its objects already exist, so
        // `git add -A` below only hashes (on this kind of machine creating 100,000 object
        // files costs about a minute).
        let _ = std::fs::remove_file(self.stat_cache());
        self.git.forget_index();
        Ok(())
    }

    fn tracked_setup(&mut self) -> BoxResult<()> {
        let start = Instant::now();
        if !self.root.join(".git").exists() {
            git_init(&self.root)?;
        }
        git(&self.root, &["add", "-A"])?;
        git(&self.root, &["commit", "-q", "-m", "initial"])?;
        self.setup.push(format!(
            "tracked repository: git add -A + git commit took {} (setup, not measured)",
            fmt_d(start.elapsed())
        ));
        Ok(())
    }

    fn cold(&mut self) -> BoxResult<()> {
        let runs = self.config.cold_runs(self.layout.files);
        let (mut cairn, mut gitm) = (Samples::default(), Samples::default());
        let mut counts = ScanCounts::default();
        alternate(runs, |cairn_side| {
            if cairn_side {
                let _ = std::fs::remove_file(self.stat_cache());
                counts = cairn.time(|| self.open().and_then(|s| Ok(s.snapshot()?)))?.counts;
            } else {
                self.git.forget_index();
                gitm.time(|| self.git.snapshot())?;
            }
            Ok(())
        })?;
        self.rows.push(
            Row::new("first snapshot, cold, files tracked (committed)", cairn, Some(gitm))
                .target(Target::RatioAtMost(1.0))
                .note(format!("cairn (discover + snapshot): {}", fmt_counts(&counts)))
                .note(
                    "cairn takes blob ids from the user's index when stat matches; the git \
                     method starts from an empty private index and re-hashes every file",
                ),
        );
        Ok(())
    }

    fn warm(&mut self, store: &Store) -> BoxResult<()> {
        store.snapshot()?;
        self.git.snapshot()?;
        let (mut cairn, mut gitm) = (Samples::default(), Samples::default());
        let mut counts = ScanCounts::default();
        alternate(self.config.warm_runs, |cairn_side| {
            if cairn_side {
                counts = cairn.time(|| store.snapshot())?.counts;
            } else {
                gitm.time(|| self.git.snapshot())?;
            }
            Ok(())
        })?;
        let total = counts.files_hashed + counts.files_reused;
        if counts.files_hashed > 0 || counts.dirs_listed > 0 || counts.trees_written > 0 {
            self.findings
                .push(format!("nothing-changed snapshot still did work: {}", fmt_counts(&counts)));
        }
        let cache_size = std::fs::metadata(self.stat_cache()).map(|m| m.len()).unwrap_or(0);
        self.rows.push(
            Row::new("snapshot, nothing changed (warm)", cairn, Some(gitm))
                .target(Target::RatioAtMost(0.5))
                .note(format!("cairn: {}", fmt_counts(&counts)))
                .note(format!(
                    "stat cache: {} for {total} files, read and rewritten by every scan",
                    fmt_bytes(cache_size)
                )),
        );

        // Floors, to tell scan overhead from what any stat-based scan must pay here.
        let mut paths: Vec<PathBuf> = Vec::with_capacity(self.layout.files + 6000);
        for (dir, count) in &self.layout.leaves {
            paths.push(self.root.join(dir));
            paths.push(self.root.join(dir).join(".gitignore"));
            for n in 0..*count {
                paths.push(self.root.join(format!("{dir}/f{n:02}.txt")));
            }
        }
        let (mut lstat, mut cache_io) = (Samples::default(), Samples::default());
        for _ in 0..self.config.warm_runs {
            lstat.time(|| {
                paths.par_iter().for_each(|p| {
                    let _ = std::fs::symlink_metadata(p);
                })
            });
            cache_io.time(|| -> BoxResult<()> {
                let bytes = std::fs::read(self.stat_cache())?;
                let dir = self.stat_cache().parent().ok_or("no parent")?.to_owned();
                let mut file = tempfile::NamedTempFile::new_in(&dir)?;
                file.write_all(&bytes)?;
                file.persist(dir.join("stat-cache.copy")).map_err(|e| e.error)?;
                Ok(())
            })?;
        }
        let _ = std::fs::remove_file(self.stat_cache().with_file_name("stat-cache.copy"));
        self.rows.push(Row::new(
            format!(
                "   floor: lstat each leaf dir, its .gitignore and its files ({} threads)",
                rayon::current_num_threads()
            ),
            lstat,
            None,
        ));
        self.rows.push(Row::new(
            "   floor: read the stat cache file + write a copy (temp file, rename)",
            cache_io,
            None,
        ));
        Ok(())
    }

    fn changed(&mut self, store: &Store) -> BoxResult<()> {
        let (mut cairn, mut gitm) = (Samples::default(), Samples::default());
        let mut counts = ScanCounts::default();
        for run in 0..self.config.warm_runs {
            let paths = self.next_paths(CHANGED);
            self.edit(&paths)?;
            if run % 2 == 0 {
                counts = cairn.time(|| store.snapshot())?.counts;
                gitm.time(|| self.git.snapshot())?;
            } else {
                gitm.time(|| self.git.snapshot())?;
                counts = cairn.time(|| store.snapshot())?.counts;
            }
            if counts.files_hashed != CHANGED {
                self.findings.push(format!(
                    "10-files-changed scan hashed {} files (expected {CHANGED}): {}",
                    counts.files_hashed,
                    fmt_counts(&counts)
                ));
            }
        }
        self.rows.push(
            Row::new("snapshot, 10 files changed (full scan)", cairn, Some(gitm))
                .target(Target::RatioAtMost(0.5))
                .note(format!("cairn: {}", fmt_counts(&counts))),
        );
        Ok(())
    }

    /// Named paths (the fast path), plus full-scan steps for comparison.
    fn named(&mut self, store: &Store) -> BoxResult<cairn::checkpoint::Session> {
        let mut session = store.start_session("bench", None, None)?;
        store
            .record_step(&mut session, StepRecord::new(StepKind::Manual, "base", Changes::Scan))?;
        self.git.snapshot()?;

        // A whole step with a full scan (snapshot + commit + ref update).
        let (mut scan_steps, mut gitm) = (Samples::default(), Samples::default());
        for _ in 0..self.config.warm_runs {
            let paths = self.next_paths(CHANGED);
            self.edit(&paths)?;
            let record = StepRecord::new(StepKind::Manual, "scan", Changes::Scan);
            scan_steps.time(|| store.record_step(&mut session, record))?;
            gitm.time(|| self.git.snapshot())?;
        }
        self.rows.push(Row::new(
            "record_step, 10 files changed, Changes::Scan (whole step)",
            scan_steps,
            Some(gitm),
        ));

        let (mut step, mut gitm) = (Samples::default(), Samples::default());
        let runs = self.config.warm_runs + 2;
        for run in 0..runs {
            let paths = self.next_paths(CHANGED);
            self.edit(&paths)?;
            let as_paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
            let record = StepRecord::new(StepKind::Tool, "edit", Changes::Paths(as_paths));
            if run % 2 == 0 {
                step.time(|| store.record_step(&mut session, record))?;
                gitm.time(|| self.git.snapshot())?;
            } else {
                gitm.time(|| self.git.snapshot())?;
                step.time(|| store.record_step(&mut session, record))?;
            }
        }
        // The snapshot part alone: the fast path against the tip's tree, measured in runs
        // of its own (so neither it nor the step finds the other's objects already written);
        // an unmeasured step then moves the tip on.
        let (mut raw, mut again, mut writes) =
            (Samples::default(), Samples::default(), Samples::default());
        // A plain gix handle writes loose objects, one file each, as git does by default.
        let loose = gix::open(store.root())?;
        for _ in 0..runs {
            let paths = self.next_paths(CHANGED);
            self.edit(&paths)?;
            let as_paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
            let base = store.step_tree(session.tip.expect("a tip"))?;
            raw.time(|| store.snapshot_paths(base, &as_paths))?
                .ok_or("snapshot_paths fell back to a full scan")?;
            // The same again: every object now exists, so nothing is written.
            again.time(|| store.snapshot_paths(base, &as_paths))?;
            let record = StepRecord::new(StepKind::Tool, "edit", Changes::Paths(as_paths));
            store.record_step(&mut session, record)?;
            self.round += 1;
            let round = self.round;
            writes.time(|| -> BoxResult<()> {
                for n in 0..32 {
                    loose.write_blob(format!("object {n} of round {round}\n"))?;
                }
                Ok(())
            })?;
        }
        self.git.snapshot()?;
        // The fast path must give what a full scan gives.
        let full = store.snapshot()?;
        let tip_tree = store.step_tree(session.tip.expect("a tip"))?;
        let diff = diff_trees(store.repo(), Some(full.tree), Some(tip_tree))?;
        if !diff.is_empty() {
            return Err(
                format!("fast-path tree differs from a full scan in {} paths", diff.len()).into()
            );
        }
        self.rows.push(
            Row::new("record_step, 10 paths named, Changes::Paths (whole step)", step, Some(gitm))
                .target(Target::Under(Duration::from_millis(10)))
                .note("git side: the warm full method (git has no cheaper whole-workspace path)")
                .note("verified: the tip's tree equals a full scan of the workspace"),
        );
        self.rows.push(
            Row::new("   of which Store::snapshot_paths (workspace tree, one pack)", raw, None)
                .target(Target::Under(Duration::from_millis(10))),
        );
        self.rows.push(Row::new(
            "   snapshot_paths again, same paths (all objects exist: nothing written)",
            again,
            None,
        ));
        self.rows.push(Row::new(
            "   for scale: 32 small objects written loose (one file each, git's default)",
            writes,
            None,
        ));

        // For reference: git told the paths too.
        let mut gitn = Samples::default();
        for _ in 0..self.config.warm_runs {
            let paths = self.next_paths(CHANGED);
            self.edit(&paths)?;
            gitn.time(|| self.git.snapshot_paths(&paths))?;
        }
        self.rows.push(Row::new(
            "git add -- <10 paths> + write-tree + commit-tree (git only)",
            Samples::default(),
            Some(gitn),
        ));
        // The workspace moved on without cairn: bring the session up to date.
        store
            .record_step(&mut session, StepRecord::new(StepKind::Manual, "sync", Changes::Scan))?;
        Ok(session)
    }

    fn storage(
        &mut self,
        store: &Store,
        session: &mut cairn::checkpoint::Session,
    ) -> BoxResult<StorageReport> {
        let git_dir = self.root.join(".git");
        let before = object_files(&git_dir)?;
        let refs_before =
            dir_bytes(&git_dir.join("refs/cairn")) + dir_bytes(&git_dir.join("logs/refs/cairn"));
        let base = session.tip.expect("a tip");
        let (mut changed_raw, mut changed_zlib) = (0, 0);
        let mut step_times = Samples::default();
        for _ in 0..STORAGE_STEPS {
            let path = self.next_paths(1).remove(0);
            let content = self.edit(std::slice::from_ref(&path))?.remove(0);
            changed_raw += content.len() as u64;
            changed_zlib += zlib_size(&content)?;
            let record =
                StepRecord::new(StepKind::Tool, "edit", Changes::Paths(vec![PathBuf::from(path)]));
            step_times.time(|| store.record_step(session, record))?;
        }
        let tip = session.tip.expect("a tip");
        // Net growth: merging small packs replaces files that existed before.
        let after = object_files(&git_dir)?;
        let total = |files: &[ObjectFile]| -> (u64, u64) {
            files.iter().fold((0, 0), |(b, d), f| (b + f.bytes, d + f.disk_bytes))
        };
        let (bytes_before, disk_before) = total(&before);
        let (bytes_after, disk_after) = total(&after);
        let written = WrittenObjects {
            files: after.len() as i64 - before.len() as i64,
            bytes: bytes_after.saturating_sub(bytes_before),
            disk_bytes: disk_after.saturating_sub(disk_before),
        };

        // Packed: the new objects as a pack of their own (what `git repack` without `-a`
        // adds), broken down by type, and as a thin pack whose deltas may use the objects
        // that were there before (close to the growth after a full `git gc`).
        let scratch = tempfile::Builder::new().prefix("pack-").tempdir_in(self.root.join(".."))?;
        let prefix = scratch.path().join("steps");
        let hash = pipe_git(
            &self.root,
            &["pack-objects", "--revs", "-q", prefix.to_str().ok_or("non-UTF-8 temp path")?],
            format!("{tip}\n^{base}\n"),
        )?;
        let hash = String::from_utf8_lossy(&hash).trim().to_owned();
        let pack = scratch.path().join(format!("steps-{hash}.pack"));
        let idx = scratch.path().join(format!("steps-{hash}.idx"));
        let packed_growth = std::fs::metadata(&pack)?.len() + std::fs::metadata(&idx)?.len();
        let verify = git(&self.root, &["verify-pack", "-v", idx.to_str().unwrap_or_default()])?;
        let mut packed_by_kind: Vec<(String, usize, u64)> = Vec::new();
        for line in verify.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 5 || fields[0].len() != 40 {
                continue;
            }
            let Ok(in_pack) = fields[3].parse::<u64>() else { continue };
            let kind = if fields.len() > 5 {
                format!("{} (delta)", fields[1])
            } else {
                fields[1].to_owned()
            };
            match packed_by_kind.iter_mut().find(|(k, _, _)| *k == kind) {
                Some(entry) => {
                    entry.1 += 1;
                    entry.2 += in_pack;
                }
                None => packed_by_kind.push((kind, 1, in_pack)),
            }
        }
        packed_by_kind.sort();
        let thin = pipe_git(
            &self.root,
            &["pack-objects", "--revs", "--thin", "--stdout", "-q"],
            format!("{tip}\n^{base}\n"),
        )?;
        let refs_after =
            dir_bytes(&git_dir.join("refs/cairn")) + dir_bytes(&git_dir.join("logs/refs/cairn"));
        Ok(StorageReport {
            steps: STORAGE_STEPS,
            changed_raw,
            changed_zlib,
            written,
            packed_growth,
            packed_by_kind,
            thin_growth: thin.len() as u64,
            refs_growth: refs_after.saturating_sub(refs_before),
            step_times,
        })
    }

    fn rewind(&mut self, store: &Store, session_id: &str) -> BoxResult<()> {
        let (mut whole, mut restore_only) = (Samples::default(), Samples::default());
        let mut written = Vec::new();
        for _ in 0..self.config.warm_runs {
            let mut session = store.open_session(session_id)?;
            let target = store.resolve(&format!("{session_id}@{}", session.steps))?;
            let paths = self.next_paths(CHANGED);
            self.edit(&paths)?;
            let as_paths = paths.iter().map(PathBuf::from).collect();
            store.record_step(
                &mut session,
                StepRecord::new(StepKind::Tool, "edit", Changes::Paths(as_paths)),
            )?;
            let outcome = whole.time(|| store.rewind(&target))?;
            if outcome.saved_edits.is_some() {
                self.findings.push("rewind recorded a user-edits step on a clean workspace".into());
            }
            written.push(outcome.applied.written + outcome.applied.deleted);
        }
        if written.iter().any(|&n| n != CHANGED) {
            self.findings.push(format!("rewinds touched {written:?} paths (expected {CHANGED})"));
        }
        // The restore part alone: tree diff + writing the differing files, back and forth
        // between the last two steps (workspace currently at `a`).
        let session = store.open_session(session_id)?;
        let a = store.step_tree(session.tip.expect("a tip"))?;
        let paths = self.next_paths(CHANGED);
        self.edit(&paths)?;
        let b = store.snapshot()?.tree;
        let mut current = b;
        for run in 0..self.config.warm_runs {
            let to = if run % 2 == 0 { a } else { b };
            let applied = restore_only.time(|| -> BoxResult<_> {
                let changes = diff_trees(store.repo(), Some(current), Some(to))?;
                Ok(apply_changes(store.repo(), store.root(), &changes)?)
            })?;
            if applied.written != CHANGED {
                self.findings.push(format!("restore wrote {} files", applied.written));
            }
            current = to;
        }
        if current != a {
            let changes = diff_trees(store.repo(), Some(current), Some(a))?;
            apply_changes(store.repo(), store.root(), &changes)?;
        }
        let check = store.snapshot()?.tree;
        if !diff_trees(store.repo(), Some(check), Some(a))?.is_empty() {
            return Err("workspace differs from the target after restoring".into());
        }

        // git: read-tree + checkout-index of the previous snapshot.
        let mut gitm = Samples::default();
        for _ in 0..self.config.git_rewind_runs(self.layout.files) {
            let before = self.git.snapshot()?;
            let paths = self.next_paths(CHANGED);
            self.edit(&paths)?;
            self.git.snapshot()?;
            gitm.time(|| self.git.restore(&before))?;
        }
        let after_git = store.snapshot()?;
        self.rows.push(
            Row::new("rewind across a step that differs in 10 files", whole, Some(gitm))
                .target(Target::Under(Duration::from_millis(50)))
                .note(
                    "cairn: Store::rewind (open session, full scan, diff, archive ref, move ref, \
                     restore)",
                )
                .note("git: git read-tree <tree> + git checkout-index -a -f")
                .note(format!(
                    "after git's restores the next cairn scan found {} files with changed stat \
                     (checkout-index rewrites files whose index stat read-tree dropped)",
                    after_git.counts.files_hashed
                )),
        );
        self.rows.push(
            Row::new("   of which diff_trees + apply_changes", restore_only, None)
                .target(Target::Under(Duration::from_millis(50))),
        );
        Ok(())
    }
}

fn bench_size(config: &Config, base: &Path, files: usize) -> BoxResult<SizeReport> {
    let root = base.join(format!("repo-{files}"));
    eprintln!("[{files}] writing the workspace…");
    let start = Instant::now();
    let layout = build_workspace(&root, files)?;
    let mut setup = vec![format!(
        "workspace: {} files in {} directories (src/mNNN/dNNN/, ≤{FILES_PER_DIR} files each, 1–4 KiB \
         of text) + {} ignored files under target/; written in {} (setup)",
        layout.files,
        layout.dirs,
        layout.ignored_files,
        fmt_d(start.elapsed())
    )];
    setup.push(format!(
        "changes touch 10 files in 10 directories spread over the tree, one line each, in place; \
         warm runs: {}, cold runs: {}",
        config.warm_runs,
        config.cold_runs(layout.files)
    ));
    let git = GitMethod {
        dir: root.clone(),
        index: base.join(format!("git-index-{files}")),
        parent: None,
    };
    let mut bench = Bench {
        config,
        root,
        layout,
        git,
        rows: Vec::new(),
        findings: Vec::new(),
        setup,
        round: 0,
    };
    if config.untracked {
        eprintln!("[{files}] untracked repository: cold snapshots…");
        bench.untracked_phase()?;
    }
    eprintln!("[{files}] tracked repository: git add + commit…");
    bench.tracked_setup()?;
    eprintln!("[{files}] cold snapshots…");
    bench.cold()?;
    let store = bench.open()?;
    eprintln!("[{files}] warm snapshots…");
    bench.warm(&store)?;
    eprintln!("[{files}] 10 files changed…");
    bench.changed(&store)?;
    eprintln!("[{files}] named paths…");
    let mut session = bench.named(&store)?;
    eprintln!("[{files}] storage…");
    let storage = bench.storage(&store, &mut session)?;
    eprintln!("[{files}] rewind…");
    bench.rewind(&store, &session.info.id)?;
    let header = format!("{files} files");
    Ok(SizeReport {
        files,
        header,
        setup: bench.setup,
        rows: bench.rows,
        storage: Some(storage),
        findings: bench.findings,
    })
}

fn bench_main() -> BoxResult<()> {
    let config = Config::from_env()?;
    let dir = tempfile::Builder::new().prefix("cairn-bench-").tempdir()?;
    eprintln!("cairn checkpoint benchmark in {}", dir.path().display());
    let started = Instant::now();
    let mut reports = Vec::new();
    for &files in &config.sizes {
        let report = bench_size(&config, dir.path(), files);
        if !config.keep {
            // Free the disk space before the next size.
            let _ = std::fs::remove_dir_all(dir.path().join(format!("repo-{files}")));
        }
        reports.push(report?);
    }
    print_report(&reports);
    println!("total time: {}", fmt_d(started.elapsed()));
    if config.keep {
        let kept = dir.keep();
        println!("repositories kept in {}", kept.display());
    }
    Ok(())
}
