//! One integration test binary (so the suite links once), a module per area.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

#[path = "../support/mod.rs"]
mod support;

mod addresses;
mod agent;
mod blame;
mod caching;
mod captured;
mod checkpoint;
mod cli;
mod concurrency;
mod config;
mod durability;
mod endings;
mod environments;
mod export;
mod gc;
mod git_state;
mod hooks;
mod hostile;
mod interactive;
mod keys;
mod land;
mod layers;
mod llm;
mod mcp;
mod memory;
mod reasoning;
mod redaction;
mod regressions;
mod rewind;
mod sandbox;
mod share;
mod snapshot;
mod terminal;
mod tools;
mod transcript;
mod trust;
mod untrusted;
mod watchman;
