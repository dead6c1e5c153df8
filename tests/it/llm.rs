//! The model clients against the mock server: every protocol's fixture suite, failures,
//! retries, timeouts, cancellation, and the request bodies each protocol is sent.

use std::time::{Duration, Instant};

use cairn::llm::{
    CancellationToken, Client, ClientSettings, FinishReason, LlmError, Message, ProviderKind,
    Request, Response, RetryPolicy, StreamEvent, ToolArguments, ToolCall, ToolDefinition, Usage,
};
use serde_json::{Value, json};

use crate::support::mock_model::{self, MockModel, Reply, closed_port_url, fixture, fixture_reply};

const KINDS: [ProviderKind; 3] =
    [ProviderKind::OpenaiChat, ProviderKind::Anthropic, ProviderKind::OpenaiResponses];

fn settings(kind: ProviderKind, base_url: &str) -> ClientSettings {
    let mut settings = ClientSettings::new("mockai", kind, base_url);
    settings.api_key_env = Some("TEST_API_KEY".into());
    settings.api_key = Some("sk-test-0123456789".into());
    settings.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_secs(5),
    };
    settings.idle_timeout = Duration::from_secs(5);
    settings
}

fn read_file_tool() -> ToolDefinition {
    ToolDefinition {
        name: "read_file".into(),
        description: "Numbered lines of a text file.".into(),
        parameters: json!({
            "type": "object",
            "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["path"],
        }),
    }
}

fn request() -> Request {
    Request {
        model: "test-model".into(),
        system: "You are terse.".into(),
        messages: vec![Message::User { text: "hi".into() }],
        tools: vec![read_file_tool()],
        max_output_tokens: 1024,
        temperature: None,
        volatile_context: None,
        cache_key: None,
        reasoning: None,
    }
}

async fn run_with(
    settings: ClientSettings,
    replies: Vec<Reply>,
) -> (Result<Response, LlmError>, MockModel) {
    let model = mock_model::start(replies).await;
    let mut settings = settings;
    settings.base_url = model.base_url();
    let client = Client::new(settings).unwrap();
    let result = client.stream(&request(), CancellationToken::new()).collect().await;
    (result, model)
}

async fn run(kind: ProviderKind, replies: Vec<Reply>) -> (Result<Response, LlmError>, MockModel) {
    run_with(settings(kind, "http://unused"), replies).await
}

async fn run_fixture(kind: ProviderKind, case: &str, chunk: usize) -> Result<Response, LlmError> {
    run(kind, vec![fixture_reply(kind.as_str(), case).chunked_every(chunk)]).await.0
}

/// Serves a fixture cut inside every multi-byte character and every JSON escape, so each
/// one reaches the client in two pieces.
async fn run_fixture_cut_mid_characters(kind: ProviderKind, case: &str) -> Response {
    let body = fixture(kind.as_str(), case);
    let text = String::from_utf8(body.clone()).unwrap();
    let mut cuts: Vec<usize> = text
        .char_indices()
        .filter(|(_, c)| c.len_utf8() > 1)
        .map(|(at, _)| at + 1)
        .chain(text.match_indices('\\').map(|(at, _)| at + 1))
        .collect();
    cuts.sort_unstable();
    assert!(!cuts.is_empty(), "{kind} {case} has nothing to cut inside");
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts {
        chunks.push(body[start..cut].to_vec());
        start = cut;
    }
    chunks.push(body[start..].to_vec());
    let reply = Reply::sse(Vec::new()).with_chunks(chunks);
    run(kind, vec![reply]).await.0.unwrap()
}

fn call(id: &str, name: &str, arguments: Value) -> ToolCall {
    ToolCall { id: id.into(), name: name.into(), arguments: ToolArguments::Json(arguments) }
}

fn usage(input: u64, output: u64, cached: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: cached,
        ..Usage::default()
    }
}

