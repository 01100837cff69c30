//! The boundary between the agent and its device collectors.
//!
//! A collector owns one device (or one bus): it reads points on its own schedule and hands
//! every reading, good or bad, to a [`SampleSink`]. Collectors never touch MQTT or the
//! outbox and never wait on the network beyond their own device; they stop when the
//! context's cancellation token fires.
//!
//! Parts: [`Collector`] and [`CollectorContext`] ([`collector`]), the point addressing
//! types that configuration is parsed into ([`point`]), [`clock`] for timestamps, and
//! [`failure_log`], the one place a device's failures are logged (on change of state, then
//! summarized at intervals: no log storms from a device that keeps failing).
//!
//! Shared by the polling protocols: [`schedule`] (the poll loop on a fixed grid),
//! [`decode`](mod@decode) (16-bit registers and words to values, with `bit = N`), and
//! [`plugin`], the traits through which a protocol crate plugs into the agent and owns its
//! configuration, its `check` lines and its `probe`.

pub mod clock;
pub mod collector;
pub mod decode;
pub mod failure_log;
pub mod plugin;
pub mod point;
pub mod schedule;
pub mod stats;
#[cfg(feature = "testing")]
pub mod testing;

pub use collector::{BoxFuture, Collector, CollectorContext, SampleSink, SinkClosed};
pub use failure_log::{FailureLog, Span};
pub use fieldlink_wire::Backoff;
pub use point::{Area, DataType, WordOrder};
pub use stats::{DeviceStats, LastError};
