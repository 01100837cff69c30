//! Logging a device's failures without a storm: one line when it stops answering (with
//! the reason), one when it answers again (with the outage's length and counts), and in
//! between one summary per interval, not a line per failed read or reconnect attempt.
//!
//! Every collector reports each poll cycle (or connect attempt) to its [`FailureLog`]:
//! [`answered`](FailureLog::answered) when the device answered anything, else
//! [`failed`](FailureLog::failed) with the reason. The counts in the lines are the
//! device's own [`DeviceStats`] counters since its last answer, so the log and `/status`
//! agree. A summary is written at the first failure after the interval is up, so it comes
//! at most one reconnect backoff late.
//!
//! The log also keeps the stats' [`LastError`](crate::LastError): the reason of the latest
//! failure while the device does not answer, cleared when it answers again. The gateway's
//! status reports it.

use crate::DeviceStats;
use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{info, warn};

/// How often a device that keeps failing is summarized, unless its stats say otherwise.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(300);

/// The log state of one device:
/// - `Starting` → `Up` on its first answer (logged at info);
/// - `Starting` or `Up` → `Down` on a failure (logged at warn, with the reason);
/// - `Down` → `Down` on further failures: counted by the stats, summarized at warn once
///   per interval;
/// - `Down` → `Up` on an answer (logged at info, with the outage's length and counts).
#[derive(Debug)]
enum State {
    Starting,
    Up,
    Down(Outage),
}

/// What is known of the current outage.
#[derive(Debug)]
struct Outage {
    since: Instant,
    next_summary: Instant,
    last_error: String,
}

/// The failure log of one device (or one unit on a bus); see the module note.
#[derive(Debug)]
pub struct FailureLog<'a> {
    device: &'a str,
    peer: String,
    stats: &'a DeviceStats,
    state: State,
    /// The stats' counters at the device's last answer: the outage's counts are the
    /// difference.
    read_errors_base: u64,
    reconnects_base: u64,
}

impl<'a> FailureLog<'a> {
    /// The log of `device`, reached at `peer` (an address, endpoint or bus and unit), whose
    /// counters are `stats`.
    pub fn new(device: &'a str, peer: impl Into<String>, stats: &'a DeviceStats) -> Self {
        FailureLog {
            device,
            peer: peer.into(),
            stats,
            state: State::Starting,
            read_errors_base: stats.read_errors.load(Ordering::Relaxed),
            reconnects_base: stats.reconnects.load(Ordering::Relaxed),
        }
    }

    /// The device answered (even with an exception): it is up.
    pub fn answered(&mut self) {
        match std::mem::replace(&mut self.state, State::Up) {
            State::Starting => {
                // An earlier log of the same stats (a collector that builds its log anew)
                // may have left an error behind.
                self.stats.last_error.set(None);
                info!(device = %self.device, peer = %self.peer, "device answers");
            }
            State::Up => {}
            State::Down(outage) => {
                self.stats.last_error.set(None);
                let (failed_reads, reconnect_attempts) = self.counts();
                info!(
                    device = %self.device,
                    peer = %self.peer,
                    down_for = %Span(outage.since.elapsed()),
                    failed_reads,
                    reconnect_attempts,
                    "device answers again"
                );
            }
        }
        self.read_errors_base = self.stats.read_errors.load(Ordering::Relaxed);
        self.reconnects_base = self.stats.reconnects.load(Ordering::Relaxed);
    }

    /// The device did not answer at all, for `error`; call it after counting the failure
    /// in the stats.
    pub fn failed(&mut self, error: &dyn fmt::Display) {
        let now = Instant::now();
        let interval = self.stats.failure_summary;
        let (failed_reads, reconnect_attempts) = self.counts();
        match &mut self.state {
            State::Starting | State::Up => {
                let last_error = error.to_string();
                self.stats.last_error.set(Some(&last_error));
                warn!(device = %self.device, peer = %self.peer, error = %last_error, "device not answering");
                self.state = State::Down(Outage {
                    since: now,
                    next_summary: now + interval,
                    last_error,
                });
            }
            State::Down(outage) => {
                outage.last_error = error.to_string();
                self.stats.last_error.set(Some(&outage.last_error));
                if now < outage.next_summary {
                    return;
                }
                outage.next_summary = now + interval;
                warn!(
                    device = %self.device,
                    peer = %self.peer,
                    down_for = %Span(now - outage.since),
                    failed_reads,
                    reconnect_attempts,
                    last_error = %outage.last_error,
                    "device still not answering"
                );
            }
        }
    }

