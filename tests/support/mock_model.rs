//! The scripted model server (`cairn::llm::scripted`) plus what only tests need: the
//! recorded SSE fixtures and an address where nothing listens.

use std::path::Path;

pub use cairn::llm::scripted::{Reply, ScriptedModel};

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
