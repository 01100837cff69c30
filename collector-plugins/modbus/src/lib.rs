//! Modbus TCP for fieldlink: read planning, decoding and the polling collector.
//!
//! Parts:
//! - [`plan`]: [`ReadPlan`] coalesces a device's [`PointSpec`]s into the fewest read
//!   requests within [`PlanLimits`] and the protocol's (125 registers, 2000 bits);
//! - [`decode`](mod@decode): registers and bits to [`Value`](fieldlink_wire::Value)s, for
//!   every [`DataType`](fieldlink_collector_api::DataType) and
//!   [`WordOrder`](fieldlink_collector_api::WordOrder), and scaling;
//! - [`tcp`]: [`ModbusTcpCollector`], the [`Collector`](fieldlink_collector_api::Collector)
//!   of one [`TcpDevice`];
//! - `transport`: the byte stream under tokio-modbus that drops late answers to timed-out
//!   requests, so that a timeout costs one request and not the connection.
//!
//! Invariants of the collector:
//! - every poll tick that is not skipped yields exactly one sample per point, good or bad,
//!   handed to the sink in one batch; a failed read is published, never skipped, and a
//!   device that is down yields one bad sample per point per poll period, no more;
//! - a sample's timestamp is when its request's answer (or its failure) arrived;
//! - the schedule never drifts: ticks stay on the grid of the first one, and ticks that an
//!   overrunning cycle overlapped are skipped and counted in `missed_ticks`;
//! - a device exception or a timeout spoils only its request; a transport error spoils the
//!   rest of the cycle and drops the connection, which is retried with capped, jittered
//!   exponential backoff (250 ms doubling to 30 s, reset once the device answers);
//! - the collector returns soon after the shutdown token fires, wherever it is waiting,
//!   and when the sink is closed.

pub mod decode;
pub mod plan;
pub mod tcp;
mod transport;

pub use decode::{DecodeError, apply_scale, decode, decode_bit};
pub use plan::{PlanLimits, PointSpec, ReadPlan, ReadRequest};
pub use tcp::{ModbusTcpCollector, TcpDevice};
