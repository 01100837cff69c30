//! The MC collector: one PLC, one connection, one poll schedule.

use crate::connection::{Connection, McError};
use crate::frame::Route;
use crate::plan::{McPoint, Read, ReadPlan};
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
/// The longest reconnect delay: a PLC that comes back is read again within it.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A MELSEC PLC and the points to read from it.
#[derive(Debug, Clone, PartialEq)]
pub struct McDevice {
    /// The device's configured name, the `device` of its samples.
    pub name: Arc<str>,
    /// `host:port` of the PLC's (or Ethernet module's) MC port, binary code.
    pub address: String,
    /// The frame's routing fields.
    pub route: Route,
    /// How often all points are read.
    pub poll: Duration,
    /// How long a connect or one read may take.
    pub timeout: Duration,
    /// How often a read is repeated after a timeout or a transport error.
    pub retries: u8,
    /// The most unused words a read may span between two points.
    pub max_gap: u32,
    /// The most words one read may return (1 to 960).
    pub max_words: u16,
    /// The points, in configuration order.
    pub points: Vec<McPoint>,
}

/// Reads one PLC on its poll schedule: every tick yields one sample per point, good or
/// bad; a PLC that is down is reconnected with capped, jittered backoff (at most 10 s),
/// and never delays other devices.
#[derive(Debug)]
pub struct McCollector {
    device: McDevice,
    plan: ReadPlan,
}

impl McCollector {
    /// A collector for `device`; its read plan is computed here, once.
    pub fn new(device: McDevice) -> Self {
        let plan = ReadPlan::new(&device.points, device.max_gap, device.max_words);
        McCollector { device, plan }
    }
}

impl Collector for McCollector {
    fn name(&self) -> &Arc<str> {
        &self.device.name
    }

    fn run(self: Box<Self>, ctx: CollectorContext) -> BoxFuture {
        Box::pin(async move {
            let McCollector { device, plan } = *self;
            let mut poller = Poller {
                device: &device,
                plan: &plan,
                stats: &ctx.stats,
                link: Link::Down {
                    retry_at: Instant::now(),
                    reason: "not connected".to_owned(),
                },
                backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
                failures: FailureLog::new(&device.name, &device.address, &ctx.stats),
            };
            poll_loop(&mut poller, &ctx, &device.name, device.poll).await;
        })
    }
}

/// The link to the PLC:
/// - `Down` → `Up` when a connect, tried at or after `retry_at`, succeeds;
/// - `Down` → `Down` when it fails: `retry_at` moves out by the backoff;
/// - `Up` → `Down` on a transport error (one backoff step away, at once when a retry is
///   due), or on a timeout or a malformed answer (reconnect at once: the stream cannot
///   be trusted to be in step).
enum Link {
    Up(Connection),
    Down { retry_at: Instant, reason: String },
}

struct Poller<'a> {
    device: &'a McDevice,
    plan: &'a ReadPlan,
    stats: &'a DeviceStats,
    link: Link,
    backoff: Backoff,
    failures: FailureLog<'a>,
}

impl Poller<'_> {
    async fn connect_if_due(&mut self) {
        let Link::Down { retry_at, .. } = &self.link else {
            return;
        };
        if Instant::now() < *retry_at {
            return;
        }
        let d = self.device;
        match Connection::open(&d.address, d.route, d.timeout).await {
            Ok(connection) => {
                debug!(device = %d.name, address = %d.address, "connected");
                self.stats.connected.store(true, Ordering::Relaxed);
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

    /// One read, repeated after timeouts and transport errors as `retries` allow; pushes
    /// one sample per point of the read. Returns whether the PLC answered, and the error.
    async fn read(&mut self, read: &Read, samples: &mut Vec<Sample>) -> (bool, Option<String>) {
        let mut attempt = 0;
        let dev: &McDevice = self.device;
        let (device, points) = (&dev.name, &dev.points);
        loop {
            self.connect_if_due().await;
            let connection = match &mut self.link {
                Link::Up(connection) => connection,
                Link::Down { reason, .. } => {
                    let (ts, reason) = (clock::now_ms(), reason.clone());
                    for &p in &read.points {
                        samples.push(Sample::bad(
                            device.clone(),
                            points[p].name.clone(),
                            ts,
                            &reason,
                        ));
                    }
                    return (false, Some(reason));
                }
            };
            let result = connection
                .read(read.kind.code, read.head(), read.words, dev.timeout)
                .await;
            let ts = clock::now_ms();
            let error = match result {
                Ok(data) => {
                    for &p in &read.points {
                        let point = &points[p];
                        let at = 2 * (point.first_word() - read.first) as usize;
                        let own = data.get(at..at + 2 * point.words() as usize).unwrap_or(&[]);
                        samples.push(match point.decode(own) {
                            Ok(value) => {
                                Sample::good(device.clone(), point.name.clone(), ts, value)
                            }
                            Err(e) => {
                                Sample::bad(device.clone(), point.name.clone(), ts, e.to_string())
                            }
                        });
                    }
                    self.backoff.reset();
                    self.stats.last_good_read_ms.store(ts, Ordering::Relaxed);
                    return (true, None);
                }
                Err(error) => error,
            };
            DeviceStats::bump(&self.stats.read_errors);
            let retry = error.is_retryable() && attempt < dev.retries;
            match &error {
                McError::Refused(_) => self.backoff.reset(),
                McError::Malformed(_) | McError::Timeout => {
                    self.lose(error.to_string(), Instant::now());
                }
                McError::Io(_) => {
                    let retry_at = if retry {
                        Instant::now()
                    } else {
                        Instant::now() + self.backoff.next_delay()
                    };
                    self.lose(error.to_string(), retry_at);
                }
            }
            if !retry {
                let reason = error.to_string();
                for &p in &read.points {
                    samples.push(Sample::bad(
                        device.clone(),
                        points[p].name.clone(),
                        ts,
                        &reason,
                    ));
                }
                return (error.plc_answered(), Some(reason));
            }
            attempt += 1;
        }
    }
}

impl Cycle for Poller<'_> {
    async fn cycle(&mut self) -> Vec<Sample> {
        self.connect_if_due().await;
        let mut samples = Vec::with_capacity(self.device.points.len());
        if let Link::Down { reason, .. } = &self.link {
            let (ts, reason) = (clock::now_ms(), reason.clone());
            for point in &self.device.points {
                samples.push(Sample::bad(
                    self.device.name.clone(),
                    point.name.clone(),
                    ts,
                    &reason,
                ));
            }
            self.failures.failed(&reason);
            return samples;
        }
        let mut answered = false;
        let mut last_error = None;
        let plan = self.plan;
        for read in &plan.reads {
            let (ok, error) = self.read(read, &mut samples).await;
            answered |= ok;
            if error.is_some() {
                last_error = error;
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
