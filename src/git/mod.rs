//! The git layer: what cairn reads from and writes to a repository, checked at the
//! boundary. Checkpoints, memory and the history operations all write through it.
//!
//! - [`path`]: the only way a tree entry's name becomes a path in the workspace.
//! - [`objects`]: new objects reach the repository as one durable pack per operation.
//! - [`pack`]: the pack and index format cairn writes, and merges by copying entries.
//! - [`refs`]: every ref move is a compare-and-swap with a reflog entry, durable first.
//! - [`temp`]: crash-safe temporary files, named after their writer so a killed
//!   process's leftovers can be swept.

mod error;
pub mod objects;
mod pack;
pub mod path;
pub mod refs;
pub mod temp;

pub use error::{BoxError, Error, Result};
pub(crate) use error::{Context, IoContext};
