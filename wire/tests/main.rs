//! The wire crate's tests, one binary: the contract's exact JSON, and zstd framing.

mod compression;
mod golden;
