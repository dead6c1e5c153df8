//! The agent: for now only the tools it offers the model.

pub mod tools;
