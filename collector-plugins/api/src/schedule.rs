//! The poll schedule every polling collector runs: one cycle per tick on a fixed grid,
//! overrun ticks skipped and counted, each cycle's samples handed over as one batch.
//!
//! Modbus, S7, MC and DL/T 645 collectors all poll; they differ in what a cycle does, not
//! in when it runs, so the schedule is written once here.

use crate::{CollectorContext, DeviceStats};
use fieldlink_wire::Sample;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::{self, Instant, MissedTickBehavior};
use tracing::debug;

/// One poll cycle of a device: every point read once, one sample per point.
pub trait Cycle {
    /// Reads every point once; one sample per point, good or bad.
    fn cycle(&mut self) -> impl Future<Output = Vec<Sample>> + Send;
}

/// Runs `poller`'s cycles every `period` until shutdown or until the sink closes.
pub async fn poll_loop<C: Cycle + Send>(
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

/// The ticks skipped between two consecutive ticks of a `Skip` interval. Both sit on the
/// interval's grid, so their distance is a whole number of periods.
pub fn skipped_ticks(previous: Instant, tick: Instant, period: Duration) -> u64 {
    let period = period.as_nanos().max(1);
    let periods = (tick.saturating_duration_since(previous).as_nanos() + period / 2) / period;
    u64::try_from(periods.saturating_sub(1)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_ticks_counts_whole_periods_between_ticks() {
        let period = Duration::from_millis(100);
        let start = Instant::now();
        assert_eq!(skipped_ticks(start, start + period, period), 0);
        assert_eq!(skipped_ticks(start, start + period * 3, period), 2);
        assert_eq!(skipped_ticks(start, start, period), 0);
    }
}
