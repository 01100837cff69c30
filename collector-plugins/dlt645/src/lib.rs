//! DL/T 645-2007 for fieldlink: reading energy meters on RS-485 lines.
//!
//! Parts:
//! - [`ident`]: data identifiers and the standard's table of their sizes, decimals, signs
//!   and units;
//! - [`frame`]: frames (wake-up bytes, address, control code, data plus 33H, checksum) and
//!   BCD values, encoded and decoded without I/O (fuzzed);
//! - [`line`]: DL/T 645 as a protocol of `fieldlink-serial`'s shared line scheduler;
//! - [`collector`]: [`Dlt645Collector`], the poll loop of one meter, with the read plan
//!   (one read per point, or block reads of a group) and dead-meter isolation;
//! - [`config`]: the plugin's keys, validated here, and its `fieldlink check` lines;
//! - [`probe`]: `fieldlink probe dlt645`.
//!
//! Invariants of the collector:
//! - every poll tick that is not skipped yields exactly one sample per point, good or bad;
//! - a meter's error answer (control D1H) makes that read's points bad with the meter's
//!   error text, and keeps the line; a frame with a wrong checksum or structure, or a value
//!   that is not BCD, becomes bad samples, never a panic;
//! - a meter that does not answer costs its own timeout, then is probed at a growing
//!   interval (at most 10 s apart) while the other meters on the line keep their rate;
//! - meters on one port share one scheduler; one port speaks one protocol.

pub mod collector;
pub mod config;
pub mod frame;
pub mod ident;
pub mod line;
pub mod probe;

pub use collector::{Dlt645Collector, Dlt645Device, MeterPoint};
pub use frame::MeterAddress;
pub use ident::DataId;

use fieldlink_collector_api::plugin::{
    DeviceBase, DeviceTable, Plugin, PluginDevice, ProbeFuture, ProbeRequest,
};
use std::sync::Arc;

/// The `dlt645` protocol, as the agent's plugin registry lists it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dlt645Plugin;

/// The plugin.
pub static PLUGIN: Dlt645Plugin = Dlt645Plugin;

impl Plugin for Dlt645Plugin {
    fn protocol(&self) -> &'static str {
        "dlt645"
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
