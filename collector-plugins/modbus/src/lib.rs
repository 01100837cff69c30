//! Modbus for fieldlink: TCP, RTU and ASCII on serial lines, and RTU over TCP; read
//! planning, bus scheduling, decoding and the polling collectors.
//!
//! Parts:
//! - [`plan`]: [`ReadPlan`] coalesces a device's [`PointSpec`]s into the fewest read
//!   requests within [`PlanLimits`] and the protocol's (125 registers, 2000 bits);
//! - [`decode`](mod@decode): registers and bits to [`Value`](fieldlink_wire::Value)s, for
//!   every [`DataType`](fieldlink_collector_api::DataType) and
//!   [`WordOrder`](fieldlink_collector_api::WordOrder), and scaling;
//! - [`read`](mod@read): one request and what its answer means ([`ReadError`] keeps device
//!   exceptions, malformed answers and transport failures apart);
//! - [`tcp`]: [`ModbusTcpCollector`], the [`Collector`](fieldlink_collector_api::Collector)
//!   of one [`TcpDevice`];
//! - [`SerialLine`] (from `fieldlink-serial`): a port's settings and the inter-frame
//!   silence they imply;
//! - [`ascii`]: Modbus ASCII framing (LRC, hexadecimal characters), translated to and
//!   from RTU frames under tokio-modbus, so an ASCII line is a bus like any other;
//! - [`bus`]: a serial line or RTU-over-TCP link ([`BusLink`]) shared by several devices,
//!   on `fieldlink-serial`'s scheduler, which serializes their requests;
//! - [`rtu`]: [`ModbusRtuCollector`], the collector of one [`RtuDevice`] on a bus, which
//!   backs off a slave that does not answer so that the others keep their poll rate;
//! - `transport`: the byte streams under tokio-modbus that drop late answers to timed-out
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
//!   exponential backoff (250 ms doubling to 10 s, reset once the device answers), so a
//!   device that comes back is read again within 10 s;
//! - an answer with a wrong byte count or quantity spoils its request and recycles the
//!   connection (the next request reconnects);
//! - a `bit = N` point is bit N of its `u16` or `u32` register value, read with the
//!   register and never scaled;
//! - a request is repeated `retries` times after a timeout or a transport error, never
//!   after an exception;
//! - the collector returns soon after the shutdown token fires, wherever it is waiting,
//!   and when the sink is closed.

pub mod ascii;
pub mod bus;
pub mod plan;
pub mod read;
pub mod rtu;
pub mod tcp;
mod transport;

pub use bus::BusLink;
pub use decode::{DecodeError, apply_scale, decode, decode_bit};
pub use fieldlink_collector_api::decode;
pub use fieldlink_serial::{DataBits, Parity, SerialLine, StopBits};
pub use plan::{PlanLimits, PointSpec, ReadPlan, ReadRequest};
pub use read::{Data, ReadError};
pub use rtu::{ModbusRtuCollector, RtuDevice};
pub use tcp::{ModbusTcpCollector, TcpDevice};
