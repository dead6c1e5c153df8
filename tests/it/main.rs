//! One integration test binary (so the suite links once), a module per area.

#[path = "../support/mod.rs"]
mod support;

mod config;
mod llm;
