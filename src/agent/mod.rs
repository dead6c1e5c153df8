//! The agent: the loop that talks to a model, runs tools, and records every step.

pub mod instructions;
pub mod tools;
pub mod watch;
