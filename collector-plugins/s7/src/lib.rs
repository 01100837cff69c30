//! Siemens S7comm for fieldlink: PUT/GET reads of S7-200 SMART, S7-300, S7-400, S7-1200,
//! S7-1500 and LOGO! CPUs over ISO-on-TCP (RFC 1006, port 102).
//!
//! Parts:
//! - [`address`]: Siemens notation (`DB1.DBW2`, `M10.0`, `IW64`, `VW100`);
//! - [`point`]: a point's type and how its big-endian bytes become a value;
//! - [`frame`]: TPKT, COTP and S7comm encoding and decoding, no I/O (fuzzed);
//! - [`plan`]: points to byte ranges to read-var items to requests, within the PDU size;
//! - [`connection`]: TCP, the COTP connection (TSAPs from rack and slot, or given),
//!   "setup communication", and one read-var job at a time, answers matched by reference;
//! - [`collector`]: [`S7Collector`], the poll loop of one PLC;
//! - [`config`]: the plugin's keys, validated here, and its `fieldlink check` lines;
//! - [`probe`]: `fieldlink probe s7`.
//!
//! Invariants of the collector:
//! - every poll tick that is not skipped yields exactly one sample per point, good or bad,
//!   in one batch; a sample's timestamp is when its job's answer (or failure) arrived;
//! - an item the PLC refuses (return code) spoils that item's points only; a job the PLC
//!   refuses (header error) spoils that job's points; neither drops the connection;
//! - a timeout spoils one job and keeps the connection, unless it cut a request off; an
//!   answer that does not parse recycles the connection; a transport error drops it, and
//!   reconnecting backs off from 250 ms to at most 10 s (jittered), so a PLC that comes
//!   back is read again within 10 s, and a dead one never delays other devices;
//! - no input from the network can panic the collector: every length is checked.
//!
//! Not supported: optimized data blocks of S7-1200/1500 (PUT/GET reaches only blocks
//! without "optimized block access", and the CPU must allow PUT/GET), timers, counters.

pub mod address;
pub mod collector;
pub mod config;
pub mod connection;
pub mod frame;
pub mod plan;
pub mod point;
pub mod probe;

pub use address::{Address, Area, Width};
pub use collector::{S7Collector, S7Device};
pub use connection::{ConnectionType, Tsaps};
pub use point::{S7Point, S7Type};

use fieldlink_collector_api::plugin::{
    DeviceBase, DeviceTable, Plugin, PluginDevice, ProbeFuture, ProbeRequest,
};
use std::sync::Arc;

/// The `s7` protocol, as the agent's plugin registry lists it.
#[derive(Debug, Clone, Copy, Default)]
pub struct S7Plugin;

/// The plugin.
pub static PLUGIN: S7Plugin = S7Plugin;

impl Plugin for S7Plugin {
    fn protocol(&self) -> &'static str {
        "s7"
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
