//! What can go wrong talking to a model, sorted by what the caller should do about it.
//!
//! Each variant is one kind the agent reacts to differently (compact on
//! [`LlmError::ContextOverflow`], tell the user to fix a key on [`LlmError::Auth`], …), and
//! each message says what happened and what to do next. Classifying HTTP error bodies
//! lives here too, because every provider's overflow and auth errors end up in these kinds.

use std::time::Duration;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("{}", auth_message(.provider, .key_env.as_deref(), *.status, .detail))]
    Auth { provider: String, key_env: Option<String>, status: u16, detail: String },

    #[error(
        "{url} answered 404 Not Found for model `{model}`: {detail}; check the model name and \
         the provider's base_url"
    )]
    NotFound { model: String, url: String, detail: String },

    #[error(
        "{provider} is rate limiting requests (429) and still was after {attempts} attempts: \
         {detail}; wait a while or check your plan's limits"
    )]
    RateLimited { provider: String, attempts: u32, detail: String },

    #[error(
        "{provider} failed with {status} after {attempts} attempts: {detail}; the service may \
         be down, try again later"
    )]
    Server { provider: String, status: u16, attempts: u32, detail: String },

    #[error(
        "the conversation no longer fits the model's context window: {detail}; compact the \
         conversation or use a model with a larger window"
    )]
    ContextOverflow { detail: String },

    #[error("{provider} rejected the request ({status}): {detail}")]
    Rejected { provider: String, status: u16, detail: String },

    #[error(
        "the model sent nothing for {}s; the stream was abandoned (for a slow model, raise \
         `idle_timeout` in [provider.{provider}], in seconds)", .after.as_secs_f64()
    )]
    IdleTimeout { provider: String, after: Duration },

    #[error(
        "the response stream ended before its end marker ({terminator}); the answer is \
         incomplete, try again"
    )]
    StreamTruncated { terminator: &'static str },

    #[error(
        "the model's response passed {} MiB without ending; the stream was abandoned (the \
         server may be looping)", .limit / (1024 * 1024)
    )]
    ResponseTooLarge { limit: u64 },

    #[error("{provider} reported an error mid-stream: {message}")]
    Provider { provider: String, code: Option<String>, message: String },

    #[error("{provider} sent a chunk that could not be read: {detail}")]
    Malformed { provider: String, detail: String },

    #[error("the request was cancelled")]
    Cancelled,

    #[error("could not talk to {url}: {detail}; check the network and the provider's base_url")]
    Http { url: String, detail: String },
}

fn auth_message(provider: &str, key_env: Option<&str>, status: u16, detail: &str) -> String {
    match key_env {
        Some(env) => format!(
            "the key in ${env} was refused by {provider} ({status}): {detail}; check that ${env} \
             holds a valid key for this provider"
        ),
        None => format!(
            "{provider} refused the request ({status}) and no API key is configured for it: \
             {detail}; set `api_key_env` for this provider to the variable holding its key"
        ),
    }
}

/// Who was being asked, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub provider: String,
    pub key_env: Option<String>,
    pub model: String,
    pub url: String,
}

/// A non-success HTTP status, before retries are decided.
#[derive(Debug, Clone)]
pub(crate) struct HttpFailure {
    pub status: u16,
    pub detail: String,
    pub overflow: bool,
}

impl HttpFailure {
    pub fn from_body(status: u16, body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body);
        let json: Option<Value> = serde_json::from_str(&text).ok();
        let detail = json
            .as_ref()
            .and_then(error_message)
            .unwrap_or_else(|| shorten(text.trim()).to_owned());
        let detail = if detail.is_empty() { "no details given".to_owned() } else { detail };
        let overflow =
            status == 413 || json.as_ref().is_some_and(is_overflow_json) || is_overflow_text(&text);
        Self { status, detail, overflow }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self.status, 408 | 409 | 429 | 500..=599) && !self.overflow
    }

    /// The error to report once no more retries will be made.
    pub fn into_error(self, target: &Target, attempts: u32) -> LlmError {
        let HttpFailure { status, detail, overflow } = self;
        let provider = target.provider.clone();
        if overflow {
            return LlmError::ContextOverflow { detail };
        }
        match status {
            401 | 403 => {
                LlmError::Auth { provider, key_env: target.key_env.clone(), status, detail }
            }
            404 => {
                LlmError::NotFound { model: target.model.clone(), url: target.url.clone(), detail }
            }
            429 => LlmError::RateLimited { provider, attempts, detail },
            500..=599 | 408 | 409 => LlmError::Server { provider, status, attempts, detail },
            _ => LlmError::Rejected { provider, status, detail },
        }
    }
}

