//! The DL/T 645 collector: one meter on a shared RS-485 line, with its own poll schedule.
//!
//! Reads go through the line's scheduler (`fieldlink-serial`), which serializes them with
//! the other meters' reads. A meter that does not answer at all is *silent*: it is polled
//! at a growing interval (its poll period doubling up to [`SILENT_BACKOFF_MAX`], jittered)
//! until it answers again, and meanwhile each of its ticks yields one bad sample per point
//! without using the line, so a dead meter never slows its neighbours.

use crate::frame::{self, MeterAddress};
use crate::ident::{self, DataId, Format};
use crate::line::{Dlt645, MeterError, MeterRead};
use fieldlink_collector_api::decode::apply_scale;
use fieldlink_collector_api::schedule::{Cycle, poll_loop};
use fieldlink_collector_api::{
    BoxFuture, Collector, CollectorContext, DeviceStats, FailureLog, clock,
};
use fieldlink_serial::SerialLine;
use fieldlink_serial::bus::{self, BusHandle, Silence};
use fieldlink_wire::{Sample, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tracing::debug;

/// The longest interval between probes of a silent meter (or its poll period, if longer);
/// a meter that comes back is read again within it.
pub const SILENT_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// One point: a data identifier and what the table says of it.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterPoint {
    /// The point's name, unique within its device.
    pub name: Arc<str>,
    /// What it reads.
    pub id: DataId,
    /// Its encoding, from the standard's table.
    pub format: Format,
    /// Multiplier applied to the value (after its decimals).
    pub scale: f64,
    /// Added after scaling.
    pub offset: f64,
}

impl MeterPoint {
    /// The point's value out of its own bytes.
    pub fn decode(&self, bytes: &[u8]) -> Result<Value, String> {
        if bytes.len() != usize::from(self.format.bytes) {
            return Err(format!(
                "expected {} bytes, got {}",
                self.format.bytes,
                bytes.len()
            ));
        }
        let raw = frame::bcd_value(bytes, self.format.decimals, self.format.signed)
            .map_err(|e| e.to_string())?;
        Ok(apply_scale(raw, self.scale, self.offset))
    }
}

/// A DL/T 645 meter and the points to read from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Dlt645Device {
    /// The device's configured name, the `device` of its samples.
    pub name: Arc<str>,
    /// The line it is on; meters with the same line share one scheduler.
    pub line: SerialLine,
    /// Its address.
    pub meter: MeterAddress,
    /// How often all points are read.
    pub poll: Duration,
    /// How long one read may take, from when it is sent.
    pub timeout: Duration,
    /// How often a read is repeated after a timeout or a transport error.
    pub retries: u8,
    /// Read the points of one group (the phases of a quantity, the tariffs of an energy)
    /// with one block read (`DI1 = FF`), which most three-phase meters offer.
    pub block_reads: bool,
    /// The points, in configuration order.
    pub points: Vec<MeterPoint>,
}

/// One read of a plan: an identifier (a block's, or a point's own) and the points it
/// serves, each with where its bytes start in the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// What is read.
    pub id: DataId,
    /// The points served, as (index into the points, byte offset in the answer).
    pub points: Vec<(usize, usize)>,
}

/// The reads of one cycle: one per point, or one per block of points with block reads.
pub fn plan(points: &[MeterPoint], block_reads: bool) -> Vec<Read> {
    let mut blocks: BTreeMap<DataId, Vec<usize>> = BTreeMap::new();
    let mut reads = Vec::new();
    for (i, point) in points.iter().enumerate() {
        match ident::block_base(point.id) {
            Some(_) if block_reads => blocks.entry(ident::block_of(point.id)).or_default().push(i),
            _ => reads.push(Read {
                id: point.id,
                points: vec![(i, 0)],
            }),
        }
    }
    for (block, members) in blocks {
        if let [single] = members[..] {
            reads.push(Read {
                id: points[single].id,
                points: vec![(single, 0)],
            });
            continue;
        }
        let served = members
            .iter()
            .map(|&i| {
                let point = &points[i];
                let base = ident::block_base(point.id).unwrap_or(0);
                let index = usize::from(point.id.wire()[1].saturating_sub(base));
                (i, index * usize::from(point.format.bytes))
            })
            .collect();
        reads.push(Read {
            id: block,
            points: served,
        });
    }
    reads
}

/// Reads one meter on its poll schedule, through its line's scheduler.
#[derive(Debug)]
pub struct Dlt645Collector {
    device: Dlt645Device,
    plan: Vec<Read>,
}

impl Dlt645Collector {
    /// A collector for `device`; its reads are planned here, once.
    pub fn new(device: Dlt645Device) -> Self {
        let plan = plan(&device.points, device.block_reads);
        Dlt645Collector { device, plan }
    }
}

impl Collector for Dlt645Collector {
    fn name(&self) -> &Arc<str> {
        &self.device.name
    }

