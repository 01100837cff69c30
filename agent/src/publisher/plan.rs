//! Which outbox records a session sends next: live first, the backlog behind it.
//!
//! At connect, if more batches wait than fit in one in-flight window, the newest of them
//! and everything appended afterwards form the *live* stream; the older ones form the
//! *backlog*, drained oldest first. Live records are always sent first, and the backlog
//! may hold at most `backlog_slots` of the window, so a live batch never waits for more
//! than the acks of the live batches ahead of it. With no backlog the whole outbox is
//! live and goes out in `seq` order.

use fieldlink_outbox::OutboxStats;

/// The two cursors of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendPlan {
    /// The next live `seq` to send.
    pub live_next: u64,
    /// The next backlog `seq` to send.
    pub backlog_next: u64,
    /// The backlog ends before this `seq` (where live begins).
    pub backlog_end: u64,
    /// The most backlog batches in flight at once.
    pub backlog_slots: usize,
    /// The newest `seq` in the outbox at connect (0 if empty).
    pub newest_at_connect: u64,
}

impl SendPlan {
    /// The plan for a session that starts with the outbox in state `stats`, a window of
    /// `window` batches in flight, and the backlog's share of it.
    pub fn at_connect(stats: &OutboxStats, window: usize, backlog_share: f64) -> Self {
        let backlog_slots =
            ((window as f64 * backlog_share).round() as usize).clamp(1, window.max(1));
        let newest_at_connect = stats.newest_seq.unwrap_or(0);
        match (stats.oldest_seq, stats.newest_seq) {
            (Some(oldest), Some(newest)) if stats.batches > window as u64 => SendPlan {
                live_next: newest,
                backlog_next: oldest,
                backlog_end: newest,
                backlog_slots,
                newest_at_connect,
            },
            (Some(oldest), _) => SendPlan {
                live_next: oldest,
                backlog_next: oldest,
                backlog_end: oldest,
                backlog_slots,
                newest_at_connect,
            },
            (None, _) => SendPlan {
                live_next: stats.next_seq,
                backlog_next: stats.next_seq,
                backlog_end: stats.next_seq,
                backlog_slots,
                newest_at_connect,
            },
        }
    }

    /// True while backlog batches remain to be sent.
    pub fn has_backlog(&self) -> bool {
        self.backlog_next < self.backlog_end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(oldest: u64, newest: u64) -> OutboxStats {
        OutboxStats {
            batches: newest - oldest + 1,
            oldest_seq: Some(oldest),
            newest_seq: Some(newest),
            next_seq: newest + 1,
            ..OutboxStats::default()
        }
    }

    #[test]
    fn a_short_queue_goes_out_in_seq_order() {
        let plan = SendPlan::at_connect(&stats(10, 12), 8, 0.5);
        assert_eq!(plan.live_next, 10);
        assert!(!plan.has_backlog());
    }

    #[test]
    fn after_an_outage_the_newest_goes_first_and_the_rest_is_backlog() {
        let plan = SendPlan::at_connect(&stats(10, 1000), 8, 0.25);
        assert_eq!(
            (
                plan.live_next,
                plan.backlog_next,
                plan.backlog_end,
                plan.backlog_slots
            ),
            (1000, 10, 1000, 2)
        );
    }

    #[test]
    fn an_empty_outbox_starts_live_at_the_next_seq() {
        let empty = OutboxStats {
            next_seq: 42,
            ..OutboxStats::default()
        };
        let plan = SendPlan::at_connect(&empty, 8, 0.5);
        assert_eq!(plan.live_next, 42);
        assert!(!plan.has_backlog());
    }
}
