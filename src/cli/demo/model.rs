//! The demo's model: canned openai-chat streams served over real HTTP on 127.0.0.1, so the
//! real client and agent loop run unchanged with no key and no network. Each request gets
//! the next answer; once the answers run out the server says so with a 500.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One canned answer of the model.
pub enum Answer {
    /// A call of one tool, with its arguments.
    ToolCall { id: &'static str, name: &'static str, arguments: Value },
    /// A closing text, streamed in small pieces so it reads as typed.
    Text(&'static str),
}

/// Streamed text arrives in pieces of this many bytes, this far apart.
const TEXT_PIECE: usize = 16;
const TEXT_PACE: Duration = Duration::from_millis(15);

/// The server; it stops when dropped.
pub struct DemoModel {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl DemoModel {
    pub async fn start(answers: Vec<Answer>) -> std::io::Result<DemoModel> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, Arc::clone(&answers)));
            }
        });
        Ok(DemoModel { addr, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for DemoModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut socket: TcpStream, answers: Arc<Mutex<VecDeque<Answer>>>) {
    let _ = socket.set_nodelay(true);
    if read_request(&mut socket).await.is_err() {
        return;
    }
    let answer = answers.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
    let (status, pieces) = match answer {
        Some(Answer::ToolCall { id, name, arguments }) => {
            let delta = json!({"tool_calls": [{
                "index": 0,
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()},
            }]});
            (200, vec![stream(&delta, "tool_calls")])
        }
        Some(Answer::Text(text)) => {
            let body = stream(&json!({"role": "assistant", "content": text}), "stop");
            (200, body.chunks(TEXT_PIECE).map(<[u8]>::to_vec).collect())
        }
        None => (500, vec![b"the demo's script has no answer left".to_vec()]),
    };
    let length: usize = pieces.iter().map(Vec::len).sum();
    let content_type = if status == 200 { "text/event-stream" } else { "text/plain" };
    let head = format!(
        "HTTP/1.1 {status} Demo\r\ncontent-type: {content_type}\r\ncontent-length: {length}\r\n\
         connection: close\r\n\r\n"
    );
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(TEXT_PACE).await;
        }
        if socket.write_all(piece).await.is_err() {
            return;
        }
    }
    let _ = socket.shutdown().await;
}

/// Reads one request's head and body; what it asks does not change the answer.
async fn read_request(socket: &mut TcpStream) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    let mut piece = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
        let n = socket.read(&mut piece).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&piece[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buffer.len() - head_end;
    while body < length {
        let n = socket.read(&mut piece).await?;
        if n == 0 {
            break;
        }
        body += n;
    }
    Ok(())
}

/// An openai-chat event stream with one delta, its finish reason, usage and `[DONE]`.
fn stream(delta: &Value, finish: &str) -> Vec<u8> {
    let event = |choices: Value, usage: Value| {
        let chunk = json!({
            "id": "chatcmpl-demo",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "demo",
            "choices": choices,
            "usage": usage,
        });
        format!("data: {chunk}\n\n")
    };
    let usage = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});
    let body = event(json!([{"index": 0, "delta": delta, "finish_reason": null}]), Value::Null)
        + &event(json!([{"index": 0, "delta": {}, "finish_reason": finish}]), Value::Null)
        + &event(json!([]), usage)
        + "data: [DONE]\n\n";
    body.into_bytes()
}
