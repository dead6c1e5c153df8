//! The mock model server for tests and benchmarks: scripted answers on 127.0.0.1, so tests
//! never touch the network. It speaks real HTTP, so the real client and agent loop run
//! against it unchanged.
//!
//! [`ScriptedModel::start`] listens on a free port and answers each request with the next
//! [`Reply`] of its script, in order, whatever the path: a status, headers (such as
//! `Retry-After`), and a body sent in the chunks you choose, with optional delays, ending
//! cleanly, breaking the connection mid-body, or hanging until the client gives up. Every
//! request is recorded ([`ScriptedModel::requests`]) with its method, path, headers and JSON
//! body, so tests can check what a client sent. When the script runs out, the server
//! answers 500 with a body saying so, which makes an unexpected extra request fail loudly.
//!
//! For multi-turn agent tests, script one reply per model call: [`Reply::chat_text`] and
//! [`Reply::chat_tool_calls`] build openai-chat streams without fixture files, and
//! [`ScriptedModel::push`] adds replies while a test runs.
//!
//! ```ignore
//! let model = ScriptedModel::start([
//!     Reply::status(429, "slow down").header("retry-after", "1"),
//!     Reply::chat_text("hello").chunked_every(7),
//! ])
//! .await?;
//! // point a provider's base_url at model.base_url(), run, then:
//! assert_eq!(model.requests().len(), 2);
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How a reply's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The HTTP body ends properly (whatever the SSE inside says).
    Complete,
    /// The connection is dropped before the HTTP body ends, as when a proxy dies.
    Abort,
    /// Nothing more is sent and the connection stays open until the client closes it.
    Hang,
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub chunks: Vec<Vec<u8>>,
    /// Waited before the headers are sent.
    pub initial_delay: Duration,
    /// Waited before each chunk after the first.
    pub chunk_delay: Duration,
    /// How many more times the last chunk is sent after all of them (`u64::MAX`: until
    /// the client goes away), for huge and endless streams that take no memory here.
    pub repeat_last: u64,
    pub end: End,
}

impl Reply {
    /// A 200 event stream with `body` as one chunk.
    pub fn sse(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            chunks: vec![body.into()],
            initial_delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            repeat_last: 0,
            end: End::Complete,
        }
    }

    /// A non-streaming answer with a status and a body (JSON or text).
    pub fn status(status: u16, body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        let content_type =
            if body.first() == Some(&b'{') { "application/json" } else { "text/plain" };
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            ..Self::sse(body)
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, value: Value) -> Self {
        Self::status(status, value.to_string())
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Re-splits the body into pieces of `size` bytes, which lands boundaries inside
    /// lines, JSON strings and multi-byte characters.
    pub fn chunked_every(mut self, size: usize) -> Self {
        let body = self.chunks.concat();
        self.chunks = body.chunks(size.max(1)).map(<[u8]>::to_vec).collect();
        self
    }

    /// Sends the body in exactly these pieces.
    pub fn with_chunks(mut self, chunks: Vec<Vec<u8>>) -> Self {
        self.chunks = chunks;
        self
    }

    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    pub fn chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// Sends the last chunk `times` more times after the body (`u64::MAX`: endlessly).
    pub fn repeat_last(mut self, times: u64) -> Self {
        self.repeat_last = times;
        self
    }

    /// Sends only the first `bytes` of the body, then drops the connection mid-body.
    pub fn abort_after(mut self, bytes: usize) -> Self {
        let body = self.chunks.concat();
        self.chunks = vec![body[..bytes.min(body.len())].to_vec()];
        self.end = End::Abort;
        self
    }

    /// Sends the body (if any), then keeps the connection open and silent.
    pub fn hang(mut self) -> Self {
        self.end = End::Hang;
        self
    }

    /// An openai-chat stream answering `text`, with usage and `[DONE]`.
    pub fn chat_text(text: &str) -> Self {
        Self::sse(chat_stream(&[json!({"role": "assistant", "content": text})], "stop", 10))
    }

    /// An openai-chat stream making these tool calls, given as `(id, name, arguments)`.
    pub fn chat_tool_calls(calls: &[(&str, &str, Value)]) -> Self {
        Self::chat_tool_calls_sized(calls, 10)
    }

    /// Like [`Reply::chat_tool_calls`], reporting the request as `prompt_tokens` long (to
    /// drive compaction the way a real provider's usage does).
    pub fn chat_tool_calls_sized(calls: &[(&str, &str, Value)], prompt_tokens: u64) -> Self {
        let deltas: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(index, (id, name, arguments))| {
                json!({"tool_calls": [{
                    "index": index,
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments.to_string()},
                }]})
            })
            .collect();
        Self::sse(chat_stream(&deltas, "tool_calls", prompt_tokens))
    }
}

