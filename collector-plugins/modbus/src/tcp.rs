//! The Modbus TCP collector: one device, one connection, one poll schedule.

use crate::plan::{PlanLimits, PointSpec, ReadPlan, ReadRequest};
use crate::read::{Data, ReadError, push_bad, push_values, read_request};
use crate::transport::LatestAnswerOnly;
use fieldlink_collector_api::Backoff;
use fieldlink_collector_api::BoxFuture;
use fieldlink_collector_api::schedule::{Cycle, poll_loop};
use fieldlink_collector_api::{Collector, CollectorContext, DeviceStats, FailureLog, clock};
use fieldlink_wire::Sample;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{self, Instant};
use tokio_modbus::Slave;
use tokio_modbus::client::{Context as ModbusClient, tcp};
use tracing::debug;

/// The first reconnect delay after the device was last heard from.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// The longest reconnect delay, so a device that comes back is read again within it (the
/// design asks for 15 s at most, whatever the protocol).
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A Modbus TCP device and the points to read from it.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpDevice {
    /// The device's configured name, the `device` of its samples.
    pub name: Arc<str>,
    /// `host:port`, resolved again at each connect so that a changed DNS entry is followed.
    pub address: String,
    /// The unit (slave) id, for devices behind a TCP gateway; direct devices ignore it.
    /// Any of 0 to 255: gateways differ in which they expect for themselves.
    pub unit: u8,
    /// How often all points are read.
    pub poll: Duration,
    /// How long a connect or one request may take.
    pub timeout: Duration,
    /// How often a request is repeated after a timeout or a transport error (never after
    /// an exception); after a transport error the repeat goes over a new connection.
    pub retries: u8,
    /// How points are coalesced into requests.
    pub limits: PlanLimits,
    /// The points, in configuration order.
    pub points: Vec<PointSpec>,
}

/// Reads one Modbus TCP device on its poll schedule (see the crate note for the rules).
#[derive(Debug)]
pub struct ModbusTcpCollector {
    device: TcpDevice,
    plan: ReadPlan,
}

impl ModbusTcpCollector {
    /// A collector for `device`; its read plan is computed here, once.
    pub fn new(device: TcpDevice) -> Self {
        let plan = ReadPlan::new(&device.points, device.limits);
        ModbusTcpCollector { device, plan }
    }
}

impl Collector for ModbusTcpCollector {
    fn name(&self) -> &Arc<str> {
        &self.device.name
    }

    fn run(self: Box<Self>, ctx: CollectorContext) -> BoxFuture {
        Box::pin(async move {
            let ModbusTcpCollector { device, plan } = *self;
            let mut poller = Poller::new(&device, &plan, &ctx.stats);
            poll_loop(&mut poller, &ctx, &device.name, device.poll).await;
        })
    }
}

/// Why connecting failed; the text is the `bad` samples' error.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No connection within the device's timeout: retry after the backoff.
    #[error("connect failed: timeout")]
    Timeout,
    /// Resolving or connecting failed (refused, unreachable): retry after the backoff.
    #[error("connect failed: {0}")]
    Io(#[from] io::Error),
}

/// The link to the device, a small state machine:
/// - `Down` → `Up` when a connect, tried at or after `retry_at`, succeeds;
/// - `Down` → `Down` when it fails: `retry_at` moves out by the backoff;
/// - `Up` → `Down` on a transport error, `retry_at` one backoff step away (at once when
///   a retry is due);
/// - `Up` → `Down` on a malformed answer, `retry_at` now: the connection is recycled and
///   the next request reconnects.
///
/// While `Down` and not yet due, every request fails at once with `reason`.
enum Link {
    Up(ModbusClient),
    Down { retry_at: Instant, reason: String },
}

/// The poll loop of one device.
struct Poller<'a> {
    device: &'a TcpDevice,
    plan: &'a ReadPlan,
    stats: &'a DeviceStats,
    link: Link,
    backoff: Backoff,
    /// Each cycle's outcome goes here: the log says when the device stops and starts
    /// answering, not at every retry.
    failures: FailureLog<'a>,
}

