//! cairn: a terminal coding agent whose every step is a git commit.
//!
//! The library holds all the logic; `src/main.rs` only parses arguments and maps errors
//! to exit codes. Dependencies point one way: `cli → agent → {checkpoint, llm, memory}`.
//! `checkpoint` knows nothing of models and `llm` nothing of git.

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
pub mod secrets;
pub mod text;
pub mod title;
pub mod transcript;
