//! The HTTP side: sending a request with retries, reading its SSE stream with an idle
//! timeout, and stopping at once when cancelled.
//!
//! Each call runs on its own tokio task that feeds a bounded channel, so the agent reads
//! events at its own pace and dropping the [`ModelStream`] (or cancelling its token)
//! aborts the request: the task is stopped and the connection closed.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::error::{HttpFailure, Target};
use super::retry::{RetryNotice, RetryPolicy, retry_after};
use super::sse::SseDecoder;
use super::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_OUTPUT_TOKENS, DEFAULT_MAX_RESPONSE_BYTES, Decode, LlmError,
    MaxTokensField, ProviderKind, Request, Response, StreamEvent, anthropic, openai_chat,
    openai_responses,
};

/// Everything needed to talk to one provider.
#[derive(Clone)]
pub struct ClientSettings {
    /// The provider's name in the configuration, for messages (`anthropic`, `local`).
    pub provider: String,
    pub kind: ProviderKind,
    /// The API root including its version segment, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// The environment variable the key came from, named in authentication errors.
    pub api_key_env: Option<String>,
    /// The key itself; never printed by `Debug`.
    pub api_key: Option<String>,
    /// Extra headers sent with every request (gateways, organisation ids).
    pub headers: Vec<(String, String)>,
    pub retry: RetryPolicy,
    /// How long the stream (or the wait for its first byte) may be silent.
    pub idle_timeout: Duration,
    /// How many bytes one response may stream before it is abandoned: a server that never
    /// ends (a loop, a proxy replaying) must not run or grow memory forever.
    pub max_response_bytes: u64,
    pub connect_timeout: Duration,
    /// Output tokens asked for per model call, unless the caller asks for fewer.
    pub max_output_tokens: u32,
    /// Which field of an `openai-chat` request carries the output limit.
    pub max_tokens_field: MaxTokensField,
    /// Whether to use the provider's prompt cache: Anthropic's cache breakpoints, OpenAI's
    /// `prompt_cache_key`. OpenAI caches a repeated prefix on its own either way.
    pub prompt_cache: bool,
    /// Whether `prompt_cache_key` goes to this server. By default only to OpenAI's own API
    /// (`https://api.openai.com/`): other OpenAI-compatible servers may refuse a field they
    /// do not know.
    pub send_prompt_cache_key: bool,
}

/// OpenAI's own API root, which takes `prompt_cache_key`.
const OPENAI_API: &str = "https://api.openai.com/";

impl ClientSettings {
    /// Settings with the default retry policy and timeouts.
    pub fn new(
        provider: impl Into<String>,
        kind: ProviderKind,
        base_url: impl Into<String>,
    ) -> Self {
        let base_url = base_url.into();
        Self {
            provider: provider.into(),
            kind,
            send_prompt_cache_key: base_url.starts_with(OPENAI_API),
            base_url,
            api_key_env: None,
            api_key: None,
            headers: Vec::new(),
            retry: RetryPolicy::default(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            connect_timeout: Duration::from_secs(10),
            max_output_tokens: DEFAULT_MAX_OUTPUT_TOKENS,
            max_tokens_field: MaxTokensField::MaxTokens,
            prompt_cache: true,
        }
    }

    /// The `prompt_cache_key` to send with `request`, if any.
    fn prompt_cache_key<'a>(&self, request: &'a Request) -> Option<&'a str> {
        let send = self.prompt_cache && self.send_prompt_cache_key;
        request.cache_key.as_deref().filter(|_| send)
    }

    fn idle_timeout_error(&self) -> LlmError {
        LlmError::IdleTimeout { provider: self.provider.clone(), after: self.idle_timeout }
    }
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSettings")
            .field("provider", &self.provider)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key_env", &self.api_key_env)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("headers", &self.headers.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .field("retry", &self.retry)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_output_tokens", &self.max_output_tokens)
            .field("max_tokens_field", &self.max_tokens_field)
            .field("prompt_cache", &self.prompt_cache)
            .field("send_prompt_cache_key", &self.send_prompt_cache_key)
            .finish()
    }
}

/// A client for one provider; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    settings: ClientSettings,
    http: reqwest::Client,
    headers: HeaderMap,
    url: String,
}

impl Client {
    pub fn new(settings: ClientSettings) -> Result<Self, LlmError> {
        let url =
            format!("{}{}", settings.base_url.trim_end_matches('/'), settings.kind.endpoint());
        let invalid = |detail: String| LlmError::Http { url: url.clone(), detail };
        let mut headers = HeaderMap::new();
        let mut add = |name: &str, value: &str| -> Result<(), LlmError> {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("`{name}` is not a valid header name")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("the value of header `{name}` is not valid")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
            Ok(())
        };
        add("accept", "text/event-stream")?;
        match (settings.kind, settings.api_key.as_deref()) {
            (ProviderKind::Anthropic, key) => {
                add("anthropic-version", anthropic::API_VERSION)?;
                if let Some(key) = key {
                    add("x-api-key", key)?;
                }
            }
            (_, Some(key)) => add("authorization", &format!("Bearer {key}"))?,
            (_, None) => {}
        }
        for (name, value) in &settings.headers {
            add(name, value)?;
        }
        let http = http_client(settings.connect_timeout).map_err(|err| invalid(err.to_string()))?;
        Ok(Self { settings, http, headers, url })
    }

