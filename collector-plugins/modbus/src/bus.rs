//! An RTU or ASCII bus: one serial line (or one RTU-over-TCP connection to a serial device
//! server) shared by several devices, run by the protocol-neutral scheduler of
//! [`fieldlink_serial::bus`] (one frame at a time, the inter-frame silence, probes of silent
//! slaves last, the late-answer grace, reopening with backoff). What this module adds is
//! Modbus on that line: a [`BusLink`] opens as a tokio-modbus RTU client (under ASCII
//! framing for [`BusLink::Ascii`]), and one transaction is one read of one unit.
//!
//! After a timeout, every byte already received is dropped before the next request
//! ([`crate::transport`]'s `StaleInputDropped`), so a late answer is never taken for the
//! next request's.

use crate::ascii::AsciiFraming;
use crate::read::{Data, ReadError, read};
use fieldlink_collector_api::Area;
use fieldlink_serial::SerialLine;
use fieldlink_serial::bus::{ExchangeError, LineProtocol, Outcome};
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time;
use tokio_modbus::Slave;
use tokio_modbus::client::{Context as ModbusClient, rtu};
use tokio_modbus::prelude::SlaveContext as _;

pub use fieldlink_serial::bus::LATE_ANSWER_GRACE;

/// The silence left on an RTU-over-TCP link, whose serial side's speed is unknown: the
/// specification's figure for fast lines.
const TCP_FRAME_GAP: Duration = Duration::from_micros(1750);

/// What carries a bus's frames.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BusLink {
    /// A local serial port (`protocol = "modbus-rtu"`).
    Serial(SerialLine),
    /// A local serial port with ASCII framing (`protocol = "modbus-ascii"`, see
    /// [`crate::ascii`]).
    Ascii(SerialLine),
    /// A TCP connection to a serial device server that passes RTU frames through
    /// (`protocol = "modbus-rtu-over-tcp"`), as `host:port`.
    Tcp(String),
}

impl BusLink {
    /// The serial line, for the links that are one.
    pub fn serial_line(&self) -> Option<&SerialLine> {
        match self {
            BusLink::Serial(line) | BusLink::Ascii(line) => Some(line),
            BusLink::Tcp(_) => None,
        }
    }

    /// The silence left between frames: 3.5 characters of the serial line (1.75 ms above
    /// 19200 baud); for RTU over TCP the device server times its own line, and 1.75 ms
    /// keeps a simple converter from running two frames together.
    pub fn frame_gap(&self) -> Duration {
        match self {
            // ASCII frames end at their CR LF, not at a silence; the RTU gap is kept as a
            // courtesy to slow slaves and costs a few milliseconds.
            BusLink::Serial(line) | BusLink::Ascii(line) => line.frame_gap(),
            BusLink::Tcp(_) => TCP_FRAME_GAP,
        }
    }
}

impl fmt::Display for BusLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusLink::Serial(line) => write!(f, "{line}"),
            BusLink::Ascii(line) => write!(f, "ascii {line}"),
            BusLink::Tcp(address) => write!(f, "rtu-over-tcp {address}"),
        }
    }
}

/// Why the link could not be opened; the text is the `bad` samples' error.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The serial port could not be opened (missing, busy, no permission): check the
    /// path and that the agent's user may use it; retried with backoff.
    #[error("cannot open {path}: {error}")]
    Serial {
        /// The port's path.
        path: String,
        /// What the OS said (in the message, so not repeated as a cause).
        error: io::Error,
    },
    /// No TCP connection within the timeout; retried with backoff.
    #[error("connect failed: timeout")]
    Timeout,
    /// Resolving or connecting failed (refused, unreachable); retried with backoff.
    #[error("connect failed: {0}")]
    Connect(io::Error),
}

/// Opens `link` (within `timeout` for TCP) and puts an RTU client for `unit` on it (the
/// scheduler switches the unit per request).
pub async fn open_link(
    link: &BusLink,
    unit: u8,
    timeout: Duration,
) -> Result<ModbusClient, OpenError> {
    let serial = |line: &SerialLine| {
        line.open().map_err(|error| OpenError::Serial {
            path: line.path.clone(),
            error,
        })
    };
    match link {
        BusLink::Serial(line) => Ok(rtu::attach_slave(
            StaleInputDropped::new(serial(line)?),
            Slave(unit),
        )),
        BusLink::Ascii(line) => {
            let framing = AsciiFraming::new(StaleInputDropped::new(serial(line)?));
            Ok(rtu::attach_slave(framing, Slave(unit)))
        }
        BusLink::Tcp(address) => {
            let stream = time::timeout(timeout, TcpStream::connect(address))
                .await
                .map_err(|_| OpenError::Timeout)?
                .map_err(OpenError::Connect)?;
            // One small frame at a time, each waiting for its answer: Nagle's delay would
            // only add latency.
            stream.set_nodelay(true).map_err(OpenError::Connect)?;
            Ok(rtu::attach_slave(
                StaleInputDropped::new(stream),
                Slave(unit),
            ))
        }
    }
}

