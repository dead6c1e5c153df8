//! Operations on recorded sessions: rewind, share (push and fetch), land, blame, export
//! and gc. Each works on what the checkpoint and memory layers recorded; none records a
//! step itself.

pub mod agent_trace;
pub mod blame;
pub mod export;
mod gc;
pub mod land;
mod rewind;
pub mod share;

pub use gc::{GcReport, RemovedArchive, gc, parse_keep};
pub use rewind::{RewindError, Rewound, rewind};
