//! Per-device counters that a collector updates and the agent reads for status and logs.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Live counters of one device, shared between its collector and the agent.
#[derive(Debug)]
pub struct DeviceStats {
    /// True while the transport to the device is up.
    pub connected: AtomicBool,
    /// Completed read cycles.
    pub cycles: AtomicU64,
    /// Poll ticks skipped because the previous cycle overran.
    pub missed_ticks: AtomicU64,
    /// Failed requests (timeouts, exceptions, transport errors).
    pub read_errors: AtomicU64,
    /// Connection attempts that failed or connections lost.
    pub reconnects: AtomicU64,
    /// When a read last succeeded, ms since the Unix epoch (0: never).
    pub last_good_read_ms: AtomicI64,
    /// How long the last cycle took, in microseconds.
    pub last_cycle_us: AtomicU64,
    /// How often the log summarizes a device that keeps failing
    /// ([`crate::failure_log::SUMMARY_INTERVAL`]; tests shorten it).
    pub failure_summary: Duration,
}

impl Default for DeviceStats {
    fn default() -> Self {
        DeviceStats {
            connected: AtomicBool::default(),
            cycles: AtomicU64::default(),
            missed_ticks: AtomicU64::default(),
            read_errors: AtomicU64::default(),
            reconnects: AtomicU64::default(),
            last_good_read_ms: AtomicI64::default(),
            last_cycle_us: AtomicU64::default(),
            failure_summary: crate::failure_log::SUMMARY_INTERVAL,
        }
    }
}

impl DeviceStats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
