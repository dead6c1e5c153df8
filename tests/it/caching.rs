//! Prompt caching and cost through the real path: `cairn run` against the mock server, the
//! request bodies checked where they arrive, and the usage read back from `step.json`,
//! `cairn log` and `cairn sessions`.

use std::process::Output;

use serde_json::{Value, json};

use crate::support::TestRepo;
use crate::support::mock_model::{self, AnthropicUsage, Reply, fixture_reply};

/// Runs `cairn` with `args` while the mock server keeps serving.
async fn cairn(repo: &TestRepo, args: &[&str]) -> Output {
    let mut command = repo.command_in(&repo.root, args);
    tokio::task::spawn_blocking(move || command.output().expect("cairn runs")).await.unwrap()
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON event"))
        .collect()
}

fn session_of(out: &Output) -> String {
    let events = events(out);
    let started = events.iter().find(|e| e["type"] == "session_started").expect("session_started");
    started["session"].as_str().unwrap().to_string()
}

/// Points `mock/scripted` at `base_url`, a provider of `kind` with `extra` lines.
fn use_provider(repo: &TestRepo, kind: &str, base_url: &str, extra: &str) {
    let config = format!(
        "model = \"mock/scripted\"\n[memory]\nsummarize = false\n\
         [provider.mock]\nkind = \"{kind}\"\nbase_url = \"{base_url}\"\n{extra}"
    );
    std::fs::write(repo.home.join("cairn-config.toml"), config).unwrap();
}

/// A request's input as Anthropic's prompt cache reads it: the tools, then the system
/// blocks, then each message's content blocks, one entry per block, and the indices of the
/// blocks that carry a breakpoint. Each block is serialized without its `cache_control`:
/// the cache matches content, not markers (moving the rolling marker to the newest message
/// is how the API is meant to be used), and a block that carried the older marker in one
/// request and none in the next is the same prefix.
#[derive(Debug, Default)]
struct CacheView {
    blocks: Vec<String>,
    breakpoints: Vec<usize>,
}

impl CacheView {
    fn of(body: &Value) -> CacheView {
        let mut view = CacheView::default();
        for tool in body["tools"].as_array().into_iter().flatten() {
            view.push("tool", tool);
        }
        match &body["system"] {
            Value::Array(blocks) => blocks.iter().for_each(|block| view.push("system", block)),
            Value::String(text) => view.push("system", &json!({"type": "text", "text": text})),
            _ => {}
        }
        for (index, message) in body["messages"].as_array().unwrap().iter().enumerate() {
            let turn = format!("message {index} {}", message["role"].as_str().unwrap());
            for block in message["content"].as_array().unwrap() {
                view.push(&turn, block);
            }
        }
        view
    }

    fn push(&mut self, part: &str, block: &Value) {
        let mut block = block.clone();
        if block.as_object_mut().unwrap().remove("cache_control").is_some() {
            self.breakpoints.push(self.blocks.len());
        }
        self.blocks.push(format!("{part}: {block}"));
    }

    /// The bytes of blocks `..end`.
    fn bytes_before(&self, end: usize) -> String {
        self.blocks[..end].concat()
    }

    fn total_bytes(&self) -> usize {
        self.blocks.iter().map(String::len).sum()
    }

    /// Where the newest breakpoint is: the end of what this request writes to the cache.
    fn newest_breakpoint(&self) -> usize {
        *self.breakpoints.last().expect("a breakpoint")
    }
}

/// The share of `next`'s input bytes that the API bills as cache reads: the prefix up to
/// and including `previous`'s newest breakpoint, if `next` repeats it byte for byte (else
/// nothing), and `next` marks a breakpoint right there, so the entry is found without
/// relying on the API's lookback of about 20 blocks.
fn cached_share(previous: &CacheView, next: &CacheView) -> f64 {
    let written = previous.newest_breakpoint() + 1;
    let repeated = next.blocks.len() >= written
        && next.bytes_before(written) == previous.bytes_before(written)
        && next.breakpoints.contains(&(written - 1));
    if !repeated {
        return 0.0;
    }
    let cached: usize = next.blocks[..written].iter().map(String::len).sum();
    cached as f64 / next.total_bytes() as f64
}