impl Cycle for Poller<'_> {
    /// One poll cycle: connect if due, then every request of the plan in order. Returns
    /// one sample per point, good or bad.
    async fn cycle(&mut self) -> Vec<Sample> {
        self.connect_if_due().await;
        let device = &self.device.name;
        let points = &self.device.points;
        let mut samples = Vec::with_capacity(points.len());
        if let Link::Down { reason, .. } = &self.link {
            push_bad(&mut samples, device, points, clock::now_ms(), reason);
            self.failures.failed(reason);
            return samples;
        }
        let mut answered = false;
        let mut last_error = None;
        for request in &self.plan.requests {
            let result = self.read(request).await;
            let ts = clock::now_ms();
            match result {
                Ok(data) => {
                    answered = true;
                    self.stats.last_good_read_ms.store(ts, Ordering::Relaxed);
                    push_values(&mut samples, device, points, request, &data, ts);
                }
                Err(error) => {
                    answered |= error.device_answered();
                    let own = request.points.iter().map(|&p| &points[p]);
                    let reason = error.to_string();
                    push_bad(&mut samples, device, own, ts, &reason);
                    last_error = Some(reason);
                }
            }
        }
        // The device is up if it answered anything this cycle: one request that keeps
        // timing out among good ones is in its samples, not a flapping state in the log.
        match (answered, last_error) {
            (true, _) => self.failures.answered(),
            (false, Some(reason)) => self.failures.failed(&reason),
            (false, None) => {}
        }
        DeviceStats::bump(&self.stats.cycles);
        samples
    }
}

impl<'a> Poller<'a> {
    fn new(device: &'a TcpDevice, plan: &'a ReadPlan, stats: &'a DeviceStats) -> Self {
        Poller {
            device,
            plan,
            stats,
            link: Link::Down {
                retry_at: Instant::now(),
                reason: "not connected".to_owned(),
            },
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
            failures: FailureLog::new(&device.name, &device.address, stats),
        }
    }

    /// One request, repeated after timeouts and transport errors as the device's
    /// `retries` allow. Every failed attempt counts as a read error.
    async fn read(&mut self, request: &ReadRequest) -> Result<Data, ReadError> {
        let mut attempt = 0;
        loop {
            self.connect_if_due().await;
            let client = match &mut self.link {
                Link::Up(client) => client,
                Link::Down { reason, .. } => return Err(ReadError::LinkDown(reason.clone())),
            };
            let error = match read_request(client, request, self.device.timeout).await {
                Ok(data) => {
                    self.backoff.reset();
                    return Ok(data);
                }
                Err(error) => error,
            };
            DeviceStats::bump(&self.stats.read_errors);
            let retry = error.is_retryable() && attempt < self.device.retries;
            match &error {
                // The device answered: the link works, whatever it said.
                ReadError::Exception(_) | ReadError::Protocol(_) => self.backoff.reset(),
                ReadError::Malformed(_) => self.lose(error.to_string(), Instant::now()),
                ReadError::Transport(_) => {
                    // A retry reconnects at once; otherwise the backoff keeps a device that
                    // accepts and then drops every connection (its connection table is
                    // full) from being reconnected to at every tick.
                    let retry_at = if retry {
                        Instant::now()
                    } else {
                        Instant::now() + self.backoff.next_delay()
                    };
                    self.lose(error.to_string(), retry_at);
                }
                ReadError::Timeout | ReadError::LinkDown(_) => {}
            }
            if !retry {
                return Err(error);
            }
            attempt += 1;
        }
    }

    async fn connect_if_due(&mut self) {
        let Link::Down { retry_at, .. } = &self.link else {
            return;
        };
        if Instant::now() < *retry_at {
            return;
        }
        match open(&self.device.address, self.device.unit, self.device.timeout).await {
            Ok(client) => {
                debug!(device = %self.device.name, address = %self.device.address, "connected");
                self.stats.connected.store(true, Ordering::Relaxed);
                self.link = Link::Up(client);
            }
            Err(error) => {
                DeviceStats::bump(&self.stats.reconnects);
                let delay = self.backoff.next_delay();
                debug!(device = %self.device.name, %error, ?delay, "cannot connect; retrying with backoff");
                self.link = Link::Down {
                    retry_at: Instant::now() + delay,
                    reason: error.to_string(),
                };
            }
        }
    }

    /// The connection failed or cannot be trusted: drop it; reconnect at `retry_at`.
    fn lose(&mut self, reason: String, retry_at: Instant) {
        debug!(device = %self.device.name, error = %reason, "connection dropped; reconnecting");
        self.stats.connected.store(false, Ordering::Relaxed);
        DeviceStats::bump(&self.stats.reconnects);
        self.link = Link::Down { retry_at, reason };
    }
}

/// Connects to `address` (resolving it anew) within `timeout`.
pub async fn open(
    address: &str,
    unit: u8,
    timeout: Duration,
) -> Result<ModbusClient, ConnectError> {
    let stream = time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| ConnectError::Timeout)??;
    // One small request at a time, each waiting for its answer: Nagle's delay would only
    // add latency.
    stream.set_nodelay(true)?;
    Ok(tcp::attach_slave(
        LatestAnswerOnly::new(stream),
        Slave(unit),
    ))
}