/// The tokens an Anthropic reply reports: plain input, cache reads, cache writes, output.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnthropicUsage {
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub output: u64,
}

impl Reply {
    /// An Anthropic Messages stream answering `text`, reporting `usage`.
    pub fn anthropic_text(text: &str, usage: AnthropicUsage) -> Self {
        let block =
            (json!({"type": "text", "text": ""}), json!({"type": "text_delta", "text": text}));
        Self::sse(anthropic_stream(&[block], "end_turn", usage))
    }

    /// An Anthropic Messages stream making these tool calls, given as `(id, name, arguments)`.
    pub fn anthropic_tool_calls(calls: &[(&str, &str, Value)], usage: AnthropicUsage) -> Self {
        let blocks: Vec<(Value, Value)> = calls
            .iter()
            .map(|(id, name, arguments)| {
                (
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    json!({"type": "input_json_delta", "partial_json": arguments.to_string()}),
                )
            })
            .collect();
        Self::sse(anthropic_stream(&blocks, "tool_use", usage))
    }
}

/// Content blocks, each as its `content_block_start` block and its one delta.
fn anthropic_stream(blocks: &[(Value, Value)], stop_reason: &str, usage: AnthropicUsage) -> String {
    let event =
        |data: Value| format!("event: {}\ndata: {data}\n\n", data["type"].as_str().unwrap());
    let mut body = event(json!({"type": "message_start", "message": {
        "id": "msg_mock", "type": "message", "role": "assistant", "model": "mock", "content": [],
        "usage": {
            "input_tokens": usage.input,
            "cache_read_input_tokens": usage.cache_read,
            "cache_creation_input_tokens": usage.cache_write,
            "output_tokens": 1,
        },
    }}));
    for (index, (start, delta)) in blocks.iter().enumerate() {
        body +=
            &event(json!({"type": "content_block_start", "index": index, "content_block": start}));
        body += &event(json!({"type": "content_block_delta", "index": index, "delta": delta}));
        body += &event(json!({"type": "content_block_stop", "index": index}));
    }
    body += &event(json!({
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        "usage": {"output_tokens": usage.output},
    }));
    body + &event(json!({"type": "message_stop"}))
}

fn chat_stream(deltas: &[Value], finish: &str, prompt_tokens: u64) -> String {
    let chunk = |choices: Value, usage: Value| {
        let chunk = json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "mock",
            "choices": choices,
            "usage": usage,
        });
        format!("data: {chunk}\n\n")
    };
    let mut body = String::new();
    for delta in deltas {
        body += &chunk(json!([{"index": 0, "delta": delta, "finish_reason": null}]), Value::Null);
    }
    body += &chunk(json!([{"index": 0, "delta": {}, "finish_reason": finish}]), Value::Null);
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": 5, "total_tokens": prompt_tokens + 5});
    body += &chunk(json!([]), usage);
    body + "data: [DONE]\n\n"
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON, or `Value::Null` when it is not JSON.
    pub body: Value,
    /// When the whole request had arrived (benchmarks subtract the model's own time).
    pub received_at: Instant,
    /// When the last byte of a complete reply was sent; `None` for replies that abort or
    /// hang, and while the reply is still going out.
    pub replied_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    requests: Vec<RecordedRequest>,
}

