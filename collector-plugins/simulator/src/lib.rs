//! A deterministic simulated device, for the one-command demo, tests and benchmarks.
//!
//! Parts:
//! - [`Signal`] and [`seed_for`]: the shapes a simulated value takes over time. A value is
//!   a pure function of `(signal, seed, time)` and the seed is a stable hash of the point's
//!   name, so the same configuration produces the same curves on every run and machine.
//! - [`SimulatorCollector`]: a [`fieldlink_collector_api::Collector`] for a
//!   `protocol = "simulator"` device ([`SimulatorDevice`], [`SimPoint`]); it samples every
//!   point each poll period, or back to back for benchmarks.
//! - [`modbus_device`]: the same signals behind a real Modbus TCP server (tokio-modbus),
//!   so the demo and the tests exercise the Modbus collector against a real peer;
//! - [`s7_device`]: a simulated Siemens PLC over ISO-on-TCP (S7comm read var), the peer of
//!   the S7 collector's tests and benchmarks;
//! - [`mc_device`]: a simulated Mitsubishi PLC (MC protocol, 3E binary batch reads), the
//!   peer of the MC collector's tests and benchmarks;
//! - [`dlt645_meter`]: simulated DL/T 645-2007 energy meters sharing one RS-485 line, the
//!   peer of the DL/T 645 collector's tests.
//!
//! Invariants: nothing here keeps state between samples (no random walk, no counters in
//! memory); every value can be recomputed from the time alone. Simulated samples are
//! always `good`.

pub mod dlt645_meter;
pub mod mc_device;
pub mod modbus_device;
pub mod s7_device;

mod collector;
mod signal;

pub use collector::{SimPoint, SimulatorCollector, SimulatorDevice};
pub use signal::{PLANT_UTC_OFFSET_MS, Signal, UnknownSignal, seed_for};
