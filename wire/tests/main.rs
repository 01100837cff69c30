//! The wire crate's tests, one binary: the contract's exact JSON (MQTT and enrollment),
//! and zstd framing.

mod compression;
mod enroll;
mod golden;