/// The running server; stops when dropped.
pub struct ScriptedModel {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    hangs_closed: Arc<AtomicUsize>,
    bytes_sent: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl ScriptedModel {
    /// Listens on a free port of 127.0.0.1 and serves `script`, one reply per request.
    pub async fn start(script: impl IntoIterator<Item = Reply>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            script: script.into_iter().collect(),
            requests: Vec::new(),
        }));
        let hangs_closed = Arc::new(AtomicUsize::new(0));
        let bytes_sent = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let counters =
                Counters { hangs_closed: hangs_closed.clone(), bytes_sent: bytes_sent.clone() };
            let state = state.clone();
            async move {
                while let Ok((socket, _)) = listener.accept().await {
                    tokio::spawn(serve(socket, state.clone(), counters.clone()));
                }
            }
        });
        Ok(Self { addr, state, hangs_closed, bytes_sent, task })
    }

    /// The API root to configure as a provider's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Adds a reply to the end of the script.
    pub fn push(&self, reply: Reply) {
        lock(&self.state).script.push_back(reply);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// How many hanging replies saw their client close the connection.
    pub fn hangs_closed(&self) -> usize {
        self.hangs_closed.load(Ordering::SeqCst)
    }

    /// Body bytes the clients have taken so far, over all replies (a client that stops
    /// reading stops this too, within the sockets' buffers).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::SeqCst)
    }
}

/// The state stays usable even if a holder panicked: it is only a script and a log.
fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Counters {
    hangs_closed: Arc<AtomicUsize>,
    bytes_sent: Arc<AtomicU64>,
}

async fn serve(mut socket: TcpStream, state: Arc<Mutex<State>>, counters: Counters) {
    // Each chunk should leave at once, as a real server flushing an event would.
    let _ = socket.set_nodelay(true);
    let Some(request) = read_request(&mut socket).await else { return };
    let (number, reply) = {
        let mut state = lock(&state);
        state.requests.push(request);
        (state.requests.len() - 1, state.script.pop_front())
    };
    let reply =
        reply.unwrap_or_else(|| Reply::status(500, "mock model: the script has no reply left"));
    tokio::time::sleep(reply.initial_delay).await;
    let mut head = format!("HTTP/1.1 {} Mock\r\n", reply.status);
    for (name, value) in &reply.headers {
        head += &format!("{name}: {value}\r\n");
    }
    head += "transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let repeats = reply.chunks.last().into_iter().cycle().take_while({
        let mut left = reply.repeat_last;
        move |_| {
            let more = left > 0;
            left = left.saturating_sub(1);
            more
        }
    });
    for (i, chunk) in reply.chunks.iter().chain(repeats).enumerate() {
        if i > 0 && !reply.chunk_delay.is_zero() {
            tokio::time::sleep(reply.chunk_delay).await;
        }
        if chunk.is_empty() {
            continue;
        }
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(chunk);
        framed.extend_from_slice(b"\r\n");
        if socket.write_all(&framed).await.is_err() || socket.flush().await.is_err() {
            return;
        }
        counters.bytes_sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
    }
    match reply.end {
        End::Complete => {
            let _ = socket.write_all(b"0\r\n\r\n").await;
            lock(&state).requests[number].replied_at = Some(Instant::now());
            let _ = socket.shutdown().await;
        }
        End::Abort => {}
        End::Hang => {
            let mut sink = [0u8; 1024];
            while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
            counters.hangs_closed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn read_request(socket: &mut TcpStream) -> Option<RecordedRequest> {
    let mut buffer = Vec::new();
    let mut piece = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break at;
        }
        let n = socket.read(&mut piece).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&piece[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|n| n.parse().ok()).unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut piece).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&piece[..n]);
    }
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Some(RecordedRequest {
        method,
        path,
        headers,
        body,
        received_at: Instant::now(),
        replied_at: None,
    })
}

/// The scripted server under the name the tests use.
pub type MockModel = ScriptedModel;

/// Starts a scripted server, panicking if 127.0.0.1 cannot be bound.
pub async fn start(script: impl IntoIterator<Item = Reply>) -> MockModel {
    ScriptedModel::start(script).await.expect("bind 127.0.0.1:0")
}

/// A 200 event stream from `fixtures/sse/<provider>/<case>.sse`.
pub fn fixture_reply(provider: &str, case: &str) -> Reply {
    Reply::sse(fixture(provider, case))
}

/// The bytes of `fixtures/sse/<provider>/<case>.sse`.
pub fn fixture(provider: &str, case: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/sse")
        .join(provider)
        .join(format!("{case}.sse"));
    std::fs::read(&path).unwrap_or_else(|err| panic!("fixture {}: {err}", path.display()))
}

/// A base URL on 127.0.0.1 where nothing listens.
pub async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{addr}/v1")
}
