//! Real recorded provider streams (`fixtures/sse/captured/<kind>/*.sse`, sources in its
//! README) replayed through the real clients against the mock server: what the agent must
//! see of each, every mismatch reported at once with the file's name.
//!
//! Reasoning is checked as the next request needs it: the kinds of blocks in order, each
//! with something in it, and every signature, redacted block and Responses item's
//! `encrypted_content` exactly as the stream carried it (it goes back verbatim).

use std::collections::BTreeSet;
use std::path::Path;

use cairn::llm::{
    CancellationToken, Client, ClientSettings, FinishReason, LlmError, Message, ProviderKind,
    ReasoningBlock, Request, Response, ToolArguments, Usage,
};
use serde_json::{Value, json};

use crate::support::mock_model::{self, Reply};

/// What one captured stream must come to.
enum Expect {
    Response {
        text: &'static str,
        /// Id, name and the whole arguments object, in order.
        tool_calls: Vec<(&'static str, &'static str, Value)>,
        usage: Option<Usage>,
        finish: FinishReason,
        /// A part of each notice, in order.
        notices: Vec<&'static str>,
        /// The reasoning blocks' kinds, in order: `thinking`, `redacted_thinking`, `text`,
        /// `responses_item`.
        reasoning: Vec<&'static str>,
    },
    /// The stream fails; the error's kind and a part of its message.
    Error { kind: fn(&LlmError) -> bool, message: &'static str },
}

struct Case {
    kind: ProviderKind,
    name: &'static str,
    expect: Expect,
}

fn usage(input: u64, output: u64, cached: u64, cache_write: u64, reasoning: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: cached,
        cache_write_input_tokens: cache_write,
        reasoning_tokens: reasoning,
    }
}

fn answer(
    text: &'static str,
    tool_calls: Vec<(&'static str, &'static str, Value)>,
    usage: Usage,
    finish: FinishReason,
) -> Expect {
    Expect::Response {
        text,
        tool_calls,
        usage: Some(usage),
        finish,
        notices: Vec::new(),
        reasoning: Vec::new(),
    }
}

/// The streams that carry reasoning, and the blocks it must come to; every other stream
/// must come to none.
const REASONING: [(&str, &[&str]); 10] = [
    ("vercel_thinking_signature", &["thinking"]),
    ("pydantic_thinking_stream", &["thinking"]),
    ("simonw_thinking_tool_use", &["thinking"]),
    ("vercel_deepseek_reasoning", &["text"]),
    ("vercel_deepseek_tool_call_cached", &["text"]),
    ("vercel_xai_tool_call", &["text"]),
    ("vercel_reasoning_encrypted_function_call", &["responses_item"]),
    ("pydantic_reasoning_function_call", &["responses_item"]),
    ("pydantic_deepseek_function_tool", &["responses_item"]),
    ("pydantic_web_search_cached", &["responses_item", "responses_item"]),
];

/// Sets the reasoning blocks `case` must carry, from [`REASONING`].
fn expect_reasoning(case: &mut Case) {
    if let Some((_, kinds)) = REASONING.iter().find(|(name, _)| *name == case.name)
        && let Expect::Response { reasoning, .. } = &mut case.expect
    {
        *reasoning = kinds.to_vec();
    }
}

fn kind_of(block: &ReasoningBlock) -> &'static str {
    match block {
        ReasoningBlock::Text { .. } => "text",
        ReasoningBlock::Thinking { .. } => "thinking",
        ReasoningBlock::RedactedThinking { .. } => "redacted_thinking",
        ReasoningBlock::ResponsesItem { .. } => "responses_item",
    }
}

/// What is wrong with `block` for sending it back, given the stream `body` it came from.
fn reasoning_problem(block: &ReasoningBlock, body: &str) -> Option<String> {
    let carried = |token: &str| body.contains(token);
    match block {
        ReasoningBlock::Text { text } if text.trim().is_empty() => Some("empty text".into()),
        ReasoningBlock::Thinking { text, signature } => {
            if text.trim().is_empty() || signature.is_empty() {
                Some("a thinking block without text or signature".into())
            } else if !carried(signature) {
                Some("a signature the stream did not carry verbatim".into())
            } else {
                None
            }
        }
        ReasoningBlock::RedactedThinking { data } if !carried(data) => {
            Some("redacted data the stream did not carry verbatim".into())
        }
        ReasoningBlock::ResponsesItem { item, .. } => match item["encrypted_content"].as_str() {
            Some(content) if !carried(content) => {
                Some("encrypted_content the stream did not carry verbatim".into())
            }
            _ => None,
        },
        _ => None,
    }
}

