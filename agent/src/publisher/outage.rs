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
    use fieldlink_testkit::LogCapture;

    /// 600 failed attempts, one every second for 10 minutes, then a connection: one
    /// warning, two summaries (at 5 and 10 minutes), one recovery line.
    #[tokio::test(start_paused = true)]
    async fn a_long_outage_is_logged_on_change_and_summarized_not_per_attempt() {
        let captured = LogCapture::default();
        let _guard = captured.install();
        let mut log = OutageLog::new("mqtt://127.0.0.1:1883", SUMMARY_INTERVAL);
        log.connected("gw-1");
        for _ in 0..=600 {
            log.failed("connection refused", Duration::from_secs(1));
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        log.connected("gw-1");
        let lines = captured.lines();
        let text = lines.join("\n");
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
