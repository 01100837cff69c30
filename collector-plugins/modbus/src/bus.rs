//! An RTU bus: one serial line (or one RTU-over-TCP connection to a serial device server)
//! shared by several devices, and the one scheduler that owns it.
//!
//! A line carries one frame at a time, so the devices on it must take turns. Each device
//! keeps its own poll loop (and its own counters); its requests go to the bus's scheduler
//! task as transactions, through a queue that holds at most one transaction per device.
//! The scheduler executes them one by one, first come first served (but see probes):
//! - it leaves the inter-frame silence ([`BusLink::frame_gap`]) between the end of one
//!   frame and the start of the next;
//! - a probe of a silent slave goes last: it waits while any other device's request is
//!   queued, so that its timeout falls between the healthy devices' cycles, not into them;
//! - each transaction carries its device's timeout; a slave that does not answer costs
//!   that timeout and nothing more (its device backs off, see [`crate::rtu`]);
//! - after a timeout it waits [`LATE_ANSWER_GRACE`] longer and, before each request,
//!   drops any input already received (a late answer), so no answer is taken for the
//!   next request's;
//! - an answer with a wrong byte count or quantity, or a transport error, closes the link;
//!   the next transaction opens it again (at once after a link that worked, else after a
//!   capped exponential backoff while opening fails).
//!
//! The scheduler task starts when the bus's first device attaches and stops, closing the
//! port, when the last one detaches. Devices find it by their [`BusLink`]: devices with the
//! same link are on the same bus.

use crate::ascii::AsciiFraming;
use crate::read::{Data, ReadError, read};
use crate::serial::SerialLine;
use crate::transport::StaleInputDropped;
use fieldlink_collector_api::{Area, Backoff};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{self, Instant};
use tokio_modbus::Slave;
use tokio_modbus::client::{Context as ModbusClient, rtu};
use tokio_modbus::prelude::SlaveContext as _;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::debug;

/// The first delay before reopening a link that failed to open.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// The longest delay between attempts to open the link.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Extra silence after a timeout, for a slow slave's late answer to arrive and be dropped
/// instead of being read as the answer to the next request.
pub const LATE_ANSWER_GRACE: Duration = Duration::from_millis(50);
/// The silence left on an RTU-over-TCP link, whose serial side's speed is unknown: the
/// specification's figure for fast lines.
const TCP_FRAME_GAP: Duration = Duration::from_micros(1750);
/// Transactions waiting for the bus; each device has at most one outstanding.
const QUEUE: usize = 64;

