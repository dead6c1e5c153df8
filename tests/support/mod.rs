//! Shared helpers for the integration tests: temporary repositories, running the binary,
//! the mock model server.
#![allow(dead_code)]

pub mod mock_model;
