//! The S7 collector: one PLC, one connection, one poll schedule.

use crate::connection::{Connection, S7Error, Tsaps};
use crate::plan::{ReadPlan, Request};
use crate::point::S7Point;
use fieldlink_collector_api::schedule::{Cycle, poll_loop};
use fieldlink_collector_api::{
    Backoff, BoxFuture, Collector, CollectorContext, DeviceStats, FailureLog, clock,
};
use fieldlink_wire::Sample;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use tracing::debug;

/// The first reconnect delay after the PLC was last heard from.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// The longest reconnect delay: a PLC that comes back is read again within it (the
/// design asks for 15 s at most).
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// An S7 PLC and the points to read from it.
#[derive(Debug, Clone, PartialEq)]
pub struct S7Device {
    /// The device's configured name, the `device` of its samples.
    pub name: Arc<str>,
    /// `host:port` (port 102), resolved again at each connect.
    pub address: String,
    /// The TSAPs of the connection.
    pub tsaps: Tsaps,
    /// How often all points are read.
    pub poll: Duration,
    /// How long a connect or one job may take.
    pub timeout: Duration,
    /// How often a job is repeated after a timeout or a transport error.
    pub retries: u8,
    /// The most unused bytes a range may read between two points.
    pub max_gap: u32,
    /// The PDU size asked for when connecting.
    pub pdu_size: u16,
    /// The points, in configuration order.
    pub points: Vec<S7Point>,
}

/// Reads one PLC on its poll schedule: every tick yields one sample per point, good or
/// bad; a PLC that is down is reconnected with capped, jittered backoff and never delays
/// other devices.
#[derive(Debug)]
pub struct S7Collector {
    device: S7Device,
}

impl S7Collector {
    /// A collector for `device`.
    pub fn new(device: S7Device) -> Self {
        S7Collector { device }
    }
}

impl Collector for S7Collector {
    fn name(&self) -> &Arc<str> {
        &self.device.name
    }

    fn run(self: Box<Self>, ctx: CollectorContext) -> BoxFuture {
        Box::pin(async move {
            let device = self.device;
            let mut poller = Poller::new(&device, &ctx.stats);
            poll_loop(&mut poller, &ctx, &device.name, device.poll).await;
        })
    }
}

/// The link to the PLC:
/// - `Down` → `Up` when a connect, tried at or after `retry_at`, succeeds;
/// - `Down` → `Down` when it fails: `retry_at` moves out by the backoff;
/// - `Up` → `Down` on a transport error (one backoff step away, at once when a retry is
///   due), or on a malformed answer or a broken stream (reconnect at once).
enum Link {
    Up(Connection),
    Down { retry_at: Instant, reason: String },
}

/// What one cycle read into a range.
struct RangeRead {
    bytes: Vec<u8>,
    error: Option<String>,
    ts: i64,
}

struct Poller<'a> {
    device: &'a S7Device,
    stats: &'a DeviceStats,
    link: Link,
    backoff: Backoff,
    failures: FailureLog<'a>,
    /// The plan for the PDU size of the current (or last) connection.
    plan: ReadPlan,
    reads: Vec<RangeRead>,
}

impl<'a> Poller<'a> {
    fn new(device: &'a S7Device, stats: &'a DeviceStats) -> Self {
        let mut poller = Poller {
            device,
            stats,
            link: Link::Down {
                retry_at: Instant::now(),
                reason: "not connected".to_owned(),
            },
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
            failures: FailureLog::new(&device.name, &device.address, stats),
            plan: ReadPlan::default(),
            reads: Vec::new(),
        };
        poller.replan(device.pdu_size);
        poller
    }

    fn replan(&mut self, pdu_size: u16) {
        if self.plan.pdu_size == pdu_size && !self.plan.ranges.is_empty() {
            return;
        }
        self.plan = ReadPlan::new(&self.device.points, self.device.max_gap, pdu_size);
        self.reads = self
            .plan
            .ranges
            .iter()
            .map(|r| RangeRead {
                bytes: vec![0; r.len as usize],
                error: None,
                ts: 0,
            })
            .collect();
    }

    async fn connect_if_due(&mut self) {
        let Link::Down { retry_at, .. } = &self.link else {
            return;
        };
        if Instant::now() < *retry_at {
            return;
        }
        let d = self.device;
        match Connection::open(&d.address, d.tsaps, d.pdu_size, d.timeout).await {
            Ok(connection) => {
                debug!(device = %d.name, address = %d.address, pdu = connection.pdu_size(), "connected");
                self.stats.connected.store(true, Ordering::Relaxed);
                self.replan(connection.pdu_size());
                self.link = Link::Up(connection);
            }
            Err(error) => {
                DeviceStats::bump(&self.stats.reconnects);
                let delay = self.backoff.next_delay();
                debug!(device = %d.name, %error, ?delay, "cannot connect; retrying with backoff");
                self.link = Link::Down {
                    retry_at: Instant::now() + delay,
                    reason: error.to_string(),
                };
            }
        }
    }