#[tokio::test]
async fn plain_text_in_any_chunking() {
    let usages = [usage(19, 10, 0), usage(25, 15, 0), usage(36, 87, 0)];
    for (kind, expected_usage) in KINDS.into_iter().zip(usages) {
        // Every split point is covered by the SSE decoder's own tests; here the whole
        // client sees a few kinds of chunking.
        let mut responses = vec![run_fixture_cut_mid_characters(kind, "plain_text").await];
        for chunk in [7, 64, usize::MAX] {
            responses.push(run_fixture(kind, "plain_text", chunk).await.unwrap());
        }
        for response in responses {
            assert_eq!(response.text, "Hello, wörld ☃ 🎉!", "{kind}");
            assert_eq!(response.finish, Some(FinishReason::Stop), "{kind}");
            assert_eq!(response.usage, Some(expected_usage), "{kind}");
            assert!(response.tool_calls.is_empty() && response.retries.is_empty(), "{kind}");
        }
    }
}

#[tokio::test]
async fn events_arrive_in_order_with_finish_last() {
    for kind in KINDS {
        let model = mock_model::start([fixture_reply(kind.as_str(), "plain_text")]).await;
        let client = Client::new(settings(kind, &model.base_url())).unwrap();
        let mut stream = client.stream(&request(), CancellationToken::new());
        let mut events = Vec::new();
        while let Some(event) = stream.next().await {
            events.push(event.unwrap());
        }
        let names: Vec<&str> = events
            .iter()
            .map(|event| match event {
                StreamEvent::TextDelta(_) => "text",
                StreamEvent::Usage(_) => "usage",
                StreamEvent::Finish(_) => "finish",
                other => panic!("{kind}: unexpected {other:?}"),
            })
            .collect();
        assert_eq!(names, ["text", "text", "text", "text", "usage", "finish"], "{kind}");
    }
}

