//! One integration test binary (so the suite links once), a module per area.

mod addresses;
mod checkpoint;
mod environments;
mod rewind;
mod snapshot;
#[path = "../support/mod.rs"]
mod support;
mod tools;
