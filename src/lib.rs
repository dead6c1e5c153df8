//! cairn: a terminal coding agent whose every step is a git commit.
//!
//! The library holds all the logic; `src/main.rs` only calls [`cli::main`]. Modules are
//! layers and a layer uses only those below it: `cli → hooks → agent → {mcp, history}`,
//! `history → {checkpoint, memory}`, `checkpoint → transcript → llm`, with `git` and
//! `config` under the domain layers and `text`, `secrets`, `title` as leaves.
//! ARCHITECTURE.md has the table; `tests/it/layers.rs` enforces it.

pub mod agent;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod git;
pub mod history;
pub mod hooks;
pub mod llm;
pub mod mcp;
pub mod memory;
pub mod sandbox;
pub mod secrets;
pub mod text;
pub mod title;
pub mod transcript;