#[tokio::test]
async fn one_tool_call() {
    let ids = ["call_DdmO9pD3xa9XTPNJ32zg2hcA", "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "call_12345xyz"];
    for (kind, id) in KINDS.into_iter().zip(ids) {
        let response = run_fixture(kind, "tool_call", 9).await.unwrap();
        let expected = call(id, "read_file", json!({"path": "src/lib.rs", "limit": 20}));
        assert_eq!(response.tool_calls, vec![expected], "{kind}");
        assert_eq!(response.finish, Some(FinishReason::ToolCalls), "{kind}");
    }
    let response = run_fixture(ProviderKind::Anthropic, "tool_call", 9).await.unwrap();
    assert_eq!(response.text, "Let me read it.");
}

#[tokio::test]
async fn parallel_tool_calls_keep_their_order() {
    let ids = [("call_a1", "call_b2"), ("toolu_a1", "toolu_b2"), ("call_a1", "call_b2")];
    for (kind, (first, second)) in KINDS.into_iter().zip(ids) {
        let response = run_fixture(kind, "parallel_tool_calls", 11).await.unwrap();
        assert_eq!(
            response.tool_calls,
            vec![
                call(first, "read_file", json!({"path": "a.txt"})),
                call(second, "grep", json!({"pattern": "fn main", "path": "src"})),
            ],
            "{kind}"
        );
        assert_eq!(response.finish, Some(FinishReason::ToolCalls), "{kind}");
    }
}

#[tokio::test]
async fn arguments_split_mid_escape_and_mid_utf8() {
    let expected = json!({"path": "notes/é.md", "content": "line 1\nsaid \"hi\"\ttab ☃ é"});
    for kind in KINDS {
        let mut responses = vec![run_fixture_cut_mid_characters(kind, "split_arguments").await];
        responses.push(run_fixture(kind, "split_arguments", 64).await.unwrap());
        for response in responses {
            assert_eq!(response.tool_calls.len(), 1, "{kind}");
            assert_eq!(response.tool_calls[0].name, "write_file", "{kind}");
            assert_eq!(response.tool_calls[0].arguments, ToolArguments::Json(expected.clone()));
        }
    }
}

#[tokio::test]
async fn usage_in_a_final_event_counts_cached_tokens() {
    for kind in KINDS {
        let response = run_fixture(kind, "usage_only_final", 16).await.unwrap();
        assert_eq!(response.text, "Cached answer.", "{kind}");
        assert_eq!(response.usage, Some(usage(2006, 300, 1920)), "{kind}");
    }
}

#[tokio::test]
async fn no_usage_is_fine() {
    for kind in KINDS {
        let response = run_fixture(kind, "no_usage", 16).await.unwrap();
        assert_eq!(response.text, "No usage here.", "{kind}");
        assert_eq!(response.usage, None, "{kind}");
        assert_eq!(response.finish, Some(FinishReason::Stop), "{kind}");
    }
}

#[tokio::test]
async fn an_error_event_mid_stream_is_a_provider_error() {
    let messages = [
        "The server had an error while processing your request",
        "Overloaded (overloaded_error)",
        "An error occurred while processing your request. (server_error)",
    ];
    for (kind, message) in KINDS.into_iter().zip(messages) {
        let err = run_fixture(kind, "error_mid_stream", 32).await.unwrap_err();
        assert!(matches!(err, LlmError::Provider { .. }), "{kind}: {err:?}");
        let text = err.to_string();
        assert!(text.starts_with("mockai reported an error mid-stream"), "{kind}: {text}");
        assert!(text.contains(message), "{kind}: {text}");
    }
}

#[tokio::test]
async fn a_malformed_chunk_is_an_error() {
    for kind in KINDS {
        let err = run_fixture(kind, "malformed_chunk", 32).await.unwrap_err();
        assert!(matches!(err, LlmError::Malformed { .. }), "{kind}: {err:?}");
        assert!(err.to_string().starts_with("mockai sent a chunk that could not be read: "));
    }
}

#[tokio::test]
async fn a_stream_cut_before_its_terminator_is_an_error() {
    let terminators = ["data: [DONE]", "message_stop", "response.completed"];
    for (kind, terminator) in KINDS.into_iter().zip(terminators) {
        let err = run_fixture(kind, "truncated", 32).await.unwrap_err();
        assert_eq!(err, LlmError::StreamTruncated { terminator }, "{kind}");
        assert!(err.to_string().contains(&format!("({terminator})")), "{err}");
    }
}

#[tokio::test]
async fn a_connection_broken_mid_body_is_an_error() {
    for kind in KINDS {
        let reply = fixture_reply(kind.as_str(), "plain_text").abort_after(200);
        let err = run(kind, vec![reply]).await.0.unwrap_err();
        assert!(matches!(err, LlmError::Http { .. }), "{kind}: {err:?}");
        assert!(err.to_string().contains("the connection broke mid-response"), "{err}");
    }
}

#[tokio::test]
async fn rate_limit_with_retry_after_then_success() {
    let handles: Vec<_> = KINDS
        .into_iter()
        .map(|kind| {
            tokio::spawn(async move {
                let limited = Reply::json(
                    429,
                    json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}),
                )
                .header("retry-after", "1");
                let started = Instant::now();
                let (result, model) =
                    run(kind, vec![limited, fixture_reply(kind.as_str(), "plain_text")]).await;
                (kind, started.elapsed(), result.unwrap(), model.requests().len())
            })
        })
        .collect();
    for handle in handles {
        let (kind, elapsed, response, requests) = handle.await.unwrap();
        assert_eq!(response.text, "Hello, wörld ☃ 🎉!", "{kind}");
        assert_eq!(requests, 2, "{kind}");
        assert_eq!(response.retries.len(), 1, "{kind}");
        let notice = &response.retries[0];
        assert_eq!(notice.delay, Duration::from_secs(1), "{kind}");
        assert_eq!(notice.to_string(), "retrying in 1s (429 Too Many Requests), attempt 2 of 3");
        assert!(elapsed >= Duration::from_millis(950), "{kind} waited only {elapsed:?}");
    }
}

#[tokio::test]
async fn server_errors_twice_then_success() {
    for kind in KINDS {
        let failing = || Reply::status(500, "Internal Server Error");
        let replies = vec![failing(), failing(), fixture_reply(kind.as_str(), "plain_text")];
        let (result, model) = run(kind, replies).await;
        let response = result.unwrap();
        assert_eq!(response.text, "Hello, wörld ☃ 🎉!", "{kind}");
        let reasons: Vec<&str> = response.retries.iter().map(|n| n.reason.as_str()).collect();
        assert_eq!(reasons, ["500 Internal Server Error", "500 Internal Server Error"], "{kind}");
        assert_eq!(model.requests().len(), 3, "{kind}");
    }
}