    fn lose(&mut self, reason: String, retry_at: Instant) {
        debug!(device = %self.device.name, error = %reason, "connection dropped; reconnecting");
        self.stats.connected.store(false, Ordering::Relaxed);
        DeviceStats::bump(&self.stats.reconnects);
        self.link = Link::Down { retry_at, reason };
    }

    /// One job, repeated after timeouts and transport errors as `retries` allow; each
    /// failed attempt counts as a read error. Item results go into `self.reads`.
    async fn read(&mut self, request: usize) -> Result<(), S7Error> {
        let mut attempt = 0;
        loop {
            self.connect_if_due().await;
            let connection = match &mut self.link {
                Link::Up(connection) => connection,
                // No job went out: the link is down, which `connect_if_due` counted.
                Link::Down { reason, .. } => return Err(S7Error::Io(reason.clone())),
            };
            let Request { items } = &self.plan.requests[request];
            let specs: Vec<_> = items.iter().map(|i| i.spec).collect();
            let reads = &mut self.reads;
            let result = connection
                .read(&specs, self.device.timeout, |i, answer| {
                    let item = items[i];
                    let read = &mut reads[item.range];
                    match answer {
                        Ok(bytes) => {
                            let at = item.offset as usize;
                            if let Some(target) = read.bytes.get_mut(at..at + bytes.len()) {
                                target.copy_from_slice(bytes);
                            }
                        }
                        Err(e) => read.error = Some(e.to_string()),
                    }
                })
                .await;
            let broken = connection.is_broken();
            let error = match result {
                Ok(()) => {
                    self.backoff.reset();
                    return Ok(());
                }
                Err(error) => error,
            };
            DeviceStats::bump(&self.stats.read_errors);
            let retry = error.is_retryable() && attempt < self.device.retries;
            match &error {
                S7Error::Plc(_) => self.backoff.reset(),
                S7Error::Malformed(_) => self.lose(error.to_string(), Instant::now()),
                S7Error::Io(_) | S7Error::Refused(_) => {
                    let retry_at = if retry {
                        Instant::now()
                    } else {
                        Instant::now() + self.backoff.next_delay()
                    };
                    self.lose(error.to_string(), retry_at);
                }
                S7Error::Timeout if broken => self.lose(
                    "timeout while sending; connection recycled".to_owned(),
                    Instant::now(),
                ),
                S7Error::Timeout => {}
            }
            if !retry {
                return Err(error);
            }
            attempt += 1;
        }
    }
}

impl Cycle for Poller<'_> {
    async fn cycle(&mut self) -> Vec<Sample> {
        self.connect_if_due().await;
        let device = &self.device.name;
        let points = &self.device.points;
        let mut samples = Vec::with_capacity(points.len());
        if let Link::Down { reason, .. } = &self.link {
            let ts = clock::now_ms();
            for point in points {
                samples.push(Sample::bad(device.clone(), point.name.clone(), ts, reason));
            }
            self.failures.failed(reason);
            return samples;
        }
        for read in &mut self.reads {
            read.error = None;
        }
        let mut answered = false;
        let mut last_error = None;
        for request in 0..self.plan.requests.len() {
            let result = self.read(request).await;
            let ts = clock::now_ms();
            let reason = match result {
                Ok(()) => {
                    answered = true;
                    self.stats.last_good_read_ms.store(ts, Ordering::Relaxed);
                    None
                }
                Err(error) => {
                    answered |= error.plc_answered();
                    let reason = error.to_string();
                    last_error = Some(reason.clone());
                    Some(reason)
                }
            };
            for item in &self.plan.requests[request].items {
                let read = &mut self.reads[item.range];
                read.ts = ts;
                if let Some(reason) = &reason {
                    read.error = Some(reason.clone());
                }
            }
        }
        for (range, read) in self.plan.ranges.iter().zip(&self.reads) {
            for &p in &range.points {
                let point = &points[p];
                let sample = match &read.error {
                    Some(reason) => {
                        Sample::bad(device.clone(), point.name.clone(), read.ts, reason)
                    }
                    None => {
                        let at = (point.start() - range.start) as usize;
                        let own = read
                            .bytes
                            .get(at..at + point.size() as usize)
                            .unwrap_or(&[]);
                        match point.decode(own) {
                            Ok(value) => {
                                Sample::good(device.clone(), point.name.clone(), read.ts, value)
                            }
                            Err(e) => Sample::bad(
                                device.clone(),
                                point.name.clone(),
                                read.ts,
                                e.to_string(),
                            ),
                        }
                    }
                };
                samples.push(sample);
            }
        }
        match (answered, last_error) {
            (true, _) => self.failures.answered(),
            (false, Some(reason)) => self.failures.failed(&reason),
            (false, None) => {}
        }
        DeviceStats::bump(&self.stats.cycles);
        samples
    }
}
