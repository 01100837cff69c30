//! fieldlink: the gateway agent. It reads machines through collectors, cuts their samples
//! into batches, keeps every batch in a durable local outbox, and publishes them over MQTT,
//! deleting a batch only once the broker has acknowledged it.
//!
//! The pipeline, each stage one owned task with a bounded channel or a store in between:
//!
//! ```text
//! collectors ──(mpsc, bounded)──▶ batcher ──▶ outbox (redb) ◀── publisher ──▶ broker
//! ```
//!
//! Parts: [`config`] (TOML into a validated model), [`collectors`] (devices into
//! collectors), [`report`] (report by exception), [`batcher`], [`outbox`] (the shared
//! store), [`publisher`] (MQTT), [`check`] (what `fieldlink check` prints) and [`run`],
//! which composes them and shuts them down in order.

pub mod batcher;
pub mod check;
pub mod collectors;
pub mod config;
pub mod outbox;
pub mod publisher;
pub mod report;
mod run;

pub use run::{RunError, run};
