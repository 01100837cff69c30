//! Serial lines for fieldlink's collectors, whatever their protocol.
//!
//! Parts:
//! - [`line`]: [`SerialLine`], a port and its settings (baud, parity, data and stop bits),
//!   the inter-frame silence they imply, and opening the port (tokio-serial, no libudev);
//! - [`bus`]: the scheduler that shares one line among the devices on it (one frame at a
//!   time, probes of silent devices last, the late-answer grace, reopening with backoff),
//!   generic over a [`LineProtocol`](bus::LineProtocol), and [`Silence`](bus::Silence), the
//!   backoff with which a device's collector polls a device that stopped answering.
//!
//! Modbus RTU and ASCII and DL/T 645 run on it; one line speaks one protocol, which the
//! agent's configuration checks.

pub mod bus;
pub mod line;

pub use line::{DataBits, Parity, SerialLine, StopBits};
