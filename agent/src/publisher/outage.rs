//! Logging the broker's outages without a storm: one warning when the connection is lost
//! (with the reason), one line when it is back (with the outage's length and attempts),
//! and in between one summary per interval, not a line per reconnect attempt.

use fieldlink_collector_api::Span;
use std::time::Duration;
use tokio::time::Instant;

/// How often an outage that goes on is summarized.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(300);

/// What is known of the current outage.
#[derive(Debug)]
struct Outage {
    since: Instant,
    attempts: u64,
    next_summary: Instant,
}

/// The log state of the publisher's connection to the broker.
#[derive(Debug)]
pub struct OutageLog {
    broker: String,
    interval: Duration,
    outage: Option<Outage>,
}

impl OutageLog {
    /// The log of the connection to `broker`, summarizing every `interval`.
    pub fn new(broker: impl Into<String>, interval: Duration) -> Self {
        OutageLog {
            broker: broker.into(),
            interval,
            outage: None,
        }
    }

    /// A session ended or a connect attempt failed; the next attempt is in `retry_in`.
    pub fn failed(&mut self, error: &str, retry_in: Duration) {
        let now = Instant::now();
        let broker = &self.broker;
        match &mut self.outage {
            None => {
                tracing::warn!(%broker, %error, retry_in = %Span(retry_in), "MQTT connection lost; collecting into the outbox");
                self.outage = Some(Outage {
                    since: now,
                    attempts: 1,
                    next_summary: now + self.interval,
                });
            }
            Some(outage) => {
                outage.attempts += 1;
                tracing::debug!(%broker, %error, retry_in = %Span(retry_in), "MQTT connect attempt failed");
                if now >= outage.next_summary {
                    outage.next_summary = now + self.interval;
                    tracing::warn!(
                        %broker,
                        down_for = %Span(now - outage.since),
                        attempts = outage.attempts,
                        last_error = %error,
                        "MQTT broker still unreachable; collecting into the outbox"
                    );
                }
            }
        }
    }

    /// A session is up.
    pub fn connected(&mut self, gateway: &str) {
        let broker = &self.broker;
        match self.outage.take() {
            None => tracing::info!(%broker, %gateway, "MQTT connected"),
            Some(outage) => tracing::info!(
                %broker,
                %gateway,
                down_for = %Span(outage.since.elapsed()),
                attempts = outage.attempts,
                "MQTT connected again"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    /// Collects what the fmt subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// 600 failed attempts, one every second for 10 minutes, then a connection: one
    /// warning, two summaries (at 5 and 10 minutes), one recovery line.
    #[tokio::test(start_paused = true)]
    async fn a_long_outage_is_logged_on_change_and_summarized_not_per_attempt() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let mut log = OutageLog::new("mqtt://127.0.0.1:1883", SUMMARY_INTERVAL);
        log.connected("gw-1");
        for _ in 0..=600 {
            log.failed("connection refused", Duration::from_secs(1));
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        log.connected("gw-1");
        let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].contains("MQTT connected"), "{text}");
        assert!(lines[1].contains("MQTT connection lost"), "{text}");
        assert!(
            lines[2].contains("still unreachable")
                && lines[2].contains("down_for=5m 0s")
                && lines[2].contains("attempts=301"),
            "{text}"
        );
        assert!(
            lines[3].contains("still unreachable")
                && lines[3].contains("down_for=10m 0s")
                && lines[3].contains("attempts=601"),
            "{text}"
        );
        assert!(
            lines[4].contains("MQTT connected again") && lines[4].contains("attempts=601"),
            "{text}"
        );
    }
}