    fn run(self: Box<Self>, ctx: CollectorContext) -> BoxFuture {
        Box::pin(async move {
            let Dlt645Collector { device, plan } = *self;
            let line = bus::attach::<Dlt645>(&device.line);
            let mut poller = Poller {
                device: &device,
                plan: &plan,
                stats: &ctx.stats,
                line,
                silence: None,
                failures: FailureLog::new(
                    &device.name,
                    format!("{} meter {}", device.line, device.meter),
                    &ctx.stats,
                ),
            };
            poll_loop(&mut poller, &ctx, &device.name, device.poll).await;
        })
    }
}

struct Poller<'a> {
    device: &'a Dlt645Device,
    plan: &'a [Read],
    stats: &'a DeviceStats,
    line: Arc<BusHandle<Dlt645>>,
    /// Set while the meter does not answer.
    silence: Option<Silence>,
    failures: FailureLog<'a>,
}

impl Poller<'_> {
    /// One read through the line, repeated after timeouts and transport errors as the
    /// device's `retries` allow; each failed attempt that reached the line counts.
    async fn read(&self, id: DataId) -> Result<Vec<u8>, MeterError> {
        let mut attempt = 0;
        loop {
            let request = MeterRead {
                meter: self.device.meter,
                id,
            };
            let result = self
                .line
                .request(request, self.device.timeout, self.silence.is_some())
                .await;
            match result {
                Ok(answer) => return Ok(answer.value),
                Err(error @ MeterError::LinkDown(_)) => return Err(error),
                Err(error) => {
                    DeviceStats::bump(&self.stats.read_errors);
                    if let MeterError::Transport(_) | MeterError::Malformed(_) = error {
                        DeviceStats::bump(&self.stats.reconnects);
                    }
                    if !error.is_retryable() || attempt >= self.device.retries {
                        return Err(error);
                    }
                    attempt += 1;
                }
            }
        }
    }

    fn push_bad<'p>(
        samples: &mut Vec<Sample>,
        device: &Arc<str>,
        points: impl IntoIterator<Item = &'p MeterPoint>,
        ts: i64,
        reason: &str,
    ) {
        for point in points {
            samples.push(Sample::bad(device.clone(), point.name.clone(), ts, reason));
        }
    }

    fn fall_silent(&mut self, reason: String) {
        match &mut self.silence {
            Some(silence) => silence.again(reason),
            None => {
                debug!(device = %self.device.name, meter = %self.device.meter, "meter does not answer; polling it with backoff");
                self.silence = Some(Silence::begin(self.device.poll, SILENT_BACKOFF_MAX, reason));
            }
        }
    }
}

impl Cycle for Poller<'_> {
    async fn cycle(&mut self) -> Vec<Sample> {
        let dev: &Dlt645Device = self.device;
        let (device, points, plan) = (&dev.name, &dev.points, self.plan);
        let mut samples = Vec::with_capacity(points.len());
        if let Some(silence) = &self.silence
            && silence.waiting()
        {
            Self::push_bad(
                &mut samples,
                device,
                points,
                clock::now_ms(),
                &silence.reason,
            );
            self.failures.failed(&silence.reason);
            return samples;
        }
        let mut answered = false;
        let mut last_error = None;
        for (r, read) in plan.iter().enumerate() {
            let result = self.read(read.id).await;
            let ts = clock::now_ms();
            let error = match result {
                Ok(value) => {
                    answered = true;
                    self.stats.last_good_read_ms.store(ts, Ordering::Relaxed);
                    for &(p, at) in &read.points {
                        let point = &points[p];
                        let own = value.get(at..at + usize::from(point.format.bytes));
                        let sample = match own.map(|bytes| point.decode(bytes)) {
                            Some(Ok(v)) => Sample::good(device.clone(), point.name.clone(), ts, v),
                            Some(Err(e)) => Sample::bad(device.clone(), point.name.clone(), ts, e),
                            None => Sample::bad(
                                device.clone(),
                                point.name.clone(),
                                ts,
                                format!(
                                    "the block answer of {} bytes lacks this item",
                                    value.len()
                                ),
                            ),
                        };
                        samples.push(sample);
                    }
                    continue;
                }
                Err(error) => error,
            };
            answered |= error.meter_answered();
            let reason = error.to_string();
            let silent = matches!(error, MeterError::Timeout) && !answered;
            if silent || matches!(error, MeterError::LinkDown(_)) {
                // A meter that has not answered anything this cycle is taken for dead:
                // its other reads would cost a timeout each.
                let rest = plan[r..]
                    .iter()
                    .flat_map(|r| &r.points)
                    .map(|&(p, _)| &points[p]);
                Self::push_bad(&mut samples, device, rest, ts, &reason);
                self.failures.failed(&reason);
                if silent {
                    self.fall_silent(reason);
                }
                self.stats.connected.store(false, Ordering::Relaxed);
                return samples;
            }
            let own = read.points.iter().map(|&(p, _)| &points[p]);
            Self::push_bad(&mut samples, device, own, ts, &reason);
            last_error = Some(reason);
        }
        if answered {
            self.stats.connected.store(true, Ordering::Relaxed);
            self.silence = None;
            self.failures.answered();
        } else if let Some(reason) = last_error {
            self.failures.failed(&reason);
        }
        DeviceStats::bump(&self.stats.cycles);
        samples
    }
}