use crate::transport::StaleInputDropped;

/// One read of one unit, as a bus transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnitRead {
    pub(crate) unit: u8,
    pub(crate) area: Area,
    pub(crate) address: u16,
    pub(crate) quantity: u16,
}

/// Modbus (RTU or ASCII framing) on a bus line.
pub(crate) struct Modbus;

impl ExchangeError for ReadError {
    fn outcome(&self) -> Outcome {
        match self {
            ReadError::Exception(_) | ReadError::Protocol(_) => Outcome::Answered,
            ReadError::Timeout => Outcome::Timeout,
            ReadError::Malformed(_) => Outcome::Malformed,
            ReadError::Transport(_) => Outcome::Transport,
            ReadError::LinkDown(_) => Outcome::LinkDown,
        }
    }

    fn link_down(reason: String) -> Self {
        ReadError::LinkDown(reason)
    }
}

impl LineProtocol for Modbus {
    type Link = BusLink;
    type Port = ModbusClient;
    type Request = UnitRead;
    type Answer = Data;
    type Error = ReadError;

    async fn open(link: &BusLink, timeout: Duration) -> Result<ModbusClient, String> {
        open_link(link, 1, timeout).await.map_err(|e| e.to_string())
    }

    async fn exchange(
        port: &mut ModbusClient,
        request: &UnitRead,
        timeout: Duration,
    ) -> Result<Data, ReadError> {
        port.set_slave(Slave(request.unit));
        read(
            port,
            request.area,
            request.address,
            request.quantity,
            timeout,
        )
        .await
    }

    fn frame_gap(link: &BusLink) -> Duration {
        link.frame_gap()
    }
}

/// A device's hold on its bus's scheduler.
pub(crate) type BusHandle = fieldlink_serial::bus::BusHandle<Modbus>;

/// The running scheduler of `link`, started now if no device holds one. Must be called
/// within a tokio runtime.
pub(crate) fn attach(link: &BusLink) -> Arc<BusHandle> {
    fieldlink_serial::bus::attach::<Modbus>(link)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_serial::{DataBits, Parity, StopBits};

    #[test]
    fn rtu_over_tcp_leaves_the_fast_line_gap() {
        assert_eq!(
            BusLink::Tcp("127.0.0.1:502".into()).frame_gap(),
            Duration::from_micros(1750)
        );
        let serial = BusLink::Serial(SerialLine {
            path: "/dev/ttyS0".into(),
            baud: 9600,
            parity: Parity::None,
            data_bits: DataBits::Eight,
            stop_bits: StopBits::Two,
        });
        // 11 bits a character at 9600 baud, 3.5 characters.
        assert_eq!(serial.frame_gap().as_micros(), 4010);
    }

    #[tokio::test]
    async fn devices_of_one_link_share_one_scheduler_while_any_holds_it() {
        let link = BusLink::Tcp("127.0.0.1:1".into());
        let first = attach(&link);
        let second = attach(&link);
        assert!(Arc::ptr_eq(&first, &second));
        let other = attach(&BusLink::Tcp("127.0.0.1:2".into()));
        assert!(
            !Arc::ptr_eq(&first, &other),
            "another link, another scheduler"
        );
        let weak = Arc::downgrade(&first);
        drop((first, second));
        assert!(weak.upgrade().is_none(), "the scheduler is released");
        let third = attach(&link);
        assert!(!third.is_closed(), "a new scheduler runs");
    }

    #[tokio::test]
    async fn a_link_that_cannot_open_fails_transactions_with_the_reason() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let handle = attach(&BusLink::Tcp(address));
        let read = UnitRead {
            unit: 1,
            area: Area::Holding,
            address: 0,
            quantity: 1,
        };
        let result = handle
            .request(read, Duration::from_millis(200), false)
            .await;
        match result {
            Err(ReadError::LinkDown(reason)) => {
                assert!(reason.starts_with("connect failed: "), "{reason}");
            }
            other => panic!("expected the link to be down, got {other:?}"),
        }
    }
}