fn is_provider(err: &LlmError) -> bool {
    matches!(err, LlmError::Provider { .. })
}

const WEB_SEARCH_TEXT: &str = "San Francisco weather today (Tuesday, September 16, 2025): \
    Mostly sunny and pleasant. Current conditions around 71°F; expected high near 73°F and low \
    around 58°F. A light jacket is useful for the cooler evening. ";

fn anthropic_cases() -> Vec<Case> {
    use FinishReason::{Length, Refusal, Stop, ToolCalls};
    let case = |name, expect| Case { kind: ProviderKind::Anthropic, name, expect };
    vec![
        case(
            "vercel_text",
            answer(
                "Hello! I'm doing well, thank you for asking. How are you doing today? Is there \
                 anything I can help you with?",
                vec![],
                usage(12, 30, 0, 0, 0),
                Stop,
            ),
        ),
        // A tool without parameters: `input: {}` at the start, one empty `partial_json`.
        case(
            "vercel_tool_no_args",
            answer(
                "I'll update the issue list for you.",
                vec![("toolu_01QE1WLsSVp5hy5Q3GmGTmjP", "updateIssueList", json!({}))],
                usage(565, 48, 0, 0, 0),
                ToolCalls,
            ),
        ),
        case(
            "vercel_json_tool",
            answer(
                "",
                vec![(
                    "toolu_01KFbKqPYSuAKujiL6mTfzYA",
                    "json",
                    json!({"elements": [
                        {"location": "San Francisco", "temperature": 58, "condition": "sunny"}
                    ]}),
                )],
                usage(849, 47, 0, 0, 0),
                ToolCalls,
            ),
        ),
        // With reasoning: the thinking text and its signature_delta.
        case(
            "vercel_thinking_signature",
            answer("925 ÷ 5 = 185", vec![], usage(69, 53, 0, 0, 0), Stop),
        ),
        // With reasoning. Recorded raw, with the API's space padding inside the events.
        case(
            "pydantic_thinking_stream",
            answer(PYDANTIC_THINKING_TEXT, vec![], usage(43, 282, 0, 0, 0), Stop),
        ),
        // Two parallel calls of one tool without parameters.
        case(
            "simonw_parallel_tools",
            answer(
                "",
                vec![
                    ("toolu_01LtHJmixrs9NcWQkK8hu8hj", "pelican_name_generator", json!({})),
                    ("toolu_01N8a4jWyf116qKTMqKKmjyt", "pelican_name_generator", json!({})),
                ],
                usage(542, 62, 0, 0, 0),
                ToolCalls,
            ),
        ),
        // With reasoning: thinking with its signature before the call. The thinking
        // tokens are counted in `output_tokens_details`.
        case(
            "simonw_thinking_tool_use",
            answer(
                "",
                vec![("toolu_01825dXWLSoJwCst1qTsiWdb", "fixed_version", json!({}))],
                usage(598, 92, 0, 0, 53),
                ToolCalls,
            ),
        ),
        case(
            "simonw_stop_sequence",
            answer(
                "\ndef pelican():\n    return \"A large waterbird with a long bill and a throat \
                 pouch for catching fish.\"\n",
                vec![],
                usage(16, 28, 0, 0, 0),
                Stop,
            ),
        ),
        // No content at all: why is only in `stop_details`.
        case(
            "vercel_refusal",
            Expect::Response {
                text: "",
                tool_calls: vec![],
                usage: Some(usage(18, 5, 0, 0, 0)),
                finish: Refusal,
                notices: vec![
                    "mockai said why it stopped: This request triggered restrictions on violative cyber \
                     content and was blocked under Anthropic's Usage Policy.",
                ],
                reasoning: Vec::new(),
            },
        ),
        // Server tools (bash_code_execution) are the provider's business: only the text
        // and the cache reads and writes of the final `message_delta` reach the agent.
        case(
            "vercel_prompt_cache_server_tools",
            answer(
                "The sum of the squares of the numbers 1 through 12 is **650**.",
                vec![],
                usage(6 + 3337 + 6289, 198, 6289, 3337, 0),
                Stop,
            ),
        ),
        // The `message_start` reports 55096 cache reads of the compaction pass; the final
        // `message_delta` (cumulative) says 0 for the message itself, and is what counts.
        case(
            "pydantic_compaction_cache_read",
            answer("Hello! 👋", vec![], usage(181, 8, 0, 0, 0), Stop),
        ),
        // llama.cpp's server: cache reads in `message_start`, the input counted apart.
        case(
            "llamacpp_text",
            answer(LLAMACPP_ANTHROPIC_TEXT, vec![], usage(338, 25, 282, 0, 0), Stop),
        ),
        // Asked for 48 tokens: `stop_reason: max_tokens` mid-sentence.
        case(
            "llamacpp_max_tokens",
            answer(LLAMACPP_ANTHROPIC_CUT, vec![], usage(355, 48, 282, 0, 0), Length),
        ),
    ]
}

