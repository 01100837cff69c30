//! The alarm timers: `stale`, `gateway_offline`, `device_down` and the `for_seconds` of a
//! rule whose samples stopped. Every instance ticks each second; the one that holds the
//! lease in the database evaluates, the others wait, and when the holder dies its lease
//! lapses within [`LEASE`] and another takes over. So they fire within a few seconds of
//! their time, once.

use crate::clock::now_ms;
use crate::store::Store;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the timers tick.
pub const TICK: Duration = Duration::from_secs(1);
/// How long a lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(3);

/// Ticks until `shutdown` fires; `instance` names this one in the lease.
pub async fn run(store: Store, instance: String, shutdown: CancellationToken) {
    let lease_ms = LEASE.as_millis() as i64;
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match store.alarm_tick(&instance, now_ms(), lease_ms).await {
            Ok(outcome) => {
                if outcome.leader != leading {
                    leading = outcome.leader;
                    tracing::info!(
                        leading,
                        "alarm timers: lease {}",
                        if leading { "taken" } else { "lost" }
                    );
                }
                if outcome.raised + outcome.cleared > 0 {
                    tracing::debug!(
                        raised = outcome.raised,
                        cleared = outcome.cleared,
                        "alarm timers fired"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "alarm timers: tick failed; retrying"),
        }
    }
}