/// What carries a bus's RTU frames.
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
    match link {
        BusLink::Serial(line) => {
            let port = line.open().map_err(|error| OpenError::Serial {
                path: line.path.clone(),
                error,
            })?;
            Ok(rtu::attach_slave(StaleInputDropped::new(port), Slave(unit)))
        }
        BusLink::Ascii(line) => {
            let port = line.open().map_err(|error| OpenError::Serial {
                path: line.path.clone(),
                error,
            })?;
            let framing = AsciiFraming::new(StaleInputDropped::new(port));
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

/// The running schedulers, one per link. A line is a resource of the whole process, so
/// the devices on it find their scheduler by the link itself: after a reload, a device
/// started anew joins the scheduler its unchanged neighbours are still using, instead of
/// opening the port a second time. Only `Weak`s are kept: a scheduler lives as long as a
/// device holds it.
static RUNNING: Mutex<Option<HashMap<BusLink, Weak<BusHandle>>>> = Mutex::new(None);

/// The running scheduler of `link`, started now if no device holds one. Must be called
/// within a tokio runtime.
pub(crate) fn attach(link: &BusLink) -> Arc<BusHandle> {
    // The map holds only `Weak`s, so a lock poisoned by a panic holds nothing inconsistent.
    let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    let running = running.get_or_insert_with(HashMap::new);
    if let Some(handle) = running.get(link).and_then(Weak::upgrade) {
        return handle;
    }
    running.retain(|_, handle| handle.strong_count() > 0);
    let (queue_tx, queue_rx) = mpsc::channel(QUEUE);
    let stop = CancellationToken::new();
    tokio::spawn(Scheduler::new(link.clone()).run(queue_rx, stop.clone()));
    let handle = Arc::new(BusHandle {
        queue_tx,
        _stop: stop.drop_guard(),
    });
    running.insert(link.clone(), Arc::downgrade(&handle));
    handle
}

/// A device's hold on a running bus scheduler; the scheduler stops when the last is
/// dropped.
pub(crate) struct BusHandle {
    queue_tx: mpsc::Sender<Transaction>,
    _stop: DropGuard,
}

impl BusHandle {
    /// Reads `quantity` items at `address` in `area` from `unit`, waiting for the bus's
    /// turn; `timeout` runs from when the request is sent. A `probe` (of a slave that has
    /// not been answering) yields its turn to the other devices' requests.
    pub(crate) async fn read(
        &self,
        unit: u8,
        area: Area,
        address: u16,
        quantity: u16,
        timeout: Duration,
        probe: bool,
    ) -> Result<Data, ReadError> {
        let stopped = || ReadError::LinkDown("the bus scheduler has stopped".to_owned());
        let (reply_tx, reply_rx) = oneshot::channel();
        let transaction = Transaction {
            unit,
            area,
            address,
            quantity,
            timeout,
            probe,
            reply_tx,
        };
        self.queue_tx
            .send(transaction)
            .await
            .map_err(|_| stopped())?;
        reply_rx.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// One request waiting for the bus.
struct Transaction {
    unit: u8,
    area: Area,
    address: u16,
    quantity: u16,
    timeout: Duration,
    /// A probe of a silent slave: it waits while other devices' requests are queued.
    probe: bool,
    reply_tx: oneshot::Sender<Result<Data, ReadError>>,
}

/// The link's state:
/// - `Down` → `Up` when opening, tried by a transaction at or after `retry_at`, succeeds;
/// - `Down` → `Down` when it fails: `retry_at` moves out by the backoff;
/// - `Up` → `Down` on a transport error or a malformed answer.
///
/// While `Down` and not yet due, transactions fail at once with `reason`.
enum LinkState {
    Up(ModbusClient),
    Down { retry_at: Instant, reason: String },
}

/// The task that owns the link and executes transactions one at a time.
struct Scheduler {
    link: BusLink,
    gap: Duration,
    state: LinkState,
    backoff: Backoff,
    /// The earliest instant the next request may start: the end of the last frame plus
    /// the inter-frame silence.
    quiet_until: Instant,
    /// Whether a slave answered since the link was opened: a link that worked is reopened
    /// at once after it fails, one that did not is reopened after the backoff.
    answered_since_open: bool,
}

impl Scheduler {
    fn new(link: BusLink) -> Self {
        Scheduler {
            gap: link.frame_gap(),
            link,
            state: LinkState::Down {
                retry_at: Instant::now(),
                reason: "not connected".to_owned(),
            },
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
            quiet_until: Instant::now(),
            answered_since_open: false,
        }
    }

    async fn run(mut self, mut queue_rx: mpsc::Receiver<Transaction>, stop: CancellationToken) {
        debug!(bus = %self.link, "bus scheduler started");
        let mut waiting: VecDeque<Transaction> = VecDeque::new();
        loop {
            if waiting.is_empty() {
                match stop.run_until_cancelled(queue_rx.recv()).await {
                    Some(Some(transaction)) => waiting.push_back(transaction),
                    _ => break,
                }
            }
            // Pick at the last moment, once the line is quiet: a healthy device's next
            // request, sent while the gap ran, still goes before a silent slave's probe.
            if stop
                .run_until_cancelled(time::sleep_until(self.quiet_until))
                .await
                .is_none()
            {
                break;
            }
            while let Ok(transaction) = queue_rx.try_recv() {
                waiting.push_back(transaction);
            }
            let next = waiting.iter().position(|t| !t.probe).unwrap_or(0);
            let Some(transaction) = waiting.remove(next) else {
                continue;
            };
            if transaction.reply_tx.is_closed() {
                // Its device stopped while the transaction waited for its turn.
                continue;
            }
            let Some(result) = stop.run_until_cancelled(self.execute(&transaction)).await else {
                break;
            };
            // The device may have stopped meanwhile; the result is then nobody's.
            let _ = transaction.reply_tx.send(result);
        }
        debug!(bus = %self.link, "bus scheduler stopped; link closed");
    }

    async fn execute(&mut self, t: &Transaction) -> Result<Data, ReadError> {
        if let LinkState::Down { retry_at, .. } = &self.state
            && Instant::now() >= *retry_at
        {
            self.open(t.unit, t.timeout).await;
        }
        let client = match &mut self.state {
            LinkState::Up(client) => client,
            LinkState::Down { reason, .. } => return Err(ReadError::LinkDown(reason.clone())),
        };
        time::sleep_until(self.quiet_until).await;
        client.set_slave(Slave(t.unit));
        let result = read(client, t.area, t.address, t.quantity, t.timeout).await;
        let now = Instant::now();
        self.quiet_until = now + self.gap;
        match &result {
            Ok(_) | Err(ReadError::Exception(_) | ReadError::Protocol(_)) => {
                self.backoff.reset();
                self.answered_since_open = true;
            }
            Err(ReadError::Timeout) => self.quiet_until += LATE_ANSWER_GRACE,
            Err(ReadError::Malformed(detail)) => {
                // Reopen at once: the link itself works, what it carried did not fit. The
                // devices' failure logs report it (see `crate::rtu`), so it is not logged
                // here per event.
                debug!(bus = %self.link, unit = t.unit, %detail, "malformed answer; reopening the link");
                self.close(now, "link recycled after a malformed answer".to_owned());
            }
            Err(ReadError::Transport(error)) => {
                debug!(bus = %self.link, %error, "link lost; reopening");
                let retry_at = if self.answered_since_open {
                    now
                } else {
                    now + self.backoff.next_delay()
                };
                self.close(retry_at, format!("disconnected: {error}"));
            }
            Err(ReadError::LinkDown(_)) => {}
        }
        result
    }

    fn close(&mut self, retry_at: Instant, reason: String) {
        self.state = LinkState::Down { retry_at, reason };
        self.answered_since_open = false;
    }

    async fn open(&mut self, unit: u8, timeout: Duration) {
        match open_link(&self.link, unit, timeout).await {
            Ok(client) => {
                debug!(bus = %self.link, "link open");
                self.state = LinkState::Up(client);
                // Whatever was on the line before the port was opened is not ours to end.
                self.quiet_until = Instant::now() + self.gap;
            }
            Err(error) => {
                let delay = self.backoff.next_delay();
                debug!(bus = %self.link, %error, ?delay, "cannot open the link; retrying with backoff");
                self.state = LinkState::Down {
                    retry_at: Instant::now() + delay,
                    reason: error.to_string(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serial::{DataBits, Parity, StopBits};

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
        assert!(!third.queue_tx.is_closed(), "a new scheduler runs");
    }

    #[tokio::test]
    async fn a_link_that_cannot_open_fails_transactions_with_the_reason() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let handle = attach(&BusLink::Tcp(address));
        let result = handle
            .read(1, Area::Holding, 0, 1, Duration::from_millis(200), false)
            .await;
        match result {
            Err(ReadError::LinkDown(reason)) => {
                assert!(reason.starts_with("connect failed: "), "{reason}");
            }
            other => panic!("expected the link to be down, got {other:?}"),
        }
    }
}
