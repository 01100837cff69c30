//! Per-device counters that a collector updates and the agent reads for status and logs.

use fieldlink_wire::DeviceHealth;
use std::sync::Mutex;
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
    /// Why the device does not answer, while it does not (kept by its
    /// [`FailureLog`](crate::FailureLog)).
    pub last_error: LastError,
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
            last_error: LastError::default(),
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

/// Why a device does not answer, at most [`DeviceHealth::LAST_ERROR_MAX_CHARS`]
/// characters, and how often that text changed: the publisher compares the count, not the
/// text, to see cheaply whether a device's health changed since its last status.
#[derive(Debug, Default)]
pub struct LastError {
    text: Mutex<Option<Box<str>>>,
    changes: AtomicU64,
}

impl LastError {
    /// Sets the error (cut to its bound), or clears it with `None`; counts a change only
    /// if the text differs from the one held.
    pub fn set(&self, error: Option<&str>) {
        let error = error.map(DeviceHealth::bounded_error);
        let Ok(mut text) = self.text.lock() else {
            return;
        };
        if text.as_deref() != error {
            *text = error.map(Box::from);
            self.changes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The error held, if any.
    pub fn get(&self) -> Option<String> {
        self.text
            .lock()
            .ok()
            .and_then(|text| text.as_deref().map(str::to_owned))
    }

    /// How many times the text changed.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_error_counts_changes_of_its_text_only_and_keeps_within_its_bound() {
        let error = LastError::default();
        assert_eq!((error.get(), error.changes()), (None, 0));
        error.set(None);
        assert_eq!(error.changes(), 0, "clearing nothing is no change");
        error.set(Some("timeout"));
        error.set(Some("timeout"));
        assert_eq!(
            (error.get().as_deref(), error.changes()),
            (Some("timeout"), 1)
        );
        error.set(Some("connection refused"));
        error.set(None);
        assert_eq!((error.get(), error.changes()), (None, 3));
        let long = "错".repeat(1000);
        error.set(Some(&long));
        let held = error.get().unwrap_or_default();
        assert_eq!(held.chars().count(), DeviceHealth::LAST_ERROR_MAX_CHARS);
        // The same long text again is the same (cut) text: no change.
        error.set(Some(&long));
        assert_eq!(error.changes(), 4);
    }
}
