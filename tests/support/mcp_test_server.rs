//! A tiny MCP server for cairn's tests: newline-delimited JSON-RPC 2.0 over stdin and
//! stdout, written by hand so the tests depend on nothing but this repository.
//!
//! Built as the example `mcp_test_server` (`cargo test` builds examples; a test finds it
//! in `target/<profile>/examples/`, next to the `cairn` binary's directory).
//!
//! Tools: `echo {text}`, `fail` (an `isError` result), `crash` (exits without answering),
//! `write {path, content}` (writes a file in its working directory), `env {name}` (a
//! variable's value), `connect {port}` (a TCP connection to 127.0.0.1), `sees {pid}`
//! (whether `/proc/<pid>` exists for it) and `dotted.name` (a name models do not accept
//! as it is). Arguments it does not know are ignored, so tests can tag its command line.
//! With `--fail-at-start` it writes to stderr and exits at once; with `--ignore-eof` it
//! keeps running after its stdin closes, until a signal stops it. If `MCP_TEST_COUNTER`
//! names a file, each start appends `started <pid>` to it, so tests can count restarts
//! and find the processes.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fixture fails loudly")]

use std::io::{BufRead, Write};

use serde_json::{Value, json};

fn main() {
    if std::env::args().any(|arg| arg == "--fail-at-start") {
        eprintln!("test server: missing API token, giving up");
        std::process::exit(1);
    }
    if let Ok(counter) = std::env::var("MCP_TEST_COUNTER") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(counter)
            .expect("open the counter file");
        writeln!(file, "started {}", std::process::id()).expect("count a start");
    }
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        // Notifications (no id) need no answer.
        let Some(id) = message.get("id").cloned() else { continue };
        let method = message["method"].as_str().unwrap_or_default();
        let reply = match method {
            "initialize" => json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": message["params"]["protocolVersion"].as_str().unwrap_or("2025-06-18"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "cairn-test-server", "version": "1.0.0"}
            }}),
            "ping" => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
            "tools/list" => json!({"jsonrpc": "2.0", "id": id, "result": {"tools": tools()}}),
            "tools/call" => match call(&message["params"]) {
                Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
                Err(message) => {
                    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": message}})
                }
            },
            other => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": format!("no method {other}")}})
            }
        };
        writeln!(stdout, "{reply}").expect("write a reply");
        stdout.flush().expect("flush");
    }
    if std::env::args().any(|arg| arg == "--ignore-eof") {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }
}

fn tools() -> Value {
    let object = |properties: Value, required: Value| json!({"type": "object", "properties": properties, "required": required});
    json!([
        {"name": "echo", "description": "Echo the text back.\nSecond line.",
         "inputSchema": object(json!({"text": {"type": "string"}}), json!(["text"]))},
        {"name": "fail", "description": "Always fails.", "inputSchema": object(json!({}), json!([]))},
        {"name": "crash", "description": "Exits without answering.", "inputSchema": object(json!({}), json!([]))},
        {"name": "write", "description": "Write a file.",
         "inputSchema": object(json!({"path": {"type": "string"}, "content": {"type": "string"}}), json!(["path", "content"]))},
        {"name": "env", "description": "A variable's value.",
         "inputSchema": object(json!({"name": {"type": "string"}}), json!(["name"]))},
        {"name": "connect", "description": "Connect to a port on 127.0.0.1.",
         "inputSchema": object(json!({"port": {"type": "integer"}}), json!(["port"]))},
        {"name": "sees", "description": "Whether a process is visible.",
         "inputSchema": object(json!({"pid": {"type": "integer"}}), json!(["pid"]))},
        {"name": "dotted.name", "description": "A name with a dot.", "inputSchema": object(json!({}), json!([]))}
    ])
}

fn text(text: String, is_error: bool) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": is_error})
}

fn call(params: &Value) -> Result<Value, String> {
    let arguments = &params["arguments"];
    let string = |key: &str| arguments[key].as_str().unwrap_or_default().to_string();
    match params["name"].as_str().unwrap_or_default() {
        "echo" => Ok(text(format!("echo: {}", string("text")), false)),
        "fail" => Ok(text("it failed on purpose".into(), true)),
        "crash" => {
            eprintln!("test server: crashing on purpose");
            std::process::exit(3);
        }
        "write" => {
            std::fs::write(string("path"), string("content")).map_err(|err| err.to_string())?;
            Ok(text(format!("wrote {}", string("path")), false))
        }
        "env" => {
            Ok(text(std::env::var(string("name")).unwrap_or_else(|_| "(unset)".into()), false))
        }
        "connect" => {
            let port = arguments["port"].as_u64().unwrap_or_default() as u16;
            std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|err| err.to_string())?;
            Ok(text("connected".into(), false))
        }
        "sees" => {
            let pid = arguments["pid"].as_u64().unwrap_or_default();
            let seen = std::path::Path::new(&format!("/proc/{pid}")).exists();
            Ok(text(if seen { "yes" } else { "no" }.into(), false))
        }
        "dotted.name" => Ok(text("dotted".into(), false)),
        other => Err(format!("no tool {other}")),
    }
}