    /// Failed reads and reconnect attempts since the device last answered.
    fn counts(&self) -> (u64, u64) {
        let reads = self.stats.read_errors.load(Ordering::Relaxed);
        let reconnects = self.stats.reconnects.load(Ordering::Relaxed);
        (
            reads.saturating_sub(self.read_errors_base),
            reconnects.saturating_sub(self.reconnects_base),
        )
    }
}

/// A duration for people: `850ms`, `42s`, `5m 3s`, `2h 5m`, `3d 4h`.
pub struct Span(pub Duration);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        match s {
            0 => write!(f, "{}ms", self.0.as_millis()),
            1..60 => write!(f, "{s}s"),
            60..3600 => write!(f, "{}m {}s", s / 60, s % 60),
            3600..86400 => write!(f, "{}h {}m", s / 3600, s % 3600 / 60),
            _ => write!(f, "{}d {}h", s / 86400, s % 86400 / 3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_testkit::LogCapture;

    #[test]
    fn spans_read_like_people_write_them() {
        let cases = [
            (Duration::from_millis(850), "850ms"),
            (Duration::from_secs(42), "42s"),
            (Duration::from_secs(303), "5m 3s"),
            (Duration::from_secs(2 * 3600 + 5 * 60 + 9), "2h 5m"),
            (Duration::from_secs(3 * 86400 + 4 * 3600 + 1), "3d 4h"),
        ];
        for (d, text) in cases {
            assert_eq!(Span(d).to_string(), text);
        }
    }

    /// A device failing 1,000 times logs its outage's start, one summary per interval, and
    /// its end: four lines, not a thousand.
    #[tokio::test(start_paused = true)]
    async fn a_failing_device_is_logged_on_change_and_summarized_per_interval() {
        let captured = LogCapture::default();
        let _guard = captured.install();
        let stats = DeviceStats {
            failure_summary: Duration::from_secs(60),
            ..DeviceStats::default()
        };
        let mut log = FailureLog::new("press", "127.0.0.1:502", &stats);
        log.answered();
        for i in 0..1000 {
            DeviceStats::bump(&stats.read_errors);
            if i % 10 == 0 {
                DeviceStats::bump(&stats.reconnects);
            }
            log.failed(&format!("timeout {i}"));
            // 1,000 failures over 125 s: summaries at 60 s and 120 s.
            tokio::time::advance(Duration::from_millis(125)).await;
        }
        assert_eq!(stats.last_error.get().as_deref(), Some("timeout 999"));
        log.answered();
        assert_eq!(
            stats.last_error.get(),
            None,
            "cleared when it answers again"
        );
        log.answered();

        let lines = captured.lines();
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert!(lines[0].contains("INFO") && lines[0].contains("device answers"));
        assert!(lines[1].contains("WARN") && lines[1].contains("device not answering"));
        assert!(lines[1].contains("error=timeout 0"), "{}", lines[1]);
        for (summary, reads) in [(&lines[2], 481), (&lines[3], 961)] {
            assert!(summary.contains("device still not answering"), "{summary}");
            assert!(
                summary.contains(&format!("failed_reads={reads}")),
                "{summary}"
            );
            assert!(summary.contains("reconnect_attempts="), "{summary}");
            assert!(summary.contains("last_error=timeout"), "{summary}");
        }
        assert!(lines[2].contains("down_for=1m 0s"), "{}", lines[2]);
        assert!(lines[4].contains("INFO") && lines[4].contains("device answers again"));
        assert!(lines[4].contains("down_for=2m 5s"), "{}", lines[4]);
        assert!(lines[4].contains("failed_reads=1000"), "{}", lines[4]);
        assert!(lines[4].contains("reconnect_attempts=100"), "{}", lines[4]);
        assert!(
            lines.iter().all(|l| l.contains("device=press")),
            "{lines:#?}"
        );
    }
}
