//! Reasoning through the real path: `cairn run` and `cairn resume` against the mock
//! server, the request bodies checked where they arrive, what was stored read back from
//! the step, and `cairn export`.

use std::process::Output;

use serde_json::{Value, json};

use crate::support::mock_model::{self, Reply};
use crate::support::{TestRepo, assert_ok, cairn, session_of};

/// Points `mock/scripted` at `base_url`, a provider of `kind` with `extra` lines.
fn use_provider(repo: &TestRepo, kind: &str, base_url: &str, extra: &str) {
    let config = format!(
        "model = \"mock/scripted\"\n[memory]\nsummarize = false\n\
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

/// The reasoning text the `--json` events streamed.
fn streamed_reasoning(out: &Output) -> String {
    let events = events(out);
    let deltas = events.iter().filter(|event| event["type"] == "reasoning_delta");
    deltas.map(|event| event["text"].as_str().unwrap()).collect()
}

/// The stored messages at a session's tip, in order.
fn stored_messages(repo: &TestRepo, session: &str) -> Vec<Value> {
    let tip = TestRepo::session_ref(session);
    let listing = repo.git(&["ls-tree", "--name-only", &format!("{tip}:.cairn/state/messages")]);
    listing
        .lines()
        .map(|name| {
            let blob = repo.git(&["show", &format!("{tip}:.cairn/state/messages/{name}")]);
            serde_json::from_str(&blob).unwrap()
        })
        .collect()
}

/// An SSE event of Anthropic's stream.
fn anthropic_event(data: Value) -> String {
    format!("event: {}\ndata: {data}\n\n", data["type"].as_str().unwrap())
}

const SIGNATURE: &str = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds+/sk-proj=";
const REDACTED_DATA: &str = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr==";

/// An Anthropic answer that thinks (in two deltas, its signature in two more), hides a
/// redacted thinking block, then reads `README.md`.
fn anthropic_thinking_then_tool_use() -> Reply {
    let (head, tail) = SIGNATURE.split_at(20);
    let delta = |index: u64, delta: Value| {
        anthropic_event(json!({"type": "content_block_delta", "index": index, "delta": delta}))
    };
    let start = |index: u64, block: Value| {
        anthropic_event(
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        )
    };
    let stop = |index: u64| anthropic_event(json!({"type": "content_block_stop", "index": index}));
    let mut body = anthropic_event(json!({"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "mock", "content": [],
        "usage": {"input_tokens": 10, "output_tokens": 1},
    }}));
    body += &start(0, json!({"type": "thinking", "thinking": "", "signature": ""}));
    body += &delta(0, json!({"type": "thinking_delta", "thinking": "The README "}));
    body += &delta(0, json!({"type": "thinking_delta", "thinking": "holds the answer."}));
    body += &delta(0, json!({"type": "signature_delta", "signature": head}));
    body += &delta(0, json!({"type": "signature_delta", "signature": tail}));
    body += &stop(0);
    body += &start(1, json!({"type": "redacted_thinking", "data": REDACTED_DATA}));
    body += &stop(1);
    body +=
        &start(2, json!({"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {}}));
    body +=
        &delta(2, json!({"type": "input_json_delta", "partial_json": "{\"path\": \"README.md\"}"}));
    body += &stop(2);
    body += &anthropic_event(json!({
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use"},
        "usage": {"output_tokens": 40},
    }));
    body += &anthropic_event(json!({"type": "message_stop"}));
    Reply::sse(body)
}

fn anthropic_text(text: &str) -> Reply {
    Reply::anthropic_text(
        text,
        mock_model::AnthropicUsage { input: 10, output: 5, ..Default::default() },
    )
}

/// The thinking blocks an assistant turn must carry back, as the model sent them.
fn expected_thinking() -> [Value; 2] {
    [
        json!({"type": "thinking", "thinking": "The README holds the answer.", "signature": SIGNATURE}),
        json!({"type": "redacted_thinking", "data": REDACTED_DATA}),
    ]
}

/// Asserts the request's first assistant turn starts with the thinking blocks, byte for
/// byte, before its `tool_use`.
fn assert_thinking_sent_back(body: &Value) {
    let assistant = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|message| message["role"] == "assistant")
        .expect("an assistant turn");
    let content = assistant["content"].as_array().unwrap();
    assert_eq!(content[..2], expected_thinking(), "{body}");
    assert_eq!(content[2]["type"], "tool_use", "{body}");
    assert_eq!(content[2]["id"], "toolu_1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_thinking_is_requested_kept_and_sent_back_before_its_tool_use() {
    let repo = TestRepo::new();
    let model =
        mock_model::start([anthropic_thinking_then_tool_use(), anthropic_text("It says hello.")])
            .await;
    use_provider(&repo, "anthropic", &model.base_url(), "reasoning = \"medium\"\n");

    let out = cairn(&repo, &["run", "what does the README say?", "--json"]).await;
    assert_ok(&out);
    let requests: Vec<Value> = model.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(requests.len(), 2);
    for body in &requests {
        assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": 8192}), "{body}");
    }
    assert_thinking_sent_back(&requests[1]);
    // Prompt caching keeps working: the breakpoints are where they were, none on thinking.
    let second = &requests[1];
    assert_eq!(second.to_string().matches("\"cache_control\"").count(), 4, "{second}");
    let assistant = &second["messages"][1]["content"];
    assert!(assistant.as_array().unwrap().iter().all(|b| b.get("cache_control").is_none()));

    assert_eq!(streamed_reasoning(&out), "The README holds the answer.");
    let session = session_of(&out);
    let stored = stored_messages(&repo, &session);
    let assistant = stored.iter().find(|m| m["role"] == "assistant").unwrap();
    assert_eq!(
        assistant["reasoning"],
        json!([
            {"kind": "thinking", "text": "The README holds the answer.", "signature": SIGNATURE},
            {"kind": "redacted_thinking", "data": REDACTED_DATA},
        ])
    );

    // The export shows the thinking, never a signature or the encrypted block.
    for format in ["md", "json", "html"] {
        let export = repo.ok(&["export", &session, "--format", format]);
        assert!(export.contains("The README holds the answer."), "{format}: {export}");
        assert!(!export.contains(SIGNATURE) && !export.contains(REDACTED_DATA), "{format}");
    }

    // Resumed, the session sends the same blocks back.
    let resumed = mock_model::start([anthropic_text("Still hello.")]).await;
    use_provider(&repo, "anthropic", &resumed.base_url(), "reasoning = \"medium\"\n");
    assert_ok(&cairn(&repo, &["resume", &session, "and now?", "--json"]).await);
    assert_thinking_sent_back(&resumed.requests()[0].body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thinking_budget_fits_below_the_output_limit_and_no_reasoning_asks_for_none() {
    let cases = [
        ("thinking_budget = 5000\n", json!({"type": "enabled", "budget_tokens": 5000})),
        // High is 24576 tokens, cut below the default 16384 of max_tokens.
        ("reasoning = \"high\"\n", json!({"type": "enabled", "budget_tokens": 16383})),
        ("", Value::Null),
    ];
    for (extra, thinking) in cases {
        let repo = TestRepo::new();
        let model = mock_model::start([anthropic_text("Hi.")]).await;
        use_provider(&repo, "anthropic", &model.base_url(), extra);
        assert_ok(&cairn(&repo, &["run", "hello", "--json"]).await);
        assert_eq!(model.requests()[0].body["thinking"], thinking, "{extra}");
    }
}

/// A Responses stream: a reasoning item with encrypted content, then a function call.
fn responses_reasoning_then_call(item: &Value) -> Reply {
    let event =
        |data: Value| format!("event: {}\ndata: {data}\n\n", data["type"].as_str().unwrap());
    let call = json!({"type": "function_call", "id": "fc_1", "call_id": "call_1",
        "name": "read_file", "arguments": "{\"path\": \"README.md\"}", "status": "completed"});
    let mut body = event(json!({"type": "response.output_item.added", "output_index": 0,
        "item": {"id": "rs_1", "type": "reasoning", "summary": []}}));
    body += &event(json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1",
        "output_index": 0, "summary_index": 0, "delta": "Look at the README."}));
    body += &event(json!({"type": "response.output_item.done", "output_index": 0, "item": item}));
    body += &event(json!({"type": "response.output_item.added", "output_index": 1, "item": call}));
    body += &event(json!({"type": "response.output_item.done", "output_index": 1, "item": call}));
    body += &event(json!({"type": "response.completed", "response": {"usage": {
        "input_tokens": 10, "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 20},
    }}}));
    Reply::sse(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_reasoning_items_go_back_verbatim_in_their_place() {
    let repo = TestRepo::new();
    let item = json!({
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Look at the README."}],
        "encrypted_content": "gAAAAABoC0ffEncrypted-_==",
    });
    let model = mock_model::start([
        responses_reasoning_then_call(&item),
        mock_model::fixture_reply("openai-responses", "plain_text"),
    ])
    .await;
    use_provider(&repo, "openai-responses", &model.base_url(), "reasoning = \"medium\"\n");
    let out = cairn(&repo, &["run", "read the README", "--json"]).await;
    assert_ok(&out);

    let requests: Vec<Value> = model.requests().into_iter().map(|r| r.body).collect();
    for body in &requests {
        // The summary is asked for: it is the only reasoning text a Responses model shows.
        assert_eq!(body["reasoning"], json!({"effort": "medium", "summary": "auto"}), "{body}");
        assert_eq!(body["include"], json!(["reasoning.encrypted_content"]), "{body}");
        assert_eq!(body["store"], false);
    }
    let input = requests[1]["input"].as_array().unwrap();
    let at = input.iter().position(|entry| entry == &item).expect("the reasoning item, verbatim");
    assert_eq!(input[at + 1]["type"], "function_call", "{}", requests[1]);
    assert_eq!(input[at + 1]["call_id"], "call_1");
    assert_eq!(streamed_reasoning(&out), "Look at the README.");

    let export = repo.ok(&["export", &session_of(&out), "--format", "json"]);
    assert!(export.contains("Look at the README."), "{export}");
    assert!(!export.contains("gAAAAABoC0ffEncrypted"), "{export}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_reasoning_content_is_shown_and_stored_and_reasoning_effort_sent_when_set() {
    for (extra, effort) in [("reasoning = \"low\"\n", json!("low")), ("", Value::Null)] {
        let repo = TestRepo::new();
        let model =
            mock_model::start([mock_model::fixture_reply("openai-chat", "llamacpp_reasoning")])
                .await;
        use_provider(&repo, "openai-chat", &model.base_url(), extra);
        let out = cairn(&repo, &["run", "hello", "--json"]).await;
        assert_ok(&out);
        let body = &model.requests()[0].body;
        assert_eq!(body["reasoning_effort"], effort, "{extra:?}: {body}");
        assert_eq!(streamed_reasoning(&out), "Think first.");
        let stored = stored_messages(&repo, &session_of(&out));
        let assistant = stored.iter().find(|m| m["role"] == "assistant").unwrap();
        assert_eq!(assistant["reasoning"], json!([{"kind": "text", "text": "Think first."}]));
        assert_eq!(assistant["text"], "Answer.");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reasoning_flag_wins_over_the_provider_and_off_asks_for_nothing() {
    for (flag, effort) in [("high", json!("high")), ("off", Value::Null)] {
        let repo = TestRepo::new();
        let model = mock_model::start([Reply::chat_text("Hi.")]).await;
        use_provider(&repo, "openai-chat", &model.base_url(), "reasoning = \"low\"\n");
        assert_ok(&cairn(&repo, &["run", "hello", "--json", "--reasoning", flag]).await);
        assert_eq!(model.requests()[0].body["reasoning_effort"], effort, "--reasoning {flag}");
    }
}

#[test]
fn bad_reasoning_settings_are_errors_naming_the_key() {
    let cases = [
        (
            "anthropic",
            "reasoning = \"max\"\n",
            "[provider.mock] reasoning: `max` is not a reasoning level",
        ),
        (
            "anthropic",
            "thinking_budget = 0\n",
            "[provider.mock] thinking_budget = 0 is out of range",
        ),
        (
            "anthropic",
            "thinking_budget = 16384\n",
            "[provider.mock] thinking_budget = 16384 is out of range",
        ),
        (
            "anthropic",
            "max_output_tokens = 4000\nthinking_budget = 4000\n",
            "[provider.mock] thinking_budget = 4000 is out of range; give tokens below max_output_tokens from 1024 to 3999",
        ),
        (
            "openai-chat",
            "thinking_budget = 2048\n",
            "[provider.mock] thinking_budget is for providers of kind anthropic",
        ),
        (
            "anthropic",
            "reasoning = \"low\"\nthinking_budget = 2048\n",
            "[provider.mock] reasoning and [provider.mock] thinking_budget are two ways",
        ),
    ];
    for (kind, extra, expected) in cases {
        let repo = TestRepo::new();
        use_provider(&repo, kind, "http://127.0.0.1:9/v1", extra);
        let out = repo.cairn(&["run", "hello"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra}");
        assert!(stderr.contains(expected), "{extra}: {stderr}");
    }
}

/// The first assistant turn of `body`'s conversation.
fn first_assistant_content(body: &Value) -> Vec<Value> {
    let messages = body["messages"].as_array().unwrap();
    let assistant = messages.iter().find(|message| message["role"] == "assistant").unwrap();
    assistant["content"].as_array().unwrap().clone()
}

/// `--reasoning off` on resuming a tool-use loop that was cut short (`--max-steps`) with
/// thinking: to the API the loop is one assistant turn, so its thinking blocks still go
/// back, in their place, while the request asks for no thinking. Once the loop has ended
/// with an answer, a request without thinking leaves them out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reasoning_off_mid_tool_loop_keeps_the_loops_thinking_and_later_drops_it() {
    let repo = TestRepo::new();
    let model = mock_model::start([anthropic_thinking_then_tool_use()]).await;
    use_provider(&repo, "anthropic", &model.base_url(), "reasoning = \"medium\"\n");
    let out =
        cairn(&repo, &["run", "what does the README say?", "--max-steps", "1", "--json"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let session = session_of(&out);

    let resumed =
        mock_model::start([anthropic_text("It says hello."), anthropic_text("Bye.")]).await;
    use_provider(&repo, "anthropic", &resumed.base_url(), "reasoning = \"medium\"\n");
    let go_on = ["resume", session.as_str(), "go on", "--reasoning", "off", "--json"];
    assert_ok(&cairn(&repo, &go_on).await);
    let body = &resumed.requests()[0].body;
    assert!(body.get("thinking").is_none(), "{body}");
    assert_thinking_sent_back(body);
    // The results and the user's words share the user turn that continues the loop.
    let last = body["messages"].as_array().unwrap().last().unwrap();
    let kinds: Vec<&str> =
        last["content"].as_array().unwrap().iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["tool_result", "text"], "{body}");

    let again = ["resume", session.as_str(), "anything else?", "--reasoning", "off", "--json"];
    assert_ok(&cairn(&repo, &again).await);
    let body = &resumed.requests()[1].body;
    assert!(body.get("thinking").is_none(), "{body}");
    let content = first_assistant_content(body);
    assert_eq!(content.len(), 1, "the finished turn's thinking is left out: {body}");
    assert_eq!(content[0]["type"], "tool_use");
}

/// Reasoning switched on when resuming a tool-use loop that began without thinking: a
/// request that thinks would be refused (the loop's messages do not start with a thinking
/// block), so the loop is finished without; the next turn thinks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reasoning_on_mid_tool_loop_waits_for_the_next_turn() {
    let repo = TestRepo::new();
    let usage = mock_model::AnthropicUsage { input: 10, output: 5, ..Default::default() };
    let call = Reply::anthropic_tool_calls(
        &[("toolu_1", "read_file", json!({"path": "README.md"}))],
        usage,
    );
    let model = mock_model::start([call]).await;
    use_provider(&repo, "anthropic", &model.base_url(), "");
    let out =
        cairn(&repo, &["run", "what does the README say?", "--max-steps", "1", "--json"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(model.requests()[0].body.get("thinking").is_none());
    let session = session_of(&out);

    let resumed =
        mock_model::start([anthropic_text("It says hello."), anthropic_text("Bye.")]).await;
    use_provider(&repo, "anthropic", &resumed.base_url(), "");
    let go_on = ["resume", session.as_str(), "go on", "--reasoning", "high", "--json"];
    assert_ok(&cairn(&repo, &go_on).await);
    let body = &resumed.requests()[0].body;
    assert!(body.get("thinking").is_none(), "no thinking within the loop: {body}");

    let again = ["resume", session.as_str(), "anything else?", "--reasoning", "high", "--json"];
    assert_ok(&cairn(&repo, &again).await);
    let body = &resumed.requests()[1].body;
    assert_eq!(body["thinking"]["type"], "enabled", "the next turn thinks: {body}");
}
