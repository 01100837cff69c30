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
//! store), [`publisher`] (MQTT), [`supervisor`] (running collectors, reloads),
//! [`telemetry`], [`status`], [`metrics`] and [`notify`] (what the outside sees), [`check`]
//! (what `fieldlink check` prints), [`http_client`] (the command line's HTTP requests), [`memory`] (freed heap given back), [`run`],
//! which composes them and stops them in order, and [`cli`], the `fieldlink` command.

pub mod batcher;
pub mod browse;
pub mod check;
pub mod cli;
pub mod collectors;
pub mod enroll;
pub mod http_client;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod opcua_trust;
pub mod outbox;
pub mod probe;
pub mod publisher;
pub mod remote_config;
pub mod report;
mod run;
pub mod state_file;
pub mod status;
pub mod supervisor;
pub mod telemetry;
pub mod templates;

pub use fieldlink_config as config;
pub use fieldlink_config::plugins;
pub use run::{Controls, RunError, meta, run, run_with};