    /// Output tokens to ask for per call: the provider's `max_output_tokens`.
    pub fn max_output_tokens(&self) -> u32 {
        self.settings.max_output_tokens
    }

    /// The full URL requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Starts a request and returns its events as they arrive. Must be called within a
    /// tokio runtime. Cancelling `cancel` (or dropping the stream) stops the request.
    pub fn stream(&self, request: &Request, cancel: CancellationToken) -> ModelStream {
        let settings = &self.settings;
        let cache_key = settings.prompt_cache_key(request);
        let body = match settings.kind {
            ProviderKind::OpenaiChat => {
                openai_chat::request_body(request, settings.max_tokens_field, cache_key)
            }
            ProviderKind::Anthropic => anthropic::request_body(request, settings.prompt_cache),
            ProviderKind::OpenaiResponses => openai_responses::request_body(request, cache_key),
        };
        let target = Target {
            provider: self.settings.provider.clone(),
            key_env: self.settings.api_key_env.clone(),
            model: request.model.clone(),
            url: self.url.clone(),
        };
        let cancel = cancel.child_token();
        let (tx, rx) = mpsc::channel(64);
        let call = Call { client: self.clone(), target, body, cancel: cancel.clone(), tx };
        tokio::spawn(call.run());
        ModelStream { rx, _stop_on_drop: cancel.drop_guard() }
    }
}

/// Asks an OpenAI-compatible server which models it serves (`GET {base_url}/models`),
/// The start of an error response's body: enough for any real error message, and a
/// server answering an error with an endless body cannot grow memory.
async fn error_body(mut response: reqwest::Response) -> Vec<u8> {
    const LIMIT: usize = 64 * 1024;
    let mut body = Vec::new();
    while body.len() < LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(LIMIT - body.len())])
            }
            _ => break,
        }
    }
    body
}