/// Every step below reports this usage: 100 plain input tokens, 9000 read from the cache,
/// 900 written to it, 50 output.
const STEP_USAGE: AnthropicUsage =
    AnthropicUsage { input: 100, cache_read: 9000, cache_write: 900, output: 50 };
/// Its cost at the price table below: 100 × 3 + 9000 × 0.3 + 900 × 3.75 + 50 × 15 dollars per
/// million tokens.
const STEP_COST: f64 = 0.007_125;
const PRICE: &str = "price = { input = 3, cached_input = 0.3, cache_write = 3.75, output = 15 }\n";

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-12)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_breakpoints_roll_and_each_step_repeats_the_cached_prefix() {
    let repo = TestRepo::new();
    let model = mock_model::start([
        Reply::anthropic_tool_calls(
            &[("t1", "read_file", json!({"path": "README.md"}))],
            STEP_USAGE,
        ),
        // Notes change from here on; they must not move the cached prefix.
        Reply::anthropic_tool_calls(
            &[("t2", "note", json!({"text": "README says hello"}))],
            STEP_USAGE,
        ),
        Reply::anthropic_tool_calls(
            &[("t3", "write_file", json!({"path": "a.txt", "content": "a\n"}))],
            STEP_USAGE,
        ),
        Reply::anthropic_tool_calls(
            &[
                ("t4", "read_file", json!({"path": "a.txt"})),
                ("t5", "glob", json!({"pattern": "*.txt"})),
            ],
            STEP_USAGE,
        ),
        Reply::anthropic_text("Done.", STEP_USAGE),
    ])
    .await;
    use_provider(&repo, "anthropic", &model.base_url(), PRICE);

    let out = cairn(&repo, &["run", "write a.txt", "--approval", "auto", "--json"]).await;
    assert_ok(&out);
    let requests: Vec<Value> = model.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(requests.len(), 5);

    for (number, body) in requests.iter().enumerate() {
        let markers = body.to_string().matches("\"cache_control\"").count();
        assert_eq!(markers, if number == 0 { 3 } else { 4 }, "request {number}: {body}");
        let tools = body["tools"].as_array().unwrap();
        let (last, others) = tools.split_last().unwrap();
        assert_eq!(last["cache_control"], json!({"type": "ephemeral"}));
        assert!(others.iter().all(|tool| tool.get("cache_control").is_none()));
        assert_eq!(body["system"][0]["cache_control"], json!({"type": "ephemeral"}));
        // The newest message's last block carries the rolling breakpoint, unless it is the
        // working notes, which come after it.
        let newest =
            body["messages"].as_array().unwrap().last().unwrap()["content"].as_array().unwrap();
        let (last, before) = newest.split_last().unwrap();
        let notes = last["text"].as_str().is_some_and(|t| t.starts_with("# Working notes"));
        assert_eq!(notes, number >= 2, "request {number}: {last}");
        let marked = if notes { before.last().unwrap() } else { last };
        assert_eq!(marked["cache_control"], json!({"type": "ephemeral"}), "request {number}");
        if notes {
            assert!(last.get("cache_control").is_none(), "the notes are not cached");
        }
        // The system text and the tools are byte-identical all session long.
        assert_eq!(body["system"], requests[0]["system"]);
        assert_eq!(body["tools"], requests[0]["tools"]);
    }

    // The prefix each request wrote to the cache (up to and including its newest
    // breakpoint) is where the next request starts, byte for byte, before its own newest
    // breakpoint; and the next request marks that point too, so the cache entry is read
    // exactly however many blocks the step added.
    let views: Vec<CacheView> = requests.iter().map(CacheView::of).collect();
    for (number, pair) in views.windows(2).enumerate() {
        let (previous, next) = (&pair[0], &pair[1]);
        let written = previous.bytes_before(previous.newest_breakpoint() + 1);
        assert!(
            next.bytes_before(next.newest_breakpoint()).starts_with(&written),
            "request {} does not repeat the prefix of request {number}",
            number + 1
        );
        assert!(next.breakpoints.contains(&previous.newest_breakpoint()), "request {}", number + 1);
        assert!(cached_share(previous, next) > 0.0);
    }

    // Usage with cache reads and writes: the `--json` events, step.json, `cairn log`.
    let usage = events(&out).into_iter().find(|e| e["type"] == "usage").unwrap();
    assert_eq!(usage["input_tokens"], 10_000);
    assert_eq!(usage["cached_input_tokens"], 9000);
    assert_eq!(usage["cache_write_input_tokens"], 900);
    let session = session_of(&out);
    let step_json: Value =
        serde_json::from_str(&repo.git(&[
            "show",
            &format!("{}:.cairn/state/step.json", TestRepo::session_ref(&session)),
        ]))
        .unwrap();
    assert_eq!(
        step_json["usage"],
        json!({
            "input_tokens": 10_000,
            "output_tokens": 50,
            "cached_input_tokens": 9000,
            "cache_write_input_tokens": 900,
            "reasoning_tokens": 0,
        })
    );
    let log: Value = serde_json::from_str(&repo.ok(&["log", "--json"])).unwrap();
    let steps = log.as_array().unwrap();
    assert_eq!(steps.len(), 6, "the prompt and five model calls");
    assert!(steps[0]["usage"].is_null() && steps[0]["cost"].is_null());
    for step in &steps[1..] {
        assert_eq!(step["usage"], step_json["usage"], "{step}");
        assert!(close(&step["cost"], STEP_COST), "{step}");
    }
    let text = repo.ok(&["log"]);
    assert!(
        text.contains("      tokens: in 10000 · cached 9000 · written 900 · out 50 · ~$0.0071\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "total tokens: in 50000 · cached 45000 · written 4500 · out 250 · ~$0.0356\n"
        ),
        "{text}"
    );
    let sessions: Value = serde_json::from_str(&repo.ok(&["sessions", "--json"])).unwrap();
    assert_eq!(sessions[0]["usage"]["input_tokens"], 50_000);
    assert_eq!(sessions[0]["usage"]["cache_write_input_tokens"], 4500);
    assert!(close(&sessions[0]["cost"], 5.0 * STEP_COST), "{}", sessions[0]);
    let text = repo.ok(&["sessions"]);
    assert!(text.contains("tokens: in 50000 · cached 45000"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_price_there_is_no_cost_and_prompt_cache_false_marks_nothing() {
    let repo = TestRepo::new();
    let model = mock_model::start([Reply::anthropic_text("Hi.", STEP_USAGE)]).await;
    use_provider(&repo, "anthropic", &model.base_url(), "prompt_cache = false\n");
    assert_ok(&cairn(&repo, &["run", "hello", "--json"]).await);
    let body = &model.requests()[0].body;
    assert!(!body.to_string().contains("cache_control"), "{body}");
    assert!(body["system"].is_string(), "{body}");
    let log: Value = serde_json::from_str(&repo.ok(&["log", "--json"])).unwrap();
    assert_eq!(log[1]["usage"]["cached_input_tokens"], 9000);
    assert!(log[1]["cost"].is_null(), "{}", log[1]);
    let sessions: Value = serde_json::from_str(&repo.ok(&["sessions", "--json"])).unwrap();
    assert!(sessions[0]["cost"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_cache_key_is_the_session_id_where_the_server_takes_it() {
    // Unset, the key goes to api.openai.com only, so not to this compatible server; with
    // `prompt_cache = true` the user vouches for the server; `false` sends nothing.
    let cases = [
        ("openai-chat", "", false),
        ("openai-chat", "prompt_cache = true\n", true),
        ("openai-chat", "prompt_cache = false\n", false),
        ("openai-responses", "", false),
        ("openai-responses", "prompt_cache = true\n", true),
    ];
    for (kind, extra, sent) in cases {
        let repo = TestRepo::new();
        let reply = match kind {
            "openai-chat" => Reply::chat_text("Hi."),
            _ => fixture_reply(kind, "plain_text"),
        };
        let model = mock_model::start([reply]).await;
        use_provider(&repo, kind, &model.base_url(), extra);
        let out = cairn(&repo, &["run", "hello", "--json"]).await;
        assert_ok(&out);
        let body = &model.requests()[0].body;
        let expected = if sent { json!(session_of(&out)) } else { Value::Null };
        assert_eq!(body["prompt_cache_key"], expected, "{kind} {extra:?}: {body}");
    }
}

/// The lines of a file of about `bytes` bytes.
fn big_file(bytes: usize) -> String {
    let line = "fn step() { let prefix = \"stable bytes the cache can keep\"; }\n";
    line.repeat(bytes / line.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_step_session_reads_most_of_each_request_from_the_cache() {
    let repo = TestRepo::new();
    // ~160 KB read in the first step: about 40k tokens of prefix at ~4 bytes a token.
    repo.write("big1.txt", &big_file(80_000));
    repo.write("big2.txt", &big_file(80_000));
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-qm", "big files"]);
    let mut script = vec![Reply::anthropic_tool_calls(
        &[
            ("b1", "read_file", json!({"path": "big1.txt"})),
            ("b2", "read_file", json!({"path": "big2.txt"})),
        ],
        STEP_USAGE,
    )];
    for step in 2..30 {
        let id = format!("s{step}");
        let call = match step % 3 {
            0 => (id.as_str(), "note", json!({"text": format!("step {step} looked fine")})),
            1 => (id.as_str(), "grep", json!({"pattern": "prefix", "path": "README.md"})),
            _ => (
                id.as_str(),
                "write_file",
                json!({"path": format!("out/{step}.txt"), "content": format!("{step}\n")}),
            ),
        };
        script.push(Reply::anthropic_tool_calls(&[call], STEP_USAGE));
    }
    script.push(Reply::anthropic_text("All 30 steps done.", STEP_USAGE));
    let model = mock_model::start(script).await;
    use_provider(&repo, "anthropic", &model.base_url(), "");

    assert_ok(&cairn(&repo, &["run", "go", "--approval", "auto", "--json"]).await);
    let views: Vec<CacheView> = model.requests().iter().map(|r| CacheView::of(&r.body)).collect();
    assert_eq!(views.len(), 30);
    // The second request carries the big files' content, and every later one too.
    assert!(views[1].total_bytes() > 160_000, "{} bytes", views[1].total_bytes());
    let shares: Vec<f64> = views.windows(2).map(|pair| cached_share(&pair[0], &pair[1])).collect();
    let average = |shares: &[f64]| shares.iter().sum::<f64>() / shares.len() as f64;
    // Request 2 is the first to carry the big files: it writes them, reading only what
    // request 1 had. From request 3 on, each reads all of them.
    let after_the_read = &shares[1..];
    let lowest = after_the_read.iter().copied().fold(1.0, f64::min);
    println!(
        "cache reads, share of input bytes: {:.2}% on average over requests 2-30, \
         {:.2}% over requests 3-30 (lowest {:.2}%), {:.2}% for request 2",
        average(&shares) * 100.0,
        average(after_the_read) * 100.0,
        lowest * 100.0,
        shares[0] * 100.0
    );
    assert!(average(&shares) >= 0.85, "{shares:?}");
    assert!(lowest >= 0.95, "{shares:?}");
}

/// The lines of `cairn run`'s stderr.
fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr).lines().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_run_ends_with_the_runs_tokens_and_cost_as_cairn_log_totals_them() {
    let repo = TestRepo::new();
    let model = mock_model::start([
        Reply::anthropic_tool_calls(
            &[("t1", "read_file", json!({"path": "README.md"}))],
            STEP_USAGE,
        ),
        Reply::anthropic_text("Read it.", STEP_USAGE),
        // The session summary and the promotion pass: their tokens stream no `usage` event
        // but count in the `summarize` step, as `cairn log` counts them.
        Reply::anthropic_text("## Goal\n- read the readme\n", STEP_USAGE),
        Reply::anthropic_text("", STEP_USAGE),
    ])
    .await;
    let config = format!(
        "model = \"mock/scripted\"\n[provider.mock]\nkind = \"anthropic\"\nbase_url = \"{}\"\n{PRICE}",
        model.base_url()
    );
    std::fs::write(repo.home.join("cairn-config.toml"), config).unwrap();

    let out = cairn(&repo, &["run", "read the readme"]).await;
    assert_ok(&out);
    assert_eq!(model.requests().len(), 4, "two steps, the summary and the promotion pass");
    // Four calls of 100 plain, 9000 cached, 900 written, 50 out: 4 × $0.007125 = $0.0285.
    let total = "total tokens: in 40000 · cached 36000 · written 3600 · out 200 · ~$0.0285";
    let lines = stderr_lines(&out);
    let (last, before) = lines.split_last().unwrap();
    assert!(last.starts_with("done: "), "{lines:?}");
    assert_eq!(before.last().map(String::as_str), Some(total), "{lines:?}");
    assert_eq!(lines.iter().filter(|line| line.contains("tokens")).count(), 1, "{lines:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("tokens"), "usage is on stderr");
    // The same numbers as `cairn log`'s total and `cairn sessions`' line.
    let log = repo.ok(&["log"]);
    assert!(log.ends_with(&format!("{total}\n")), "{log}");
    assert!(repo.ok(&["sessions"]).contains(&format!("      tokens: {}", &total[14..])));

    // The export says the same, per session and per step, in every format.
    let md = repo.ok(&["export"]);
    assert!(md.contains(&format!("\n- tokens: {}\n", &total[14..])), "{md}");
    let step = "tokens: in 10000 · cached 9000 · written 900 · out 50 · ~$0.0071";
    assert_eq!(md.matches(&format!(" · {step}\n")).count(), 2, "the two steps: {md}");
    let html = repo.ok(&["export", "--format", "html"]);
    assert!(
        html.contains(&format!(
            "<div class=\"label\">Tokens</div><div class=\"value\">{}</div>",
            &total[14..]
        )),
        "{html}"
    );
    assert_eq!(html.matches(&format!("<span class=\"tokens\">{step}</span>")).count(), 2);
    let export: Value = serde_json::from_str(&repo.ok(&["export", "--format", "json"])).unwrap();
    assert_eq!(export["usage"]["input_tokens"], 40_000);
    assert_eq!(export["usage"]["cache_write_input_tokens"], 3600);
    assert!(close(&export["cost"], 4.0 * STEP_COST), "{}", export["cost"]);
    let summarize = export["steps"].as_array().unwrap().last().unwrap();
    assert_eq!(summarize["usage"]["input_tokens"], 20_000, "the summary's two calls");
    assert!(close(&summarize["cost"], 2.0 * STEP_COST), "{summarize}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_run_without_a_price_totals_tokens_only_and_without_usage_says_nothing() {
    let repo = TestRepo::new();
    let model = mock_model::start([
        Reply::chat_tool_calls(&[("c1", "read_file", json!({"path": "README.md"}))]),
        Reply::chat_text("Read it."),
    ])
    .await;
    use_provider(&repo, "openai-chat", &model.base_url(), "");
    let out = cairn(&repo, &["run", "read the readme"]).await;
    assert_ok(&out);
    // Two calls of 10 prompt and 5 completion tokens, no price table: no cost.
    let lines = stderr_lines(&out);
    assert_eq!(lines[lines.len() - 2], "total tokens: in 20 · cached 0 · out 10", "{lines:?}");
    // A headless resume totals the steps it recorded, not the whole session.
    model.push(Reply::chat_text("Again."));
    let out = cairn(&repo, &["resume", "@", "again"]).await;
    assert_ok(&out);
    let lines = stderr_lines(&out);
    assert_eq!(lines[lines.len() - 2], "total tokens: in 10 · cached 0 · out 5", "{lines:?}");

    // A server that reports no usage: no line at all.
    let repo = TestRepo::new();
    let model = mock_model::start([fixture_reply("openai-chat", "no_usage")]).await;
    use_provider(&repo, "openai-chat", &model.base_url(), PRICE);
    let out = cairn(&repo, &["run", "hello"]).await;
    assert_ok(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "No usage here.\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("tokens"), "{stderr}");
    assert!(!repo.ok(&["export"]).contains("tokens"), "nothing to show in the export either");

    // `--json` is unchanged: `usage` events, and no summary line anywhere.
    let repo = TestRepo::new();
    let model = mock_model::start([Reply::chat_text("Hi.")]).await;
    use_provider(&repo, "openai-chat", &model.base_url(), PRICE);
    let out = cairn(&repo, &["run", "hello", "--json"]).await;
    assert_ok(&out);
    let usage: Vec<Value> = events(&out).into_iter().filter(|e| e["type"] == "usage").collect();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["input_tokens"], 10);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("tokens"));
}
