//! When the retained status goes out again within a session: when a device's health
//! changes (it connects or disconnects, or its last error changes), and at least every
//! `[status] refresh` without a change. The publisher looks for changes once a second (its
//! beat), so a change goes out within about a second and changes cause at most one status a
//! second, however often a device flaps. Counters (errors, the last good read) move with
//! every poll: they ride along in the next status and never cause one, so a dead device
//! failing at every poll costs no extra status.

use crate::telemetry::DeviceTelemetry;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// How soon a status that could not go out (the last one still awaits its PUBACK, or
/// rumqttc's request channel is full) is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// What of one device's health causes a status when it changes.
#[derive(Debug)]
struct Mark {
    name: Arc<str>,
    connected: bool,
    last_error_changes: u64,
}

impl Mark {
    fn of(device: &DeviceTelemetry) -> Self {
        Mark {
            name: device.name.clone(),
            connected: device.stats.connected.load(Ordering::Relaxed),
            last_error_changes: device.stats.last_error.changes(),
        }
    }

    fn matches(&self, device: &DeviceTelemetry) -> bool {
        self.connected == device.stats.connected.load(Ordering::Relaxed)
            && self.last_error_changes == device.stats.last_error.changes()
            && self.name == device.name
    }
}

/// The devices' health marks, taken before a status is built: a change while it is built
/// then causes one status more, never one too few.
#[derive(Debug)]
pub struct Marks(Vec<Mark>);

impl Marks {
    /// The marks of `devices` now.
    pub fn of(devices: &[Arc<DeviceTelemetry>]) -> Self {
        Marks(devices.iter().map(|d| Mark::of(d)).collect())
    }
}

/// Decides when the status goes out again; one per session.
#[derive(Debug)]
pub struct StatusRefresh {
    /// The longest time between two statuses (`[status] refresh`).
    refresh: Duration,
    /// When the next status is due without a change.
    due_at: Instant,
    /// The devices' health in the last status; `None` before the first.
    published: Option<Marks>,
}

impl StatusRefresh {
    /// Nothing published yet: a status is due at once.
    pub fn new(refresh: Duration) -> Self {
        StatusRefresh {
            refresh,
            due_at: Instant::now(),
            published: None,
        }
    }

    /// When the next status is due if nothing changes.
    pub fn due_at(&self) -> Instant {
        self.due_at
    }

    /// True if a device's health differs from that in the last status, or a device was
    /// added or removed. Reads two atomics a device and allocates nothing.
    pub fn changed(&self, devices: &[Arc<DeviceTelemetry>]) -> bool {
        let Some(Marks(published)) = &self.published else {
            return true;
        };
        devices.len() != published.len()
            || devices
                .iter()
                .zip(published)
                .any(|(device, mark)| !mark.matches(device))
    }

    /// A status went out now, built after `marks` were taken.
    pub fn published(&mut self, marks: Marks) {
        self.due_at = Instant::now() + self.refresh;
        self.published = Some(marks);
    }

    /// The status could not go out now: it is due again a second from now.
    pub fn not_taken(&mut self) {
        self.due_at = Instant::now() + RETRY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_collector_api::DeviceStats;

    fn devices(names: &[&str]) -> Vec<Arc<DeviceTelemetry>> {
        names
            .iter()
            .map(|name| Arc::new(DeviceTelemetry::new(Arc::from(*name), "modbus-tcp")))
            .collect()
    }

    /// Without a change the status is due again one refresh period after the last one;
    /// error counts and good reads alone are no change.
    #[tokio::test(start_paused = true)]
    async fn counters_alone_wait_for_the_refresh_period() {
        let devices = devices(&["press-1", "press-2"]);
        let mut refresh = StatusRefresh::new(Duration::from_secs(60));
        assert!(
            refresh.due_at() <= Instant::now(),
            "the first is due at once"
        );
        assert!(refresh.changed(&devices), "nothing published yet");
        refresh.published(Marks::of(&devices));
        assert_eq!(refresh.due_at(), Instant::now() + Duration::from_secs(60));
        for _ in 0..59 {
            tokio::time::advance(Duration::from_secs(1)).await;
            DeviceStats::bump(&devices[0].stats.read_errors);
            DeviceStats::bump(&devices[1].stats.reconnects);
            devices[1]
                .stats
                .last_good_read_ms
                .fetch_add(1000, Ordering::Relaxed);
            assert!(!refresh.changed(&devices));
        }
        refresh.not_taken();
        assert_eq!(refresh.due_at(), Instant::now() + RETRY);
    }

    /// A device that disconnects, or whose error text changes, is a change; the same text
    /// again, at every poll of a dead device, is not.
    #[test]
    fn connecting_disconnecting_and_a_new_error_text_are_changes() {
        let devices = devices(&["press-1", "press-2"]);
        let mut refresh = StatusRefresh::new(Duration::from_secs(60));
        let stats = &devices[1].stats;
        stats.connected.store(true, Ordering::Relaxed);
        refresh.published(Marks::of(&devices));

        stats.connected.store(false, Ordering::Relaxed);
        assert!(refresh.changed(&devices), "disconnected");
        refresh.published(Marks::of(&devices));

        stats.last_error.set(Some("connection refused"));
        assert!(refresh.changed(&devices), "a new error text");
        refresh.published(Marks::of(&devices));
        for _ in 0..10 {
            stats.last_error.set(Some("connection refused"));
            DeviceStats::bump(&stats.reconnects);
            assert!(!refresh.changed(&devices), "the same reason again");
        }

        stats.connected.store(true, Ordering::Relaxed);
        stats.last_error.set(None);
        assert!(refresh.changed(&devices), "back");
    }

    /// A reload that adds, removes or replaces devices is a change.
    #[test]
    fn a_changed_device_list_is_a_change() {
        let before = devices(&["press-1", "press-2"]);
        let mut refresh = StatusRefresh::new(Duration::from_secs(60));
        refresh.published(Marks::of(&before));
        assert!(!refresh.changed(&before));
        assert!(refresh.changed(&devices(&["press-1"])));
        assert!(refresh.changed(&devices(&["press-1", "press-3"])));
        assert!(!refresh.changed(&devices(&["press-1", "press-2"])));
    }
}
