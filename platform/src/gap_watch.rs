//! Warns of batches that stay missing.
//!
//! A `seq` jump opens a gap, and most gaps close within moments: an agent back from an
//! outage sends live data first and its backlog beside it, and with a shared
//! subscription a gateway's batches reach the instances out of order. So a new gap is
//! only counted; this watcher looks, every [`check_period`], for gaps still open
//! `grace` after they were detected and logs each gateway's once, as a WARN. The
//! database marks a gap reported in the same statement that finds it, so with several
//! instances each gap is logged by exactly one.

use crate::clock::now_ms;
use crate::ingest::IngestCounters;
use crate::store::{StaleGap, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Stale gaps taken from the database per check (the rest wait for the next check).
const REPORT_LIMIT: u32 = 1000;

/// How often to look for stale gaps: a quarter of the grace period, from 100 ms to 1 min.
pub fn check_period(grace: Duration) -> Duration {
    (grace / 4).clamp(Duration::from_millis(100), Duration::from_secs(60))
}

/// Reports stale gaps until `shutdown` fires.
pub async fn run(
    store: Store,
    counters: Arc<IngestCounters>,
    grace: Duration,
    shutdown: CancellationToken,
) {
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let mut ticks = tokio::time::interval(check_period(grace));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let now = now_ms();
        match store
            .report_stale_gaps(now.saturating_sub(grace_ms), now, REPORT_LIMIT)
            .await
        {
            Ok(gaps) => {
                counters.count_stale_gaps(gaps.len() as u64);
                warn_by_gateway(&gaps, now);
            }
            Err(e) => tracing::error!(error = %e, "cannot look for stale gaps"),
        }
    }
}

/// One WARN per gateway: how many batches are missing, since when, and the first range.
fn warn_by_gateway(gaps: &[StaleGap], now: i64) {
    let mut by_gateway: BTreeMap<&str, Vec<&StaleGap>> = BTreeMap::new();
    for gap in gaps {
        by_gateway.entry(&gap.gateway).or_default().push(gap);
    }
    for (gateway, gaps) in by_gateway {
        let missing: u64 = gaps.iter().map(|g| g.gap.missing_batches()).sum();
        let oldest = gaps.iter().map(|g| g.detected_at).min().unwrap_or(now);
        let first = gaps.iter().map(|g| g.gap).min_by_key(|g| g.first_seq);
        tracing::warn!(
            gateway = %gateway,
            gaps = gaps.len(),
            missing_batches = missing,
            first_missing = first.map(|g| g.first_seq),
            last_missing = first.map(|g| g.last_seq),
            missing_for_s = (now - oldest) / 1000,
            "batches still missing: the gateway may still be sending its backlog, or its \
             outbox dropped them when full (see its status: backlog, evictions)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_period_is_a_quarter_of_the_grace_within_bounds() {
        assert_eq!(
            check_period(Duration::from_secs(600)),
            Duration::from_secs(60)
        );
        assert_eq!(
            check_period(Duration::from_secs(120)),
            Duration::from_secs(30)
        );
        assert_eq!(
            check_period(Duration::from_millis(100)),
            Duration::from_millis(100)
        );
    }
}
