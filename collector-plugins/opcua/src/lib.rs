//! OPC UA for fieldlink: the collector, its certificates, and `browse`.
//!
//! Parts:
//! - [`device`]: the validated settings of a device ([`OpcuaDevice`], [`OpcuaPoint`]),
//!   as the agent's configuration builds them;
//! - [`node`]: NodeIds as configured (`ns=2;s=...`, `nsu=URI;i=...`), resolved against
//!   the server's namespace array after each connect;
//! - [`value`]: OPC UA values, statuses and timestamps into the contract's samples;
//! - [`pki`]: the gateway's application certificate (created on first start, renewed
//!   before expiry) and the trust lists behind `fieldlink opcua trust`;
//! - [`session`]: one connection attempt (endpoint choice, server certificate check,
//!   session with its event loop on its own task);
//! - [`collector`]: [`OpcuaCollector`], the [`Collector`](fieldlink_collector_api::Collector)
//!   of one device: subscriptions by default, cyclic reads with `mode = "poll"`;
//! - [`browse`](mod@browse): the address-space walk behind `fieldlink browse opcua`;
//! - `testing` (feature `test-server`): an in-process server for tests and benchmarks.
//!
//! Invariants of the collector:
//! - one task and at most one session per device; never two connect attempts in flight;
//! - async-opcua's own reconnect is off: a lost session is rebuilt from scratch with
//!   backoff, namespaces re-read, NodeIds re-resolved and the subscription re-created;
//! - while the server is unreachable every point gets a `bad` sample ("disconnected: ...")
//!   at each failed attempt, and data resumes by itself;
//! - a point that cannot be read (unknown node, unmappable type, refused filter) is `bad`
//!   with the reason and logged once; it never stops the other points;
//! - unknown server certificates are refused and stored under `pki/rejected`; trusting any
//!   server is an explicit opt-in that is logged at warn level.

pub mod browse;
pub mod collector;
pub mod device;
pub mod node;
pub mod pki;
pub mod session;
#[cfg(feature = "test-server")]
pub mod testing;
pub mod value;

pub use collector::OpcuaCollector;
pub use device::{
    Deadband, Identity, Mode, OpcuaDevice, OpcuaPoint, Pki, Policy, PolicyChoice, Security,
    SecurityMode, ServerTrust,
};
pub use node::{NodeAddress, NodeIdError};