/// giving up after `timeout`. Used to detect a running Ollama.
pub async fn list_models(base_url: &str, timeout: Duration) -> Result<Vec<String>, LlmError> {
    let url = format!("{}/models", base_url.trim_end_matches('/'));
    let failed = |detail: String| LlmError::Http { url: url.clone(), detail };
    let http = http_client(timeout).map_err(|err| failed(err.to_string()))?;
    let response = http
        .get(&url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|err| failed(transport_detail(&err)))?;
    if !response.status().is_success() {
        return Err(failed(format!("status {}", response.status())));
    }
    let json: Value = response.json().await.map_err(|err| failed(err.to_string()))?;
    let models = json.get("data").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    Ok(models
        .iter()
        .filter_map(|model| model.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect())
}

fn http_client(connect_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    // reqwest is built without a bundled crypto provider; ring is installed once for the
    // process. An error only means one is installed already, which is what we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The events of one model call. Ends after [`StreamEvent::Finish`] or after an error.
#[derive(Debug)]
pub struct ModelStream {
    rx: mpsc::Receiver<Result<StreamEvent, LlmError>>,
    _stop_on_drop: DropGuard,
}

impl ModelStream {
    /// The next event, an error (after which the stream ends), or `None` at the end.
    pub async fn next(&mut self) -> Option<Result<StreamEvent, LlmError>> {
        self.rx.recv().await
    }

    /// Reads the whole stream into one [`Response`].
    pub async fn collect(self) -> Result<Response, LlmError> {
        self.collect_with(|_| {}).await
    }

    /// Reads the whole stream into one [`Response`], showing each event to `on_event`
    /// first (to print text as it arrives).
    pub async fn collect_with(
        mut self,
        mut on_event: impl FnMut(&StreamEvent),
    ) -> Result<Response, LlmError> {
        let mut response = Response::default();
        while let Some(event) = self.next().await {
            let event = event?;
            on_event(&event);
            response.apply(event);
        }
        if response.finish.is_none() {
            // The task ended without finishing or reporting why: it was cancelled.
            return Err(LlmError::Cancelled);
        }
        Ok(response)
    }
}

/// One model call on its own task.
struct Call {
    client: Client,
    target: Target,
    body: Value,
    cancel: CancellationToken,
    tx: mpsc::Sender<Result<StreamEvent, LlmError>>,
}

/// Why the task stopped early without an error worth sending: nobody is listening.
struct Gone;

impl Call {
    async fn run(self) {
        if let Err(Some(err)) = self.stream().await {
            let _ = self.tx.send(Err(err)).await;
        }
    }

    /// `Err(None)` means the receiver is gone; there is no one to tell.
    async fn stream(&self) -> Result<(), Option<LlmError>> {
        let mut response = self.connect().await?;
        let settings = &self.client.settings;
        let provider = settings.provider.as_str();
        let (mut decoder, terminator): (Box<dyn Decode>, &'static str) = match settings.kind {
            ProviderKind::OpenaiChat => {
                (Box::new(openai_chat::Decoder::new(provider)), openai_chat::TERMINATOR)
            }
            ProviderKind::Anthropic => {
                (Box::new(anthropic::Decoder::new(provider)), anthropic::TERMINATOR)
            }
            ProviderKind::OpenaiResponses => {
                let limit = self.body.get("max_output_tokens").and_then(Value::as_u64);
                (
                    Box::new(openai_responses::Decoder::new(provider, limit)),
                    openai_responses::TERMINATOR,
                )
            }
        };
        let mut sse = SseDecoder::default();
        let mut out = Vec::new();
        let mut received = 0u64;
        loop {
            let chunk = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(Some(LlmError::Cancelled)),
                chunk = tokio::time::timeout(settings.idle_timeout, response.chunk()) => chunk,
            };
            let events = match chunk {
                Err(_) => return Err(Some(settings.idle_timeout_error())),
                Ok(Err(err)) => {
                    return Err(Some(LlmError::Http {
                        url: self.target.url.clone(),
                        detail: format!(
                            "the connection broke mid-response: {}",
                            transport_detail(&err)
                        ),
                    }));
                }
                Ok(Ok(Some(bytes))) => {
                    received += bytes.len() as u64;
                    if received > settings.max_response_bytes {
                        return Err(Some(LlmError::ResponseTooLarge {
                            limit: settings.max_response_bytes,
                        }));
                    }
                    sse.feed(&bytes).map_err(|err| LlmError::Malformed {
                        provider: provider.to_owned(),
                        detail: err.to_string(),
                    })?
                }
                Ok(Ok(None)) => {
                    if let Some(event) = sse.finish() {
                        decoder.event(event, &mut out)?;
                    }
                    self.send_all(&mut out).await?;
                    if decoder.done() {
                        return Ok(());
                    }
                    return Err(Some(LlmError::StreamTruncated { terminator }));
                }
            };
            for event in events {
                decoder.event(event, &mut out)?;
                self.send_all(&mut out).await?;
                if decoder.done() {
                    return Ok(());
                }
            }
        }
    }

    async fn send_all(&self, out: &mut Vec<StreamEvent>) -> Result<(), Option<LlmError>> {
        for event in out.drain(..) {
            self.send(event).await.map_err(|Gone| None)?;
        }
        Ok(())
    }

    async fn send(&self, event: StreamEvent) -> Result<(), Gone> {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(Gone),
            sent = self.tx.send(Ok(event)) => sent.map_err(|_| Gone),
        }
    }

    /// Sends the request until it succeeds, fails for good, or runs out of attempts.
    async fn connect(&self) -> Result<reqwest::Response, Option<LlmError>> {
        let settings = &self.client.settings;
        let policy = settings.retry;
        let mut attempt = 1;
        loop {
            let request = self
                .client
                .http
                .post(&self.client.url)
                .headers(self.client.headers.clone())
                .json(&self.body);
            let sent = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(Some(LlmError::Cancelled)),
                sent = tokio::time::timeout(settings.idle_timeout, request.send()) => sent,
            };
            let (reason, asked, error) = match sent {
                Err(_) => return Err(Some(settings.idle_timeout_error())),
                Ok(Ok(response)) if response.status().is_success() => return Ok(response),
                Ok(Ok(response)) => {
                    let status = response.status();
                    let asked = retry_after(response.headers());
                    let body = tokio::select! {
                        biased;
                        () = self.cancel.cancelled() => return Err(Some(LlmError::Cancelled)),
                        body = tokio::time::timeout(settings.idle_timeout, error_body(response)) => body,
                    };
                    let body = body.unwrap_or_default();
                    let failure = HttpFailure::from_body(status.as_u16(), &body);
                    let retryable = failure.is_retryable();
                    let error = failure.into_error(&self.target, attempt);
                    if !retryable {
                        return Err(Some(error));
                    }
                    (status.to_string(), asked, error)
                }
                Ok(Err(err)) => {
                    let error = LlmError::Http {
                        url: self.target.url.clone(),
                        detail: transport_detail(&err),
                    };
                    if refused(&err) {
                        return Err(Some(error));
                    }
                    ("connection failed".to_owned(), None, error)
                }
            };
            let Some(delay) = policy.delay(attempt, asked) else {
                return Err(Some(error));
            };
            let notice = RetryNotice { attempt, max_attempts: policy.max_attempts, delay, reason };
            self.send(StreamEvent::Retry(notice)).await.map_err(|Gone| None)?;
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(Some(LlmError::Cancelled)),
                () = tokio::time::sleep(delay) => {}
            }
            attempt += 1;
        }
    }
}

/// A refused connection means nothing listens there; retrying would only delay the news.
fn refused(err: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = current.source();
    }
    false
}

/// reqwest's top-level message ("error sending request") hides the cause; show the chain.
fn transport_detail(err: &reqwest::Error) -> String {
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        source = cause.source();
    }
    detail
}
