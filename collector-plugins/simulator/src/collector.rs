//! [`SimulatorCollector`]: a simulated device as a [`Collector`].

use crate::signal::{Signal, seed_for};
use fieldlink_collector_api::BoxFuture;
use fieldlink_collector_api::clock;
use fieldlink_collector_api::{Collector, CollectorContext, DeviceStats, SinkClosed};
use fieldlink_wire::Sample;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::time::{MissedTickBehavior, interval, timeout};

/// How long a cycle that was already read may still wait for the pipeline to take it once
/// shutdown has fired; after that it is dropped so that shutdown is not held up.
const SEND_GRACE: Duration = Duration::from_secs(1);

/// One simulated point: its name (which also seeds its curve, but for the machine signals,
/// seeded by the device's name so that one device is one machine) and its signal.
#[derive(Debug, Clone, PartialEq)]
pub struct SimPoint {
    /// The point's name, unique within its device.
    pub name: Arc<str>,
    /// The shape of its values over time.
    pub signal: Signal,
}

/// A simulated device as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorDevice {
    /// The device's name.
    pub name: Arc<str>,
    /// How often all points are sampled; `Duration::ZERO` samples continuously, as fast
    /// as the pipeline takes them (benchmarks).
    pub poll: Duration,
    /// The points, in configuration order.
    pub points: Vec<SimPoint>,
}

/// The collector of a [`SimulatorDevice`].
///
/// Every `poll` period it sends one `Vec<Sample>` with one good sample per point, all
/// stamped with the tick's wall time. Ticks follow a drift-free schedule; a tick missed
/// because the pipeline was slow is skipped and counted in `missed_ticks`. With a zero
/// `poll` it generates cycles back to back, yielding between them, each stamped with the
/// wall time but at least 1 ms after the previous cycle, so timestamps strictly increase.
/// It returns when the context's token fires or the sink closes.
#[derive(Debug)]
pub struct SimulatorCollector {
    device: SimulatorDevice,
}

impl SimulatorCollector {
    /// A collector for `device`.
    pub fn new(device: SimulatorDevice) -> Self {
        SimulatorCollector { device }
    }
}

impl Collector for SimulatorCollector {
    fn name(&self) -> &Arc<str> {
        &self.device.name
    }

    fn run(self: Box<Self>, ctx: CollectorContext) -> BoxFuture {
        Box::pin(run(self.device, ctx))
    }
}

/// A point with its seed computed once.
struct Seeded {
    name: Arc<str>,
    signal: Signal,
    seed: u64,
}

async fn run(device: SimulatorDevice, ctx: CollectorContext) {
    let points: Vec<Seeded> = device
        .points
        .iter()
        .map(|p| Seeded {
            name: Arc::clone(&p.name),
            signal: p.signal,
            seed: seed_for(if p.signal.is_machine() {
                &device.name
            } else {
                &p.name
            }),
        })
        .collect();
    ctx.stats.connected.store(true, Ordering::Relaxed);
    let result = if device.poll.is_zero() {
        run_continuously(&device.name, &points, &ctx).await
    } else {
        run_polled(&device.name, device.poll, &points, &ctx).await
    };
    ctx.stats.connected.store(false, Ordering::Relaxed);
    match result {
        Ok(()) => tracing::debug!(device = %device.name, "simulator stopped"),
        Err(SinkClosed) => tracing::debug!(device = %device.name, "simulator stopped: sink closed"),
    }
}

async fn run_polled(
    device: &Arc<str>,
    poll: Duration,
    points: &[Seeded],
    ctx: &CollectorContext,
) -> Result<(), SinkClosed> {
    let mut ticks = interval(poll);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut previous: Option<tokio::time::Instant> = None;
    loop {
        let tick = tokio::select! {
            biased;
            () = ctx.shutdown.cancelled() => return Ok(()),
            tick = ticks.tick() => tick,
        };
        // `Skip` keeps ticks on the grid `start + k·poll`, so the gap between two ticks
        // that were handed out tells how many were skipped.
        if let Some(previous) = previous {
            let gap = tick.saturating_duration_since(previous).as_nanos() / poll.as_nanos();
            let missed = u64::try_from(gap.saturating_sub(1)).unwrap_or(u64::MAX);
            if missed > 0 {
                ctx.stats.missed_ticks.fetch_add(missed, Ordering::Relaxed);
            }
        }
        previous = Some(tick);
        cycle(device, points, clock::now_ms(), ctx).await?;
    }
}

async fn run_continuously(
    device: &Arc<str>,
    points: &[Seeded],
    ctx: &CollectorContext,
) -> Result<(), SinkClosed> {
    let mut ts = i64::MIN;
    while !ctx.shutdown.is_cancelled() {
        ts = clock::now_ms().max(ts.saturating_add(1));
        cycle(device, points, ts, ctx).await?;
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// Samples every point at `ts` and hands the cycle to the sink.
async fn cycle(
    device: &Arc<str>,
    points: &[Seeded],
    ts: i64,
    ctx: &CollectorContext,
) -> Result<(), SinkClosed> {
    let started = Instant::now();
    let samples: Vec<Sample> = points
        .iter()
        .map(|p| {
            Sample::good(
                Arc::clone(device),
                Arc::clone(&p.name),
                ts,
                p.signal.value(p.seed, ts),
            )
        })
        .collect();
    let stats: &DeviceStats = &ctx.stats;
    DeviceStats::bump(&stats.cycles);
    stats.last_good_read_ms.store(ts, Ordering::Relaxed);
    stats.last_cycle_us.store(
        u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );

    let send = ctx.sink.send(samples);
    tokio::pin!(send);
    tokio::select! {
        sent = &mut send => sent,
        () = ctx.shutdown.cancelled() => {
            // Shutdown drains the pipeline, so a cycle already read is usually taken at
            // once; only a stuck pipeline loses it.
            timeout(SEND_GRACE, send).await.unwrap_or(Ok(()))
        }
    }
}
