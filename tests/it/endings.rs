//! Every way a response can end is said: `cairn run` (the built binary) against the mock
//! model server, for each ending that stops a turn unfinished (a refusal, the output limit,
//! a content filter, a response with nothing usable, the `[limits]` of a turn) and for
//! those the turn survives (a tool call without a name). Each is checked on the terminal
//! and as `--json` events, with its exit status, and the per-provider settings are checked
//! in the requests they shape.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::TestRepo;
use crate::support::mock_model::{self, MockModel, Reply, fixture_reply};

/// The exit status of a turn that ended unfinished.
const UNFINISHED: i32 = 5;

/// Points cairn at `base_url` as provider `mock` of `kind`, with `extra` provider keys and
/// `more` top-level tables, the session-end summary off.
fn use_provider(repo: &TestRepo, kind: &str, base_url: &str, extra: &str, more: &str) {
    let config = format!(
        "model = \"mock/scripted\"\n[memory]\nsummarize = false\n{more}\n\
         [provider.mock]\nkind = \"{kind}\"\nbase_url = \"{base_url}\"\n{extra}"
    );
    std::fs::write(repo.home.join("cairn-config.toml"), config).unwrap();
}

fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON event"))
        .collect()
}

fn notices(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|event| event["type"] == "notice")
        .map(|event| event["message"].as_str().unwrap().to_owned())
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `cairn run` twice against `replies` (each run takes the next reply or replies, as
/// `per_run` says): once for the terminal, once with `--json`. Returns both outputs and
/// the server.
async fn run_both(
    repo: &TestRepo,
    kind: &str,
    per_run: impl Fn() -> Vec<Reply>,
    extra: &str,
) -> (Output, Output, MockModel) {
    let model = mock_model::start(per_run().into_iter().chain(per_run())).await;
    use_provider(repo, kind, &model.base_url(), extra, "");
    let terminal = crate::support::cairn(repo, &["run", "do it", "--approval", "auto"]).await;
    let json = crate::support::cairn(repo, &["run", "do it", "--approval", "auto", "--json"]).await;
    (terminal, json, model)
}

/// Asserts a turn ended unfinished with `notice` on the terminal and as a `notice` event,
/// and `reason` in the `done` event.
fn assert_unfinished(terminal: &Output, json: &Output, notice: &str, reason: &str) {
    assert_eq!(terminal.status.code(), Some(UNFINISHED), "{}", stderr(terminal));
    let shown = stderr(terminal);
    assert!(shown.contains(&format!("note: {notice}")), "{shown}");
    assert!(shown.contains(&format!("{reason}: ")), "{shown}");
    assert_eq!(json.status.code(), Some(UNFINISHED), "{}", stderr(json));
    let events = events(json);
    assert!(notices(&events).iter().any(|n| n == notice), "{events:?}");
    let done = events.last().unwrap();
    assert_eq!((done["type"].as_str(), done["reason"].as_str()), (Some("done"), Some(reason)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_refusal_is_shown_and_ends_the_turn_unfinished() {
    let repo = TestRepo::new();
    let (terminal, json, _) =
        run_both(&repo, "anthropic", || vec![fixture_reply("anthropic", "refusal")], "").await;
    let notice = "the model refused to go on; the turn ended unfinished";
    assert_unfinished(&terminal, &json, notice, "refusal");
    assert!(String::from_utf8_lossy(&terminal.stdout).contains("I can't help with that."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_chat_refusal_is_shown_and_ends_the_turn_unfinished() {
    let repo = TestRepo::new();
    let (terminal, json, _) =
        run_both(&repo, "openai-chat", || vec![fixture_reply("openai-chat", "refusal")], "").await;
    let notice = "the model refused to go on; the turn ended unfinished";
    assert_unfinished(&terminal, &json, notice, "refusal");
    // The refusal's words are shown as the answer, and kept as the model's text.
    assert!(
        String::from_utf8_lossy(&terminal.stdout).contains("I'm sorry, I can't help with that.")
    );
    let texts: String = events(&json)
        .iter()
        .filter(|e| e["type"] == "text_delta")
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, "I'm sorry, I can't help with that.");
}

/// An openai-chat stream of `text` ending with `finish_reason`.
fn chat_ending(text: &str, finish_reason: &str) -> Reply {
    let chunk = |delta: Value, finish: Value| {
        let chunk =
            json!({"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {chunk}\n\n")
    };
    Reply::sse(
        chunk(json!({"content": text}), Value::Null)
            + &chunk(json!({}), json!(finish_reason))
            + "data: [DONE]\n\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_output_limit_is_said_with_the_setting_to_raise() {
    let repo = TestRepo::new();
    let (terminal, json, model) = run_both(
        &repo,
        "openai-chat",
        || vec![chat_ending("A long answ", "length")],
        "max_output_tokens = 500\n",
    )
    .await;
    let notice = "the response was cut at the output limit of 500 tokens; the turn ended \
                  unfinished (raise `max_output_tokens` in [provider.mock])";
    assert_unfinished(&terminal, &json, notice, "output-limit");
    for request in model.requests() {
        assert_eq!(request.body["max_tokens"], 500, "{}", request.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_filter_is_said() {
    let repo = TestRepo::new();
    let (terminal, json, _) =
        run_both(&repo, "openai-chat", || vec![chat_ending("Some", "content_filter")], "").await;
    let notice = "the provider's content filter cut the response; the turn ended unfinished";
    assert_unfinished(&terminal, &json, notice, "content-filter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_of_a_cut_response_are_answered_but_not_run() {
    let repo = TestRepo::new();
    let cut_call = || {
        let reply = Reply::chat_tool_calls(&[(
            "w1",
            "write_file",
            json!({"path": "new.txt", "content": "x"}),
        )]);
        let body = String::from_utf8(reply.chunks.concat()).unwrap();
        vec![Reply::sse(
            body.replace("\"finish_reason\":\"tool_calls\"", "\"finish_reason\":\"length\""),
        )]
    };
    let (terminal, json, _) = run_both(&repo, "openai-chat", cut_call, "").await;
    let notice = "the response was cut at the output limit of 16384 tokens; the turn ended \
                  unfinished (raise `max_output_tokens` in [provider.mock])";
    assert_unfinished(&terminal, &json, notice, "output-limit");
    assert!(!repo.path("new.txt").exists(), "a call of a cut response must not run");
    let events = events(&json);
    let result = events.iter().find(|e| e["type"] == "tool_result").expect("a tool result");
    assert_eq!(result["is_error"], true);
    assert_eq!(
        result["content"],
        "not run: the turn stopped before the model finished (output-limit)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nameless_tool_call_is_said_and_answered_as_unparseable() {
    let repo = TestRepo::new();
    let per_run =
        || vec![fixture_reply("openai-chat", "nameless_tool_call"), Reply::chat_text("Done.")];
    let (terminal, json, model) = run_both(&repo, "openai-chat", per_run, "").await;
    let notice = "the model sent a tool call that could not be parsed: it has no tool name \
                  (call `chatcmpl-llama_call_0`, arguments `{\"path\": \"README.md\"}`); the \
                  model is told to call the tool again";
    // The model is told and finishes its turn: a notice, and exit 0.
    assert_eq!(terminal.status.code(), Some(0), "{}", stderr(&terminal));
    assert!(stderr(&terminal).contains(&format!("note: {notice}")), "{}", stderr(&terminal));
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    assert!(notices(&events(&json)).iter().any(|n| n == notice), "{:?}", events(&json));
    let requests = model.requests();
    let answer = requests[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("the call is answered")["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        answer,
        "this tool call could not be parsed: it came without a tool name; call the tool again, \
         naming it"
    );
    assert!(!answer.contains("unknown tool"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_responses_output_item_is_named_and_an_empty_turn_is_unfinished() {
    let repo = TestRepo::new();
    let (terminal, json, _) = run_both(
        &repo,
        "openai-responses",
        || vec![fixture_reply("openai-responses", "custom_tool_call")],
        "",
    )
    .await;
    let item = "the model sent a `custom_tool_call` output item (`apply_patch`), which cairn \
                does not handle; it was left out";
    assert!(stderr(&terminal).contains(&format!("note: {item}")), "{}", stderr(&terminal));
    assert!(notices(&events(&json)).iter().any(|n| n == item), "{:?}", events(&json));
    let notice = "the response held nothing cairn could use; the turn ended unfinished";
    assert_unfinished(&terminal, &json, notice, "unusable-response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_output_token_limit_caps_each_call_and_stops_the_turn() {
    let repo = TestRepo::new();
    let call = || Reply::chat_tool_calls(&[("g", "glob", json!({"pattern": "*.md"}))]);
    let model = mock_model::start([call(), call(), call()]).await;
    // Each scripted response reports 5 output tokens.
    use_provider(&repo, "openai-chat", &model.base_url(), "", "[limits]\nturn_output_tokens = 8\n");
    let out = crate::support::cairn(&repo, &["run", "ramble", "--json"]).await;
    assert_eq!(out.status.code(), Some(UNFINISHED), "{}", stderr(&out));
    let asked: Vec<Value> = model.requests().iter().map(|r| r.body["max_tokens"].clone()).collect();
    assert_eq!(asked, [json!(8), json!(3)], "each call asks for what is left of the turn");
    let notice = "the turn stopped at its output limit, `[limits] turn_output_tokens = 8` (10 \
                  written); the model did not finish";
    let events = events(&out);
    assert!(notices(&events).iter().any(|n| n == notice), "{events:?}");
    assert_eq!(events.last().unwrap()["reason"], "turn-output-tokens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_time_limit_stops_a_stream_that_goes_on() {
    let repo = TestRepo::new();
    let rambling = || {
        let chunk =
            json!({"id": "c", "choices": [{"index": 0, "delta": {"content": "and so on "}}]});
        Reply::sse(format!("data: {chunk}\n\n"))
            .chunk_delay(Duration::from_millis(100))
            .repeat_last(u64::MAX)
    };
    let model = mock_model::start([rambling(), rambling()]).await;
    use_provider(&repo, "openai-chat", &model.base_url(), "", "[limits]\nturn_seconds = 1\n");
    let notice = "the turn stopped at its time limit, `[limits] turn_seconds = 1`; the model did \
                  not finish";
    let started = Instant::now();
    let terminal = crate::support::cairn(&repo, &["run", "ramble"]).await;
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(String::from_utf8_lossy(&terminal.stdout).contains("and so on"));
    let json = crate::support::cairn(&repo, &["run", "ramble", "--json"]).await;
    assert_unfinished(&terminal, &json, notice, "turn-seconds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_completion_tokens_is_sent_when_configured() {
    let repo = TestRepo::new();
    let model = mock_model::start([Reply::chat_text("hi")]).await;
    let extra = "max_output_tokens = 2000\nmax_tokens_field = \"max_completion_tokens\"\n";
    use_provider(&repo, "openai-chat", &model.base_url(), extra, "");
    let out = crate::support::cairn(&repo, &["run", "hello"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let body = &model.requests()[0].body;
    assert_eq!(body["max_completion_tokens"], 2000, "{body}");
    assert!(body.get("max_tokens").is_none(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_idle_timeout_are_per_provider() {
    let repo = TestRepo::new();
    let model = mock_model::start([Reply::status(503, "busy"), Reply::chat_text("late")]).await;
    use_provider(&repo, "openai-chat", &model.base_url(), "retries = 0\n", "");
    let out = crate::support::cairn(&repo, &["run", "hello"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(model.requests().len(), 1, "retries = 0 tries once");

    let model =
        mock_model::start([Reply::chat_text("slow").initial_delay(Duration::from_secs(30))]).await;
    use_provider(&repo, "openai-chat", &model.base_url(), "idle_timeout = 1\n", "");
    let started = Instant::now();
    let out = crate::support::cairn(&repo, &["run", "hello"]).await;
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "the model sent nothing for 1s; the stream was abandoned (for a \
                              slow model, raise `idle_timeout` in [provider.mock], in seconds)"
        ),
        "{}",
        stderr(&out)
    );
}
