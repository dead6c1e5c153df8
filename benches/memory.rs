//! Memory benchmark: `memory_search` over 10,000 project facts, warm (search cache current)
//! and cold (no cache), side by side with `git grep` over the same facts in the same run;
//! and the size of the memory injected at session start against its token cap.
//!
//! ```sh
//! cargo bench --locked --bench memory
//! CAIRN_BENCH_FACTS=50000 cargo bench --locked --bench memory
//! ```
//!
//! Targets (issue: memory tiers): warm median < 10 ms, cold < 300 ms. The facts are written
//! with `git fast-import` into a pack, as after `git gc`; `git grep` reads the same tree
//! (process start-up included, as an agent shelling out would pay it).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmarks fail loudly")]

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use cairn::agent::prompt;
use cairn::checkpoint::{Store, StoreOptions};
use cairn::memory::{self, Memory};

mod common;

use common::*;

const QUERIES: [&str; 4] = [
    "which port does the dev database use",
    "how are migrations run",
    "feature flags for crate 4711",
    "cache mount of the dev container",
];

fn main() {
    if let Err(err) = bench_main() {
        eprintln!("memory bench failed: {err}");
        std::process::exit(1);
    }
}

fn bench_main() -> BoxResult<()> {
    let facts: usize =
        std::env::var("CAIRN_BENCH_FACTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::Builder::new().prefix("cairn-bench-memory-").tempdir()?;
    let root = dir.path();
    git_init(root)?;
    std::fs::write(root.join("README.md"), "bench\n")?;
    git(root, &["add", "README.md"])?;
    git(root, &["commit", "-qm", "init"])?;
    write_facts(root, facts)?;
    println!("memory_search over {facts} facts");

    let store = Store::discover(root, StoreOptions::default())?;
    let cache = store.private_dir().join(memory::SEARCH_CACHE);
    let mut cold = Samples::default();
    let mut warm = Samples::default();
    let mut baseline = Samples::default();
    let mut first_hits = Vec::new();
    for round in 0..5 {
        for query in QUERIES {
            let _ = std::fs::remove_file(&cache);
            let hits = cold.time(|| -> BoxResult<_> {
                let memory = Memory::open(store.writing_repo(), store.redacts_secrets())?;
                Ok(memory.search(query, 8, None, &[])?)
            })?;
            if round == 0 {
                first_hits.push((query, hits.first().map(|h| h.file.clone()).unwrap_or_default()));
            }
            for _ in 0..5 {
                warm.time(|| -> BoxResult<_> {
                    let memory = Memory::open(store.writing_repo(), store.redacts_secrets())?;
                    Ok(memory.search(query, 8, None, &[])?)
                })?;
            }
            let words: Vec<&str> = query.split(' ').filter(|w| w.len() > 3).collect();
            let mut args = vec!["grep", "-i", "-c"];
            for word in &words {
                args.push("-e");
                args.push(word);
            }
            args.push("refs/cairn/memory");
            // Exit status 1 only means no match.
            baseline.time(|| git_cmd(root, None).args(&args).output())?;
        }
    }
    println!("  cold (no cache)       {}", cold.summary());
    println!("  warm (cache current)  {}", warm.summary());
    println!("  git grep baseline     {}", baseline.summary());
    let ratio = |a: &Samples| a.median().as_secs_f64() / baseline.median().as_secs_f64();
    println!("  warm / git grep = {:.2}x, cold / git grep = {:.2}x", ratio(&warm), ratio(&cold));
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    println!(
        "  target warm < 10 ms: {}; cold < 300 ms: {}",
        verdict(warm.median().as_millis() < 10),
        verdict(cold.median().as_millis() < 300)
    );
    for (query, file) in first_hits {
        println!("  {query:?} -> {file}");
    }

    let memory = Memory::open(store.writing_repo(), store.redacts_secrets())?;
    for cap in [500, cairn::config::DEFAULT_INJECT_TOKENS, 8000] {
        let started = Instant::now();
        let text = memory.guidance(cap)?.map(|g| prompt::memory_block(&g)).unwrap_or_default();
        // The cap is on the facts; the block's fixed framing comes on top of it.
        let tokens = memory::estimate_tokens(&text);
        let framing = memory::estimate_tokens(prompt::MEMORY_PREAMBLE) + 8;
        println!(
            "  injected at session start, cap {cap} tokens (+{framing} of framing): {tokens} tokens ({} lines) in {} — {}",
            text.lines().count(),
            fmt_d(started.elapsed()),
            verdict(tokens <= cap + framing)
        );
    }
    Ok(())
}

/// `count` facts in one commit on refs/cairn/memory, written by `git fast-import` and
/// packed; one of them answers the first query.
fn write_facts(root: &Path, count: usize) -> BoxResult<()> {
    let mut stream = String::from(
        "commit refs/cairn/memory\ncommitter Bench <b@example.com> 1700000000 +0000\ndata 5\nbench\n",
    );
    let mut index = String::new();
    for n in 0..count {
        let text = match n {
            0 => "The dev database listens on port 5433.".to_string(),
            _ => match n % 4 {
                0 => format!("Service {n} exposes its metrics on port {}.", 9000 + n),
                1 => format!("The database migration {n} runs with `make migrate-{n}`."),
                2 => format!("Crate {n} builds with the `feature-{n}` feature enabled."),
                _ => format!("The dev container {n} mounts the cache at /cache/{n}."),
            },
        };
        let content = format!(
            "+++\ncreated = \"2026-11-01T00:00:00Z\"\nsource = \"user\"\nlast_confirmed = \"2026-11-01T00:00:00Z\"\n+++\n{text}\n"
        );
        write!(stream, "M 100644 inline facts/fact-{n}.md\ndata {}\n{content}\n", content.len())?;
        if n >= count.saturating_sub(memory::store::INDEX_MAX_LINES) {
            writeln!(index, "- [fact-{n}](facts/fact-{n}.md) {text}")?;
        }
    }
    write!(stream, "M 100644 inline MEMORY.md\ndata {}\n{index}\n", index.len())?;
    pipe_git(root, &["fast-import", "--quiet"], stream)?;
    git(root, &["repack", "-adq"])?;
    Ok(())
}