/// The human message in an error body, in any of the shapes providers use:
/// `{"error": {"message": …}}` (OpenAI and compatibles, Anthropic), `{"error": "…"}`
/// (Ollama), `{"message": …}` or `{"detail": …}`.
pub(crate) fn error_message(json: &Value) -> Option<String> {
    let error = json.get("error").unwrap_or(json);
    let message = match error {
        Value::String(text) => Some(text.clone()),
        Value::Object(map) => ["message", "detail"]
            .iter()
            .find_map(|key| map.get(*key).and_then(Value::as_str).map(str::to_owned)),
        _ => None,
    }?;
    let code = error
        .get("code")
        .and_then(|code| {
            code.as_str().map(str::to_owned).or_else(|| code.as_i64().map(|n| n.to_string()))
        })
        .or_else(|| error.get("type").and_then(Value::as_str).map(str::to_owned));
    Some(match code {
        Some(code) if !message.contains(&code) => format!("{} ({code})", shorten(&message)),
        _ => shorten(&message).to_owned(),
    })
}

/// Whether an error object says the prompt was too long: OpenAI's and vLLM's
/// `context_length_exceeded`, llama.cpp's `exceed_context_size_error`, or a message in
/// any provider's words.
pub(crate) fn is_overflow_json(json: &Value) -> bool {
    let error = json.get("error").unwrap_or(json);
    let field = |key: &str| error.get(key).and_then(Value::as_str).unwrap_or_default();
    ["context_length_exceeded", "exceed_context_size_error", "string_above_max_length"]
        .iter()
        .any(|code| field("code") == *code || field("type") == *code)
        || is_overflow_text(field("message"))
}

pub(crate) fn is_overflow_text(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    [
        "context_length_exceeded",
        "maximum context length",
        "context length exceeded",
        "context window",
        "prompt is too long",
        "exceeds the available context size",
        "exceed_context_size_error",
        "input is too long",
        "too many tokens",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Keeps error details to a line or two; bodies can be whole HTML pages.
pub(crate) fn shorten(text: &str) -> &str {
    const LIMIT: usize = 300;
    if text.len() <= LIMIT {
        return text;
    }
    let mut end = LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            provider: "openai".into(),
            key_env: Some("OPENAI_API_KEY".into()),
            model: "gpt-x".into(),
            url: "http://x/v1/responses".into(),
        }
    }

    #[test]
    fn overflow_bodies_of_each_provider_are_recognised() {
        let bodies = [
            (
                400,
                r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
            ),
            (
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"}}"#,
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9000,"n_ctx":8192}}"#,
            ),
            (
                400,
                r#"{"object":"error","message":"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens.","type":"BadRequestError","code":400}"#,
            ),
            (
                413,
                r#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#,
            ),
        ];
        for (status, body) in bodies {
            let failure = HttpFailure::from_body(status, body.as_bytes());
            assert!(failure.overflow, "{body}");
            assert!(!failure.is_retryable());
            assert!(matches!(failure.into_error(&target(), 1), LlmError::ContextOverflow { .. }));
        }
    }

    #[test]
    fn auth_names_the_variable() {
        let failure = HttpFailure::from_body(401, br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#);
        let err = failure.into_error(&target(), 1);
        let text = err.to_string();
        assert!(text.starts_with("the key in $OPENAI_API_KEY was refused"), "{text}");
        assert!(text.contains("Incorrect API key provided (invalid_api_key)"), "{text}");
    }

    #[test]
    fn plain_text_bodies_are_kept_short() {
        let body = "x".repeat(5000);
        let failure = HttpFailure::from_body(502, body.as_bytes());
        assert_eq!(failure.detail.len(), 300);
        assert!(failure.is_retryable());
    }
}