#[tokio::test]
async fn retries_are_bounded() {
    let overloaded = || {
        Reply::json(
            529,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        )
    };
    let (result, model) =
        run(ProviderKind::Anthropic, vec![overloaded(), overloaded(), overloaded()]).await;
    let err = result.unwrap_err();
    assert!(matches!(err, LlmError::Server { status: 529, attempts: 3, .. }), "{err:?}");
    assert!(err.to_string().contains("after 3 attempts: Overloaded (overloaded_error)"), "{err}");
    assert_eq!(model.requests().len(), 3);

    let limited = || Reply::status(429, "slow down");
    let (result, _) = run(ProviderKind::OpenaiChat, vec![limited(), limited(), limited()]).await;
    let err = result.unwrap_err();
    assert!(matches!(err, LlmError::RateLimited { attempts: 3, .. }), "{err:?}");

    // A server asking for a longer wait than max_delay is not waited for.
    let long = Reply::status(429, "come back tomorrow").header("retry-after", "86400");
    let (result, model) = run(ProviderKind::OpenaiChat, vec![long]).await;
    assert!(matches!(result.unwrap_err(), LlmError::RateLimited { attempts: 1, .. }));
    assert_eq!(model.requests().len(), 1);
}

#[tokio::test]
async fn unauthorized_names_the_key_variable() {
    let bodies = [
        json!({"error": {"message": "Incorrect API key provided: sk-test-***6789.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
        json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
        json!({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", "code": "invalid_api_key"}}),
    ];
    for (kind, body) in KINDS.into_iter().zip(bodies) {
        let (result, model) = run(kind, vec![Reply::json(401, body)]).await;
        let err = result.unwrap_err();
        assert!(matches!(err, LlmError::Auth { status: 401, .. }), "{kind}: {err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("the key in $TEST_API_KEY was refused by mockai (401): "),
            "{text}"
        );
        assert_eq!(model.requests().len(), 1, "{kind}: 401 must not be retried");
    }
}

#[tokio::test]
async fn not_found_names_model_and_url() {
    let body = json!({"error": {"message": "The model `test-model` does not exist", "type": "invalid_request_error", "code": "model_not_found"}});
    let (result, model) = run(ProviderKind::OpenaiResponses, vec![Reply::json(404, body)]).await;
    let err = result.unwrap_err();
    assert!(matches!(err, LlmError::NotFound { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("{}/responses", model.base_url())), "{text}");
    assert!(text.contains("model `test-model`") && text.contains("check the model name"), "{text}");
}

#[tokio::test]
async fn context_overflow_is_its_own_kind() {
    let bodies = [
        json!({"error": {"message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 208310 tokens > 200000 maximum"}}),
        json!({"error": {"message": "Your input exceeds the context window of this model.", "type": "invalid_request_error", "code": "context_length_exceeded"}}),
    ];
    for (kind, body) in KINDS.into_iter().zip(bodies) {
        let (result, model) = run(kind, vec![Reply::json(400, body)]).await;
        let err = result.unwrap_err();
        assert!(matches!(err, LlmError::ContextOverflow { .. }), "{kind}: {err:?}");
        assert!(err.to_string().contains("compact the conversation"), "{err}");
        assert_eq!(model.requests().len(), 1);
    }
    // llama.cpp's own error type, served as openai-chat.
    let llama = json!({"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": 9000, "n_ctx": 8192}});
    let err = run(ProviderKind::OpenaiChat, vec![Reply::json(400, llama)]).await.0.unwrap_err();
    assert!(matches!(err, LlmError::ContextOverflow { .. }), "{err:?}");
    // Reported mid-stream.
    for (kind, case) in [
        (ProviderKind::Anthropic, "overflow_error"),
        (ProviderKind::OpenaiResponses, "failed_overflow"),
    ] {
        let err = run_fixture(kind, case, 64).await.unwrap_err();
        assert!(matches!(err, LlmError::ContextOverflow { .. }), "{kind}: {err:?}");
    }
}

#[tokio::test]
async fn an_idle_stream_times_out() {
    let mut short = settings(ProviderKind::OpenaiChat, "http://unused");
    short.idle_timeout = Duration::from_millis(300);
    let partial =
        Reply::sse("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n")
            .hang();
    let started = Instant::now();
    let (result, _) = run_with(short.clone(), vec![partial]).await;
    let err = result.unwrap_err();
    assert_eq!(
        err,
        LlmError::IdleTimeout { provider: "mockai".into(), after: Duration::from_millis(300) }
    );
    assert!(err.to_string().contains("raise `idle_timeout` in [provider.mockai]"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The wait for the response headers is bounded the same way.
    let silent = fixture_reply("openai-chat", "plain_text").initial_delay(Duration::from_secs(30));
    let (result, _) = run_with(short, vec![silent]).await;
    assert!(matches!(result.unwrap_err(), LlmError::IdleTimeout { .. }));
}

/// A server that never ends a line: the client stops reading at its line bound (8 MiB)
/// with a clear error, rather than buffering all 100 MiB.
#[tokio::test]
async fn a_100_mib_line_is_refused_at_the_line_bound() {
    for kind in KINDS {
        let line = Reply::sse("data: ").with_chunks(vec![vec![b'a'; 1 << 20]]).repeat_last(99);
        let (result, model) = run(kind, vec![line]).await;
        let err = result.unwrap_err();
        assert!(matches!(err, LlmError::Malformed { .. }), "{kind}: {err:?}");
        assert!(err.to_string().contains("longer than 8388608 bytes"), "{kind}: {err}");
        // What the client took before giving up: the bound plus what the sockets buffer.
        assert!(model.bytes_sent() < 40 << 20, "{kind}: {} bytes read", model.bytes_sent());
    }
}

/// A server streaming small deltas forever is cut at `max_response_bytes`.
#[tokio::test]
async fn an_endless_stream_of_deltas_stops_at_the_response_cap() {
    assert_eq!(
        ClientSettings::new("x", ProviderKind::OpenaiChat, "http://x").max_response_bytes,
        cairn::llm::DEFAULT_MAX_RESPONSE_BYTES
    );
    assert_eq!(cairn::llm::DEFAULT_MAX_RESPONSE_BYTES, 64 << 20);
    let mut capped = settings(ProviderKind::OpenaiChat, "http://unused");
    capped.max_response_bytes = 2 << 20;
    let delta = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"la \"}}]}\n\n";
    let endless = Reply::sse(delta).repeat_last(u64::MAX);
    let (result, model) = run_with(capped, vec![endless]).await;
    let err = result.unwrap_err();
    assert_eq!(err, LlmError::ResponseTooLarge { limit: 2 << 20 });
    assert!(err.to_string().contains("passed 2 MiB without ending"), "{err}");
    assert!(model.bytes_sent() < 40 << 20, "{} bytes read", model.bytes_sent());
}

/// An error answer with an endless body is read only as far as its message needs.
#[tokio::test]
async fn an_endless_error_body_is_read_only_in_part() {
    let endless = Reply::status(400, "bad request: ").with_chunks(vec![vec![b'x'; 1 << 16]]);
    let (result, model) = run(ProviderKind::OpenaiChat, vec![endless.repeat_last(u64::MAX)]).await;
    let err = result.unwrap_err();
    assert!(matches!(err, LlmError::Rejected { status: 400, .. }), "{err:?}");
    assert!(model.bytes_sent() < 40 << 20, "{} bytes read", model.bytes_sent());
}

#[tokio::test]
async fn invalid_utf8_in_a_stream_is_a_clear_error() {
    for kind in KINDS {
        let body = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xff\xfe\"}}]}\n\n";
        let (result, _) = run(kind, vec![Reply::sse(body.to_vec())]).await;
        let err = result.unwrap_err();
        assert!(matches!(err, LlmError::Malformed { .. }), "{kind}: {err:?}");
        assert!(err.to_string().contains("stream line 1 is not valid UTF-8"), "{kind}: {err}");
    }
}

#[tokio::test]
async fn cancelling_stops_the_request_promptly() {
    let partial =
        Reply::sse("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n")
            .hang();
    let model = mock_model::start([partial]).await;
    let client = Client::new(settings(ProviderKind::OpenaiChat, &model.base_url())).unwrap();
    let cancel = CancellationToken::new();
    let mut stream = client.stream(&request(), cancel.clone());
    assert_eq!(stream.next().await.unwrap().unwrap(), StreamEvent::TextDelta("Hel".into()));
    let started = Instant::now();
    cancel.cancel();
    assert_eq!(stream.next().await.unwrap().unwrap_err(), LlmError::Cancelled);
    assert!(stream.next().await.is_none());
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    wait_until(|| model.hangs_closed() == 1).await;
}

#[tokio::test]
async fn cancelling_during_a_retry_wait_stops_at_once() {
    let limited = Reply::status(429, "slow down").header("retry-after", "4");
    let model = mock_model::start([limited]).await;
    let client = Client::new(settings(ProviderKind::OpenaiChat, &model.base_url())).unwrap();
    let cancel = CancellationToken::new();
    let mut stream = client.stream(&request(), cancel.clone());
    let notice = stream.next().await.unwrap().unwrap();
    assert!(matches!(notice, StreamEvent::Retry(_)), "{notice:?}");
    let started = Instant::now();
    cancel.cancel();
    assert_eq!(stream.next().await.unwrap().unwrap_err(), LlmError::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(model.requests().len(), 1);
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection() {
    let partial =
        Reply::sse("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n")
            .hang();
    let model = mock_model::start([partial]).await;
    let client = Client::new(settings(ProviderKind::OpenaiChat, &model.base_url())).unwrap();
    let mut stream = client.stream(&request(), CancellationToken::new());
    stream.next().await.unwrap().unwrap();
    drop(stream);
    wait_until(|| model.hangs_closed() == 1).await;
}

async fn wait_until(condition: impl Fn() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 5s");
}

#[tokio::test]
async fn nothing_listening_fails_fast_without_retries() {
    let url = closed_port_url().await;
    let client = Client::new(settings(ProviderKind::OpenaiChat, &url)).unwrap();
    let started = Instant::now();
    let err = client.stream(&request(), CancellationToken::new()).collect().await.unwrap_err();
    assert!(matches!(err, LlmError::Http { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("could not talk to {url}/chat/completions")));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn headers_and_paths_per_protocol() {
    for kind in KINDS {
        let mut with_extra = settings(kind, "http://unused");
        with_extra.headers = vec![("x-team".into(), "blue".into())];
        let (result, model) =
            run_with(with_extra, vec![fixture_reply(kind.as_str(), "plain_text")]).await;
        result.unwrap();
        let sent = &model.requests()[0];
        assert_eq!(sent.method, "POST");
        assert_eq!(sent.path, format!("/v1{}", kind.endpoint()));
        assert_eq!(sent.headers["content-type"], "application/json");
        assert_eq!(sent.headers["accept"], "text/event-stream");
        assert_eq!(sent.headers["x-team"], "blue");
        if kind == ProviderKind::Anthropic {
            assert_eq!(sent.headers["x-api-key"], "sk-test-0123456789");
            assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
            assert!(!sent.headers.contains_key("authorization"));
        } else {
            assert_eq!(sent.headers["authorization"], "Bearer sk-test-0123456789");
        }
    }
    // No key configured: no credentials sent at all.
    let mut keyless = settings(ProviderKind::OpenaiChat, "http://unused");
    keyless.api_key = None;
    keyless.api_key_env = None;
    let (_, model) = run_with(keyless, vec![fixture_reply("openai-chat", "plain_text")]).await;
    assert!(!model.requests()[0].headers.contains_key("authorization"));
}

#[tokio::test]
async fn compatible_server_quirks() {
    let chat = ProviderKind::OpenaiChat;
    let llama = run_fixture(chat, "llamacpp_reasoning", 10).await.unwrap();
    assert_eq!((llama.reasoning.as_str(), llama.text.as_str()), ("Think first.", "Answer."));
    assert_eq!(llama.usage, Some(usage(30, 4, 0)));

    let ollama = run_fixture(chat, "ollama_whole_tool_call", 10).await.unwrap();
    assert_eq!(ollama.reasoning, "Need the file.");
    assert_eq!(
        ollama.tool_calls,
        vec![call("call_k2m1x7", "read_file", json!({"path": "README.md"}))]
    );
    assert_eq!(ollama.finish, Some(FinishReason::ToolCalls));

    let bare = run_fixture(chat, "no_ids_no_index", 10).await.unwrap();
    assert_eq!(
        bare.tool_calls,
        vec![
            call("call_0", "glob", json!({"pattern": "*.rs"})),
            call("call_1", "note", json!({"text": "done"}))
        ]
    );
    assert_eq!(
        bare.finish,
        Some(FinishReason::ToolCalls),
        "a stop with tool calls is a tool-call turn"
    );
    assert_eq!(bare.usage, None);
}

#[tokio::test]
async fn invalid_tool_arguments_are_kept_for_the_model_not_fatal() {
    let response = run_fixture(ProviderKind::OpenaiChat, "invalid_arguments", 10).await.unwrap();
    let [ToolCall { id, arguments: ToolArguments::Invalid { raw, error }, .. }] =
        response.tool_calls.as_slice()
    else {
        panic!("{:?}", response.tool_calls);
    };
    assert_eq!(id, "call_bad");
    assert_eq!(raw, "{\"path\": \"a.txt\"");
    assert!(error.starts_with("the arguments are not valid JSON: EOF"), "{error}");
}

#[tokio::test]
async fn reasoning_and_other_endings() {
    let thinking = run_fixture(ProviderKind::Anthropic, "thinking", 10).await.unwrap();
    assert_eq!((thinking.reasoning.as_str(), thinking.text.as_str()), ("Think first.", "Answer."));
    let reasoning = run_fixture(ProviderKind::OpenaiResponses, "reasoning", 10).await.unwrap();
    assert_eq!(
        (reasoning.reasoning.as_str(), reasoning.text.as_str()),
        ("Think first.", "Answer.")
    );

    let incomplete = run_fixture(ProviderKind::OpenaiResponses, "incomplete", 10).await.unwrap();
    assert_eq!(incomplete.text, "Trunc");
    assert_eq!(incomplete.finish, Some(FinishReason::Length));

    let failed = run_fixture(ProviderKind::OpenaiResponses, "failed", 10).await.unwrap_err();
    assert_eq!(
        failed.to_string(),
        "mockai reported an error mid-stream: The model failed to generate a response. (server_error)"
    );
}

/// A conversation that exercises every message shape: text, an assistant turn with two
/// tool calls (one with arguments the model got wrong), paired results (one an error), and
/// a follow-up; with a cache key (Anthropic's breakpoints; no `prompt_cache_key`, as the
/// mock is not OpenAI's API) and a volatile context after the conversation.
fn conversation() -> Request {
    Request {
        model: "test-model".into(),
        system: "You are terse.".into(),
        messages: vec![
            Message::User { text: "What is in a.txt and b.txt?".into() },
            Message::Assistant {
                reasoning: Vec::new(),
                text: "Reading both.".into(),
                tool_calls: vec![
                    call("call_1", "read_file", json!({"path": "a.txt"})),
                    ToolCall {
                        id: "call_2".into(),
                        name: "read_file".into(),
                        arguments: ToolArguments::parse("{\"path\": \"b.txt\""),
                    },
                ],
            },
            Message::ToolResult {
                call_id: "call_1".into(),
                content: "1\tapple".into(),
                is_error: false,
            },
            Message::ToolResult {
                call_id: "call_2".into(),
                content: "the arguments are not valid JSON".into(),
                is_error: true,
            },
            Message::User { text: "And now?".into() },
            Message::Assistant {
                reasoning: Vec::new(),
                text: "a.txt holds apple.".into(),
                tool_calls: vec![],
            },
            Message::User { text: "Thanks.".into() },
        ],
        tools: vec![read_file_tool()],
        max_output_tokens: 2048,
        temperature: Some(0.25),
        volatile_context: Some("Notes: none yet.".into()),
        cache_key: Some("session-1".into()),
        reasoning: None,
    }
}

#[tokio::test]
async fn request_bodies_match_each_api() {
    for kind in KINDS {
        let model = mock_model::start([fixture_reply(kind.as_str(), "plain_text")]).await;
        let client = Client::new(settings(kind, &model.base_url())).unwrap();
        client.stream(&conversation(), CancellationToken::new()).collect().await.unwrap();
        let body = serde_json::to_string_pretty(&model.requests()[0].body).unwrap();
        insta::assert_snapshot!(format!("request_body_{}", kind.as_str()), body);
    }
}

#[tokio::test]
async fn refusals_nameless_calls_and_unused_items_are_said() {
    for kind in [ProviderKind::Anthropic, ProviderKind::OpenaiChat] {
        let refusal = run_fixture(kind, "refusal", 9).await.unwrap();
        assert_eq!(refusal.finish, Some(FinishReason::Refusal), "{kind}");
        assert!(refusal.text.contains("I can't help with that."), "{kind}: {}", refusal.text);
    }

    let nameless = run_fixture(ProviderKind::OpenaiChat, "nameless_tool_call", 11).await.unwrap();
    assert_eq!(nameless.tool_calls.len(), 1);
    assert_eq!(nameless.tool_calls[0].name, "");
    assert_eq!(nameless.notices.len(), 1);
    assert!(nameless.notices[0].contains("it has no tool name"), "{:?}", nameless.notices);

    let custom = run_fixture(ProviderKind::OpenaiResponses, "custom_tool_call", 13).await.unwrap();
    assert_eq!(custom.finish, Some(FinishReason::Stop));
    assert!(custom.tool_calls.is_empty() && custom.text.is_empty());
    assert_eq!(
        custom.notices,
        ["the model sent a `custom_tool_call` output item (`apply_patch`), which cairn does not \
          handle; it was left out"]
    );
}

#[tokio::test]
async fn cache_writes_and_reasoning_tokens_are_counted() {
    use crate::support::mock_model::AnthropicUsage;
    let written = AnthropicUsage { input: 12, cache_read: 3000, cache_write: 700, output: 40 };
    let (response, _) =
        run(ProviderKind::Anthropic, vec![Reply::anthropic_text("ok", written)]).await;
    let expected = Usage {
        input_tokens: 3712,
        output_tokens: 40,
        cached_input_tokens: 3000,
        cache_write_input_tokens: 700,
        reasoning_tokens: 0,
    };
    assert_eq!(response.unwrap().usage, Some(expected));
    assert_eq!(expected.uncached_input_tokens(), 12);

    let chat = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\n\
        data: {\"choices\":[],\"usage\":{\"prompt_tokens\":500,\"completion_tokens\":90,\
        \"prompt_tokens_details\":{\"cached_tokens\":384},\
        \"completion_tokens_details\":{\"reasoning_tokens\":64}}}\n\ndata: [DONE]\n\n";
    let (response, _) = run(ProviderKind::OpenaiChat, vec![Reply::sse(chat)]).await;
    let usage = response.unwrap().usage.unwrap();
    assert_eq!((usage.cached_input_tokens, usage.reasoning_tokens), (384, 64));

    let responses = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":\
        {\"usage\":{\"input_tokens\":500,\"input_tokens_details\":{\"cached_tokens\":256},\
        \"output_tokens\":90,\"output_tokens_details\":{\"reasoning_tokens\":70}}}}\n\n";
    let (response, _) = run(ProviderKind::OpenaiResponses, vec![Reply::sse(responses)]).await;
    let usage = response.unwrap().usage.unwrap();
    assert_eq!((usage.cached_input_tokens, usage.reasoning_tokens), (256, 70));
}

#[tokio::test]
async fn prompt_cache_key_goes_to_openai_itself_by_default_and_never_when_off() {
    let mut keyed = conversation();
    keyed.cache_key = Some("20261203-abcd".into());
    for kind in [ProviderKind::OpenaiChat, ProviderKind::OpenaiResponses] {
        for (base_url, prompt_cache, sent) in [
            ("https://api.openai.com/v1", true, true),
            ("https://api.openai.com/v1", false, false),
            ("https://openrouter.ai/api/v1", true, false),
        ] {
            let mut settings = settings(kind, base_url);
            settings.prompt_cache = prompt_cache;
            // Decided from the configured URL; then sent to the mock in its place.
            let model = mock_model::start([fixture_reply(kind.as_str(), "plain_text")]).await;
            settings.base_url = model.base_url();
            let client = Client::new(settings).unwrap();
            client.stream(&keyed, CancellationToken::new()).collect().await.unwrap();
            let body = &model.requests()[0].body;
            let expected = if sent { json!("20261203-abcd") } else { Value::Null };
            assert_eq!(body["prompt_cache_key"], expected, "{kind} {base_url} {prompt_cache}");
        }
    }
    // A one-off call (no cache key) sends none, and Anthropic marks no breakpoint for it.
    for kind in KINDS {
        let mut one_off = conversation();
        one_off.cache_key = None;
        let model = mock_model::start([fixture_reply(kind.as_str(), "plain_text")]).await;
        let mut settings = settings(kind, "https://api.openai.com/v1");
        settings.base_url = model.base_url();
        let client = Client::new(settings).unwrap();
        client.stream(&one_off, CancellationToken::new()).collect().await.unwrap();
        let body = model.requests()[0].body.to_string();
        assert!(!body.contains("prompt_cache_key") && !body.contains("cache_control"), "{body}");
    }
}