const LLAMACPP_ANTHROPIC_TEXT: &str =
    "Awesome, I'm sorry for the confusion. I will make it clear: The capital of France is Paris.";
const LLAMACPP_ANTHROPIC_CUT: &str = "The story of a dragon who learned to bake bread is a tale \
    of magical and magical. It begins with a whisper, a flame that blazed and changed the lives \
    of a small village. The village's residents had always been good, but";
const LLAMACPP_CHAT_CUT: &str = "The story of a dragon who learned to bake bread is a tale of \
    sacrifice and rebirth. It begins with a dawn of pure bliss, the first step being the \
    creation of a humble baker. The dragon, in this moment, is a being";
const LLAMACPP_RESPONSES_CUT: &str = "The story of a dragon who learned to bake bread is a tale \
    of creativity, resilience, and the power of culinary innovation. In the vast expanse of the \
    ancient world of medieval Europe, a young dragon named Thoros was born with the ability";

const PYDANTIC_THINKING_TEXT: &str = "Here are the basic steps for safely crossing the street:\n\n\
    **At intersections with traffic lights:**\n\
    - Wait for the pedestrian \"Walk\" signal\n\
    - Look both ways before stepping into the street\n\
    - Make eye contact with drivers when possible\n\
    - Stay alert for turning vehicles\n\n\
    **At intersections without signals:**\n\
    - Use crosswalks when available\n\
    - Stop at the curb and look left, right, then left again\n\
    - Wait for a clear gap in traffic\n\
    - Walk briskly but don't run\n\
    - Keep looking for traffic as you cross\n\n\
    **General safety tips:**\n\
    - Put away phones and remove headphones\n\
    - Wear bright or reflective clothing in low light\n\
    - Never assume drivers see you\n\
    - Avoid crossing between parked cars\n\
    - Walk facing traffic when there's no sidewalk\n\n\
    **In busy urban areas:**\n\
    - Follow pedestrian signals strictly\n\
    - Be extra cautious of cyclists in bike lanes\n\
    - Watch for buses and large vehicles with blind spots\n\n\
    The key is to be visible, alert, and predictable in your movements. Always prioritize \
    safety over speed when crossing streets.";

