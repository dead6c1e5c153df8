//! What the benchmarks share: timing samples, the synthetic workspace, and git helpers.
//! Each benchmark binary uses its own part of this module.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rayon::prelude::*;

pub type BoxResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub const FILES_PER_DIR: usize = 20;

#[derive(Debug, Clone, Default)]
pub struct Samples(pub Vec<Duration>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.push(start.elapsed());
        out
    }

    pub fn sorted(&self) -> Vec<Duration> {
        let mut v = self.0.clone();
        v.sort();
        v
    }

    pub fn median(&self) -> Duration {
        let v = self.sorted();
        match v.len() {
            0 => Duration::ZERO,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2,
        }
    }

    pub fn summary(&self) -> String {
        let v = self.sorted();
        match v.len() {
            0 => "-".into(),
            1 => format!("{} (1 run)", fmt_d(v[0])),
            n => format!("{} [{}–{}] n={n}", fmt_d(self.median()), fmt_d(v[0]), fmt_d(v[n - 1])),
        }
    }
}

pub fn fmt_d(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

pub fn fmt_bytes(n: u64) -> String {
    if n >= 10 * 1024 * 1024 {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    } else if n >= 10 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

// ---------------------------------------------------------------------------------------
// Synthetic workspace

pub const WORDS: &[&str] = &[
    "let",
    "mut",
    "fn",
    "return",
    "self",
    "value",
    "count",
    "index",
    "buffer",
    "error",
    "result",
    "config",
    "path",
    "item",
    "node",
    "tree",
    "commit",
    "state",
    "cache",
    "entry",
    "match",
    "Some",
    "None",
    "Ok",
    "Err",
    "if",
    "else",
    "for",
    "in",
    "while",
    "loop",
    "break",
    "struct",
    "impl",
    "pub",
    "use",
    "crate",
    "super",
    "where",
    "Vec",
    "String",
    "usize",
    "u64",
    "bool",
    "true",
    "false",
    "map",
    "filter",
    "collect",
    "iter",
    "into",
    "from",
    "as_ref",
    "unwrap",
    "clone",
    "len",
    "push",
    "insert",
    "remove",
    "get",
    "set",
    "new",
    "default",
    "parse",
    "request",
    "response",
    "handler",
    "session",
    "snapshot",
    "workspace",
    "directory",
    "file",
];

pub fn gen_line(rng: &mut fastrand::Rng, out: &mut String) {
    for _ in 0..rng.usize(0..3) {
        out.push_str("    ");
    }
    let n = rng.usize(3..11);
    for k in 0..n {
        if k > 0 {
            out.push(' ');
        }
        out.push_str(WORDS[rng.usize(..WORDS.len())]);
        if rng.u8(..8) == 0 {
            out.push_str(&format!("_{}", rng.u32(..1000)));
        }
    }
    out.push_str(";\n");
}

pub fn gen_file(seed: u64, header: &str) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let size = rng.usize(1024..=4096);
    let mut out = String::with_capacity(size + 128);
    out.push_str("// ");
    out.push_str(header);
    out.push('\n');
    while out.len() < size {
        gen_line(&mut rng, &mut out);
    }
    out.into_bytes()
}

/// Replaces one line (not the first) with a new one carrying `tag`, in place (same inode,
/// as an editor that rewrites the file does). Returns the new content.
pub fn edit_file(abs: &Path, tag: &str, seed: u64) -> BoxResult<Vec<u8>> {
    let text = std::fs::read_to_string(abs)?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let idx = 1 + rng.usize(..lines.len().saturating_sub(1).max(1));
    let mut line = format!("// edited: {tag} ");
    gen_line(&mut rng, &mut line);
    let line = line.trim_end().to_owned();
    if idx < lines.len() {
        lines[idx] = line;
    } else {
        lines.push(line);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    std::fs::write(abs, &out)?;
    Ok(out.into_bytes())
}

pub struct Layout {
    /// Leaf directories (relative) and how many files each holds.
    pub leaves: Vec<(String, usize)>,
    pub files: usize,
    pub dirs: usize,
    pub ignored_files: usize,
}

impl Layout {
    pub fn file(&self, leaf: usize, n: usize) -> String {
        let (dir, count) = &self.leaves[leaf % self.leaves.len()];
        format!("{dir}/f{:02}.txt", n % count)
    }

    /// `count` files in `count` different directories spread over the tree, chosen anew
    /// for each `round`.
    pub fn pick(&self, round: usize, count: usize) -> Vec<String> {
        let leaves = self.leaves.len();
        (0..count)
            .map(|j| {
                let leaf = (j * leaves / count + round * 7919 + 13) % leaves;
                self.file(leaf, round * 3 + j)
            })
            .collect()
    }
}

/// Directory fan-out: `files / 20` leaf directories under `ceil(sqrt)` top directories.
pub fn plan(files: usize, prefix: &str) -> Vec<(String, usize)> {
    let leaves = files.div_ceil(FILES_PER_DIR).max(1);
    let tops = (leaves as f64).sqrt().ceil() as usize;
    let per_top = leaves.div_ceil(tops);
    (0..leaves)
        .map(|i| {
            let count = (files - i * FILES_PER_DIR).min(FILES_PER_DIR);
            (format!("{prefix}m{:03}/d{:03}", i / per_top, i % per_top), count)
        })
        .collect()
}

pub fn write_tree_of_files(root: &Path, leaves: &[(String, usize)], seed: u64) -> BoxResult<()> {
    leaves.par_iter().enumerate().try_for_each(|(i, (dir, count))| -> Result<(), String> {
        let abs = root.join(dir);
        std::fs::create_dir_all(&abs).map_err(|e| format!("{}: {e}", abs.display()))?;
        for n in 0..*count {
            let rel = format!("{dir}/f{n:02}.txt");
            let content = gen_file(seed ^ ((i * FILES_PER_DIR + n) as u64 * 0x9e37_79b9), &rel);
            std::fs::write(root.join(&rel), content).map_err(|e| format!("{rel}: {e}"))?;
        }
        Ok(())
    })?;
    Ok(())
}

pub fn build_workspace(root: &Path, files: usize) -> BoxResult<Layout> {
    std::fs::create_dir_all(root)?;
    let leaves = plan(files, "src/");
    write_tree_of_files(root, &leaves, 1)?;
    let ignored_files = files / 10;
    let ignored = plan(ignored_files, "target/debug/");
    write_tree_of_files(root, &ignored, 2)?;
    std::fs::write(root.join(".gitignore"), "target/\n*.log\n")?;
    std::fs::write(root.join("README.md"), "# synthetic benchmark repository\n")?;
    let dirs: HashSet<&str> =
        leaves.iter().flat_map(|(d, _)| [d.as_str(), d.rsplit_once('/').unwrap().0]).collect();
    Ok(Layout { dirs: dirs.len() + 1, leaves, files: files + 2, ignored_files })
}

// ---------------------------------------------------------------------------------------
// git

pub fn git_cmd(dir: &Path, index: Option<&Path>) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com");
    if let Some(index) = index {
        cmd.env("GIT_INDEX_FILE", index);
    }
    cmd
}

pub fn run(cmd: &mut Command) -> BoxResult<String> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(
            format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim()).into()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub fn git(dir: &Path, args: &[&str]) -> BoxResult<String> {
    run(git_cmd(dir, None).args(args))
}

/// Runs git with `input` on stdin and returns its stdout.
pub fn pipe_git(dir: &Path, args: &[&str], input: String) -> BoxResult<Vec<u8>> {
    let mut child = git_cmd(dir, None)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output()?;
    writer.join().map_err(|_| "stdin writer panicked")??;
    if !out.status.success() {
        return Err(format!("git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(out.stdout)
}

pub fn git_init(dir: &Path) -> BoxResult<()> {
    git(dir, &["init", "-q", "-b", "main"])?;
    // No background gc or maintenance while measuring.
    git(dir, &["config", "gc.auto", "0"])?;
    git(dir, &["config", "maintenance.auto", "false"])?;
    git(dir, &["config", "user.name", "bench"])?;
    git(dir, &["config", "user.email", "bench@example.com"])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Watchman

/// A Watchman server of the benchmark's own (socket, state and log under `dir`), stopped
/// when dropped; point cairn at it with `WATCHMAN_SOCK`.
pub struct Watchman {
    child: std::process::Child,
    pub socket: std::path::PathBuf,
}

impl Watchman {
    /// `None` where `watchman` is not installed or does not start.
    pub fn start(dir: &Path) -> Option<Watchman> {
        Command::new("watchman").arg("--version").output().ok()?;
        let socket = dir.join("watchman.sock");
        let child = Command::new("watchman")
            .arg(format!("--sockname={}", socket.display()))
            .arg(format!("--logfile={}", dir.join("watchman.log").display()))
            .arg(format!("--pidfile={}", dir.join("watchman.pid").display()))
            .arg(format!("--statefile={}", dir.join("watchman.state").display()))
            .args(["--no-save-state", "--foreground"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let started = Instant::now();
        while !socket.exists() && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Watchman { child, socket })
    }
}

impl Drop for Watchman {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Peak memory of a child process

/// The first argument that makes this binary the peak-memory wrapper ([`measure_child`]).
pub const MEASURE_ARG: &str = "--measure-child";

/// A command that runs `program` through this binary as [`measure_child`], which writes
/// the program's peak RSS and wall time to `report`. Arguments, environment, directory and
/// standard streams set on it reach `program` unchanged.
///
/// Why not `wait4` on `program` directly: Linux carries the spawning process's peak RSS
/// over into the child's `ru_maxrss` (the memory a `fork` or `vfork` child shares counts
/// at its `exec`), so a child of this benchmark, which holds a whole workspace's stat cache
/// after its baseline scans, would report at least the benchmark's own peak. The wrapper
/// is a fresh, small process, so what it reads is the program's.
pub fn measured_command(program: &Path, report: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the benchmark's own path"));
    command.arg(MEASURE_ARG).arg(report).arg("--").arg(program);
    command
}

/// The wrapper's side of [`measured_command`]: `args` are `REPORT -- PROGRAM ARGS…`. Runs
/// the program, writes `<ru_maxrss in KiB> <wall nanoseconds>` to REPORT, and exits as the
/// program did.
pub fn measure_child(args: &[std::ffi::OsString]) -> i32 {
    let [report, separator, program, rest @ ..] = args else {
        eprintln!("{MEASURE_ARG} REPORT -- PROGRAM [ARGS…]");
        return 2;
    };
    if separator != "--" {
        eprintln!("{MEASURE_ARG} REPORT -- PROGRAM [ARGS…]");
        return 2;
    }
    let started = Instant::now();
    let child = match Command::new(program).args(rest).spawn() {
        Ok(child) => child,
        Err(err) => {
            eprintln!("{}: {err}", program.to_string_lossy());
            return 127;
        }
    };
    let Ok(pid) = libc::pid_t::try_from(child.id()) else { return 125 };
    let mut status = 0;
    // SAFETY: `usage` is a plain C struct that wait4 fills in; `pid` is our own child, not
    // yet reaped (std's `Child` is never waited on).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if reaped != pid {
        eprintln!("wait4: {}", std::io::Error::last_os_error());
        return 125;
    }
    if std::fs::write(report, format!("{} {}", usage.ru_maxrss, wall.as_nanos())).is_err() {
        return 125;
    }
    if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) }
}

/// Reads what [`measure_child`] wrote to `report`: peak RSS in KiB, and wall time.
pub fn read_measure_report(report: &Path) -> BoxResult<(u64, Duration)> {
    let text = std::fs::read_to_string(report)?;
    let (kib, nanos) = text.split_once(' ').ok_or("a malformed peak-memory report")?;
    Ok((kib.trim().parse()?, Duration::from_nanos(nanos.trim().parse()?)))
}
