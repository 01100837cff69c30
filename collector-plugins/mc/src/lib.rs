//! Mitsubishi MELSEC communication protocol (MC protocol) for fieldlink: batch reads of
//! Q, L, iQ-R and iQ-F (FX5) PLCs with the QnA-compatible 3E frame, binary code, over TCP.
//!
//! Parts:
//! - [`device`]: device notation (`D100`, `W1F`, `X10`, `M0`) and device codes, with the
//!   family's numbering of X and Y (hexadecimal, or octal on iQ-F);
//! - [`frame`]: the 3E frame, encoded and decoded without I/O (fuzzed);
//! - [`plan`]: points, their decoding (words low byte first, 32-bit values low word
//!   first: `order` defaults to `CDAB`), and the batch reads that cover them;
//! - [`connection`]: one TCP connection, one read at a time;
//! - [`collector`]: [`McCollector`], the poll loop of one PLC;
//! - [`config`]: the plugin's keys, validated here, and its `fieldlink check` lines;
//! - [`probe`]: `fieldlink probe mc`.
//!
//! Invariants of the collector:
//! - every poll tick that is not skipped yields exactly one sample per point, good or bad;
//! - an end code from the PLC spoils that read's points and keeps the connection;
//! - a timeout or an answer that does not parse spoils the read and recycles the
//!   connection (the 3E frame has no serial number to tell a late answer from the next);
//!   a transport error drops it, and reconnecting backs off from 250 ms to at most 10 s;
//! - no input from the network can panic the collector.
//!
//! The PLC (or its Ethernet module) must have an MC protocol port open with binary code
//! ("Communication Data Code: Binary"), TCP; reads need no write permission.

pub mod collector;
pub mod config;
pub mod connection;
pub mod device;
pub mod frame;
pub mod plan;
pub mod probe;

pub use collector::{McCollector, McDevice};
pub use device::{Device, Family};
pub use plan::{McPoint, ReadPlan};

use fieldlink_collector_api::plugin::{
    DeviceBase, DeviceTable, Plugin, PluginDevice, ProbeFuture, ProbeRequest,
};
use std::sync::Arc;

/// The `mc` protocol, as the agent's plugin registry lists it.
#[derive(Debug, Clone, Copy, Default)]
pub struct McPlugin;

/// The plugin.
pub static PLUGIN: McPlugin = McPlugin;

impl Plugin for McPlugin {
    fn protocol(&self) -> &'static str {
        "mc"
    }

    fn probe_settings(&self) -> &'static [(&'static str, &'static str)] {
        probe::SETTINGS
    }

    fn read_device(
        &self,
        base: DeviceBase,
        table: &mut dyn DeviceTable,
    ) -> Option<Arc<dyn PluginDevice>> {
        config::read_device(base, table)
    }

    fn probe(&self, request: ProbeRequest) -> ProbeFuture {
        Box::pin(probe::probe(request))
    }
}
