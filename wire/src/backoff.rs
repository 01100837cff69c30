//! The reconnect policy both ends of the MQTT link follow: after a lost or refused
//! connection, wait [`RECONNECT_INITIAL`], then twice as long after each further failure, up
//! to [`RECONNECT_MAX`] ([`Backoff::reconnect`]). The agent's publisher and the platform's
//! ingest sessions use it, and the collectors use the same [`Backoff`] with their own
//! bounds for their devices.
//!
//! When the backoff starts over is each end's decision, taken where its work succeeds:
//! the agent resets it on the first PUBACK of a connection, not at CONNACK, so that a
//! broker that accepts and then drops every connection is not redialled at the first
//! step's rate forever; the ingest resets it at CONNACK, where its subscription is renewed.
//!
//! Jitter: many gateways restarted together (after a power cut) must not reconnect in
//! lockstep, so each delay of [`Backoff::new`] is drawn from the upper half of its step. A
//! client alone on its link (the platform's ingest) takes the exact steps instead
//! ([`Backoff::without_jitter`]).

use std::time::Duration;

/// The first delay before reconnecting to the broker.
pub const RECONNECT_INITIAL: Duration = Duration::from_millis(250);
/// The longest delay before reconnecting to the broker.
pub const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// Delays between attempts: doubling from `initial` up to `max`, each drawn uniformly from
/// the upper half of its step unless built [`without_jitter`](Backoff::without_jitter).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    jitter: bool,
}

impl Backoff {
    /// A jittered backoff starting at `initial` and capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial,
            jitter: true,
        }
    }

    /// The MQTT link's reconnect policy: [`RECONNECT_INITIAL`] to [`RECONNECT_MAX`], jittered.
    pub fn reconnect() -> Self {
        Backoff::new(RECONNECT_INITIAL, RECONNECT_MAX)
    }

    /// The same steps, each delay exactly its step.
    pub fn without_jitter(self) -> Self {
        Backoff {
            jitter: false,
            ..self
        }
    }

    /// The delay before the next attempt; each call doubles the following one's step.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        if !self.jitter {
            return step;
        }
        let half = step / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_stay_in_the_upper_half() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let ceilings = [100, 200, 400, 800, 1000, 1000];
        for ceiling in ceilings {
            let d = b.next_delay();
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d:?} not in [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn without_jitter_the_delays_are_the_steps() {
        let mut b = Backoff::reconnect().without_jitter();
        let delays: Vec<u64> = (0..10).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(
            delays,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        b.reset();
        assert_eq!(b.next_delay(), RECONNECT_INITIAL);
    }
}
