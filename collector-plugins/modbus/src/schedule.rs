//! The poll schedule every Modbus collector runs: one cycle per tick on a fixed grid,
//! overrun ticks skipped and counted, each cycle's samples handed over as one batch.

use crate::read::skipped_ticks;
use fieldlink_collector_api::{CollectorContext, DeviceStats};
use fieldlink_wire::Sample;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::{self, Instant, MissedTickBehavior};
use tracing::debug;

/// One poll cycle of a device: every point read once, one sample per point.
pub(crate) trait Cycle {
    /// Reads every point once; one sample per point, good or bad.
    fn cycle(&mut self) -> impl Future<Output = Vec<Sample>> + Send;
}

/// Runs `poller`'s cycles every `period` until shutdown or until the sink closes.
pub(crate) async fn poll_loop<C: Cycle + Send>(
    poller: &mut C,
    ctx: &CollectorContext,
    device: &str,
    period: Duration,
) {
    let stats: &DeviceStats = &ctx.stats;
    // A zero period would panic in `interval`; configuration rejects it, this guards.
    let period = period.max(Duration::from_millis(1));
    let mut ticker = time::interval(period);
    // Skip keeps the ticks on the original grid: an overrunning cycle costs the ticks it
    // overlapped (counted), never a burst of catch-up reads.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut previous_tick: Option<Instant> = None;
    loop {
        let Some(tick) = ctx.shutdown.run_until_cancelled(ticker.tick()).await else {
            break;
        };
        if let Some(previous) = previous_tick {
            let skipped = skipped_ticks(previous, tick, period);
            stats.missed_ticks.fetch_add(skipped, Ordering::Relaxed);
        }
        previous_tick = Some(tick);

        let started = Instant::now();
        let Some(samples) = ctx.shutdown.run_until_cancelled(poller.cycle()).await else {
            break;
        };
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        stats.last_cycle_us.store(took, Ordering::Relaxed);

        match ctx
            .shutdown
            .run_until_cancelled(ctx.sink.send(samples))
            .await
        {
            Some(Ok(())) => {}
            Some(Err(closed)) => {
                debug!(device, "{closed}; stopping");
                break;
            }
            None => break,
        }
    }
    stats.connected.store(false, Ordering::Relaxed);
    debug!(device, "collector stopped");
}