fn chat_cases() -> Vec<Case> {
    use FinishReason::{Length, Refusal, Stop, ToolCalls};
    let case = |name, expect| Case { kind: ProviderKind::OpenaiChat, name, expect };
    vec![
        case(
            "openai_python_parallel_tools",
            answer(
                "",
                vec![
                    (
                        "call_JMW1whyEaYG438VE1OIflxA2",
                        "GetWeatherArgs",
                        json!({"city": "Edinburgh", "country": "GB", "units": "c"}),
                    ),
                    (
                        "call_DNYTawLBoN8fj3KN6qU9N1Ou",
                        "get_stock_price",
                        json!({"ticker": "AAPL", "exchange": "NASDAQ"}),
                    ),
                ],
                usage(149, 60, 0, 0, 0),
                ToolCalls,
            ),
        ),
        // The refusal comes in `delta.refusal` and ends with a plain "stop".
        case(
            "openai_python_refusal",
            answer(
                "I'm sorry, I can't assist with that request.",
                vec![],
                usage(79, 11, 0, 0, 0),
                Refusal,
            ),
        ),
        case("openai_python_max_tokens", answer("{\"", vec![], usage(79, 1, 0, 0, 0), Length)),
        // With reasoning: DeepSeek's `reasoning_content`.
        case(
            "vercel_deepseek_reasoning",
            answer(
                "The word \"strawberry\" contains three \"r\"s.",
                vec![],
                usage(18, 219, 0, 0, 205),
                Stop,
            ),
        ),
        // With reasoning. Cache reads in `prompt_tokens_details.cached_tokens`.
        case(
            "vercel_deepseek_tool_call_cached",
            answer(
                "",
                vec![(
                    "call_00_ioIn7yN9p1ZOMNpDLwd4MgAF",
                    "weather",
                    json!({"location": "San Francisco"}),
                )],
                usage(339, 83, 320, 0, 39),
                ToolCalls,
            ),
        ),
        // With reasoning. xAI's `completion_tokens` leaves the reasoning out
        // (total 513 = 291 + 26 + 196).
        case(
            "vercel_xai_tool_call",
            answer(
                "",
                vec![("call_55117580", "weather", json!({"location": "San Francisco"}))],
                usage(291, 26 + 196, 290, 0, 196),
                ToolCalls,
            ),
        ),
        // The whole call in one fragment; usage both in `x_groq` and at the top level.
        case(
            "vercel_groq_tool_call",
            answer(
                "",
                vec![("tk85n1k4m", "weather", json!({}))],
                usage(210, 15, 0, 0, 0),
                ToolCalls,
            ),
        ),
        // Kimi K2 through OpenRouter (Novita): the id and name repeated in each fragment,
        // and no `finish_reason` at all; a stream that called a tool is a tool-call turn.
        case(
            "simonw_kimi_no_finish_reason",
            answer("", vec![("0", "llm_version", json!({}))], usage(57, 17, 0, 0, 0), ToolCalls),
        ),
        // The same model and route: the name in one fragment, the arguments in the next.
        case(
            "simonw_kimi_call_in_two_fragments",
            answer(
                "",
                vec![("llm_version:0", "llm_version", json!({}))],
                usage(56, 12, 0, 0, 0),
                ToolCalls,
            ),
        ),
        // Groq validates tool calls against the schema and ends the stream with an
        // `event: error` when the model's fails.
        case(
            "pydantic_groq_tool_use_failed",
            Expect::Error {
                kind: is_provider,
                message: "Tool call validation failed: tool call validation failed: parameters \
                          for tool get_something_by_name did not match schema",
            },
        ),
        // OpenRouter's keep-alive comments, a "length" finish, then an error chunk.
        case(
            "pydantic_openrouter_token_limit",
            Expect::Error { kind: is_provider, message: "Token limit reached (400)" },
        ),
        // llama.cpp's server: an empty first delta, usage in a final chunk with `timings`.
        case(
            "llamacpp_text",
            answer("Paris is the capital of France.", vec![], usage(337, 8, 0, 0, 0), Stop),
        ),
        case(
            "llamacpp_length",
            answer(LLAMACPP_CHAT_CUT, vec![], usage(354, 48, 282, 0, 0), Length),
        ),
    ]
}

