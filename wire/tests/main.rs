//! The wire crate's tests, one binary: the contract's exact JSON (MQTT and enrollment),
//! zstd framing, and the packed payload (version 2).

mod compression;
mod enroll;
mod golden;
mod packed;