fn responses_cases() -> Vec<Case> {
    use FinishReason::{Length, Stop, ToolCalls};
    let case = |name, expect| Case { kind: ProviderKind::OpenaiResponses, name, expect };
    vec![
        // With reasoning: a reasoning item with `encrypted_content` and a summary.
        case(
            "vercel_reasoning_encrypted_function_call",
            answer(
                "",
                vec![(
                    "call_AB6AaRZ1FYZB2RwS6A5vbdqn",
                    "calculator",
                    json!({"a": 12, "b": 7, "op": "add"}),
                )],
                usage(134, 28, 0, 0, 0),
                ToolCalls,
            ),
        ),
        case(
            "vercel_text_after_tools",
            answer("The final result is **570**.", vec![], usage(299, 12, 0, 0, 0), Stop),
        ),
        // With reasoning: an encrypted reasoning item without a summary.
        case(
            "pydantic_reasoning_function_call",
            answer(
                "",
                vec![("call_CWXgs68YprAjp6t0371hiPOI", "final_result", json!({"result": 6666}))],
                usage(53, 469, 0, 0, 448),
                ToolCalls,
            ),
        ),
        // With reasoning. DeepSeek's Responses API, with cache reads.
        case(
            "pydantic_deepseek_function_tool",
            answer(
                "",
                vec![(
                    "call_00_xjY8Z2BvSlzgEmmw0DtH0464",
                    "get_temperature",
                    json!({"city": "Tokyo"}),
                )],
                usage(366, 59, 256, 0, 14),
                ToolCalls,
            ),
        ),
        // With reasoning. Hosted web search: its items are named, not used.
        case(
            "pydantic_web_search_cached",
            Expect::Response {
                text: WEB_SEARCH_TEXT,
                tool_calls: vec![],
                usage: Some(usage(9463, 582, 8320, 0, 512)),
                finish: Stop,
                notices: vec!["`web_search_call` output item"],
                reasoning: Vec::new(),
            },
        ),
        case(
            "vercel_custom_tool",
            Expect::Response {
                text: "",
                tool_calls: vec![],
                usage: Some(usage(50, 20, 0, 0, 0)),
                finish: Stop,
                notices: vec!["`custom_tool_call` output item (`write_sql`)"],
                reasoning: Vec::new(),
            },
        ),
        // An `error` event, then `response.failed`: the first one is the error.
        case(
            "vercel_insufficient_quota",
            Expect::Error {
                kind: is_provider,
                message: "You exceeded your current quota, please check your plan and billing \
                          details.",
            },
        ),
        // llama.cpp's server: a message item, `response.completed`.
        case(
            "llamacpp_text",
            answer(
                "Sure, just for fun, I'll just use the title.\nParis is the capital of France.",
                vec![],
                usage(337, 22, 282, 0, 0),
                Stop,
            ),
        ),
        // Asked for 48 tokens, cut there, and still `status: "completed"`: every token
        // asked for was spent, so it was cut.
        case(
            "llamacpp_cut_completed",
            answer(LLAMACPP_RESPONSES_CUT, vec![], usage(354, 48, 282, 0, 0), Length),
        ),
    ]
}

/// The streams recorded with a request for fewer output tokens than [`request`]'s 1024:
/// they are replayed for a request of that size, as they were answered.
const ASKED_TOKENS: [(&str, u32); 3] =
    [("llamacpp_max_tokens", 48), ("llamacpp_length", 48), ("llamacpp_cut_completed", 48)];

fn request(max_output_tokens: u32) -> Request {
    Request {
        model: "test-model".into(),
        system: "You are terse.".into(),
        messages: vec![Message::User { text: "hi".into() }],
        tools: vec![],
        max_output_tokens,
        temperature: None,
        volatile_context: None,
        cache_key: None,
        reasoning: None,
    }
}

/// Each stream is served whole, and in pieces of an odd size so that events, lines and
/// characters arrive split.
const CHUNK_SIZES: [usize; 2] = [usize::MAX, 61];

async fn replay(case: &Case, body: Vec<u8>, chunk: usize) -> Result<Response, LlmError> {
    let kind = case.kind;
    let asked = ASKED_TOKENS.iter().find(|(name, _)| *name == case.name).map_or(1024, |(_, n)| *n);
    let model = mock_model::start([Reply::sse(body).chunked_every(chunk)]).await;
    let mut settings = ClientSettings::new("mockai", kind, model.base_url());
    settings.retry.max_attempts = 1;
    let client = Client::new(settings).unwrap();
    client.stream(&request(asked), CancellationToken::new()).collect().await
}

/// Each way `got` differs from `expect`, one line each; `body` is the stream served.
fn mismatches(expect: &Expect, got: &Result<Response, LlmError>, body: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut differ = |what: &str, expected: &dyn std::fmt::Debug, actual: &dyn std::fmt::Debug| {
        found.push(format!("{what}: expected {expected:?}, got {actual:?}"));
    };
    match (expect, got) {
        (
            Expect::Response { text, tool_calls, usage, finish, notices, reasoning },
            Ok(response),
        ) => {
            let kinds: Vec<&str> = response.reasoning_blocks.iter().map(kind_of).collect();
            if kinds != *reasoning {
                differ("reasoning blocks", reasoning, &kinds);
            }
            for problem in
                response.reasoning_blocks.iter().filter_map(|b| reasoning_problem(b, body))
            {
                differ("reasoning", &"a block fit to send back", &problem);
            }
            if response.text != *text {
                differ("text", text, &response.text);
            }
            let calls: Vec<(&str, &str, ToolArguments)> = response
                .tool_calls
                .iter()
                .map(|call| (call.id.as_str(), call.name.as_str(), call.arguments.clone()))
                .collect();
            let expected_calls: Vec<(&str, &str, ToolArguments)> = tool_calls
                .iter()
                .map(|(id, name, arguments)| (*id, *name, ToolArguments::Json(arguments.clone())))
                .collect();
            if calls != expected_calls {
                differ("tool calls", &expected_calls, &calls);
            }
            if response.usage != *usage {
                differ("usage", usage, &response.usage);
            }
            if response.finish.as_ref() != Some(finish) {
                differ("finish", finish, &response.finish);
            }
            let notices_match = response.notices.len() == notices.len()
                && response.notices.iter().zip(notices).all(|(got, part)| got.contains(part));
            if !notices_match {
                differ("notices", notices, &response.notices);
            }
        }
        (Expect::Error { kind, message }, Err(err)) => {
            if !kind(err) || !err.to_string().contains(message) {
                differ("error", message, err);
            }
        }
        (Expect::Response { .. }, Err(err)) => differ("outcome", &"a response", err),
        (Expect::Error { message, .. }, Ok(response)) => differ("outcome", message, response),
    }
    found
}

#[tokio::test]
async fn captured_streams_give_the_agent_what_they_hold() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sse/captured");
    let mut cases: Vec<Case> =
        [anthropic_cases(), chat_cases(), responses_cases()].into_iter().flatten().collect();
    cases.iter_mut().for_each(expect_reasoning);
    let mut problems = Vec::new();

    // Every fixture has its expectation, and every expectation its fixture.
    let mut on_disk = BTreeSet::new();
    for kind in [ProviderKind::Anthropic, ProviderKind::OpenaiChat, ProviderKind::OpenaiResponses] {
        for entry in std::fs::read_dir(root.join(kind.as_str())).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "sse") {
                let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                on_disk.insert(format!("{kind}/{stem}"));
            }
        }
    }
    let listed: BTreeSet<String> =
        cases.iter().map(|case| format!("{}/{}", case.kind, case.name)).collect();
    for missing in on_disk.difference(&listed) {
        problems.push(format!("{missing}.sse: no expectation for it in tests/it/captured.rs"));
    }
    for missing in listed.difference(&on_disk) {
        problems.push(format!("{missing}.sse: expected, but there is no such fixture"));
    }

    for case in &cases {
        let file = format!("{}/{}.sse", case.kind, case.name);
        let Ok(body) = std::fs::read(root.join(&file)) else { continue };
        for chunk in CHUNK_SIZES {
            let got = replay(case, body.clone(), chunk).await;
            let served = if chunk == usize::MAX {
                "whole".into()
            } else {
                format!("in {chunk}-byte chunks")
            };
            problems.extend(
                mismatches(&case.expect, &got, &String::from_utf8_lossy(&body))
                    .into_iter()
                    .map(|m| format!("{file} ({served}): {m}")),
            );
        }
    }
    assert!(problems.is_empty(), "{} mismatches:\n{}", problems.len(), problems.join("\n"));
}
