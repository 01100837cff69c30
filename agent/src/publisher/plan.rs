//! Which outbox records a session sends next: live first, the backlog behind it.
//!
//! At connect, if more batches wait than fit in one in-flight window, the newest of them
//! and everything appended afterwards form the *live* stream; the older ones form the
//! *backlog*, drained oldest first. Live records are always sent first, and the backlog
//! may hold at most `backlog_slots` of the window, so a live batch never waits for more
//! than the acks of the live batches ahead of it. With no backlog the whole outbox is
//! live and goes out in `seq` order.
//!
//! With `delete_on = "platform_ack"`, batches sent and awaiting the platform's ack are
//! skipped by every read, and a third cursor, *resend*, walks the batches that went back to
//! pending (an ack listed them as missing, or none covered them in time). They lie behind
//! the live and backlog cursors; the resend lane sends them oldest first within the
//! backlog's share of the window, skipping the backlog's own range (the backlog lane sends
//! what lies there).

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
    /// The lowest `seq` that may need sending again, while some may.
    pub resend_next: Option<u64>,
}

impl SendPlan {
    /// The plan for a session that starts with the outbox in state `stats`, a window of
    /// `window` batches in flight, and the backlog's share of it.
    pub fn at_connect(stats: &OutboxStats, window: usize, backlog_share: f64) -> Self {
        let backlog_slots =
            ((window as f64 * backlog_share).round() as usize).clamp(1, window.max(1));
        let newest_at_connect = stats.newest_seq.unwrap_or(0);
        // Batches awaiting the platform's ack are not sent again at connect.
        let unsent = stats.batches.saturating_sub(stats.awaiting_ack_batches);
        match (stats.oldest_seq, stats.newest_seq) {
            (Some(oldest), Some(newest)) if unsent > window as u64 => SendPlan {
                live_next: newest,
                backlog_next: oldest,
                backlog_end: newest,
                backlog_slots,
                newest_at_connect,
                resend_next: None,
            },
            (Some(oldest), _) => SendPlan {
                live_next: oldest,
                backlog_next: oldest,
                backlog_end: oldest,
                backlog_slots,
                newest_at_connect,
                resend_next: None,
            },
            (None, _) => SendPlan {
                live_next: stats.next_seq,
                backlog_next: stats.next_seq,
                backlog_end: stats.next_seq,
                backlog_slots,
                newest_at_connect,
                resend_next: None,
            },
        }
    }

    /// True while backlog batches remain to be sent.
    pub fn has_backlog(&self) -> bool {
        self.backlog_next < self.backlog_end
    }

    /// These batches (ascending) went back to pending: send them again.
    pub fn resend(&mut self, seqs: &[u64]) {
        if let Some(&first) = seqs.first() {
            self.resend_next = Some(self.resend_next.map_or(first, |next| next.min(first)));
        }
    }

    /// The range `[from, below)` the resend lane reads next, if any: below the live
    /// cursor, outside the backlog's unsent range.
    pub fn resend_range(&mut self) -> Option<(u64, u64)> {
        let mut from = self.resend_next?;
        if self.has_backlog() && from >= self.backlog_next && from < self.backlog_end {
            from = self.backlog_end;
        }
        let below = if self.has_backlog() && from < self.backlog_next {
            self.backlog_next.min(self.live_next)
        } else {
            self.live_next
        };
        if from >= below {
            self.resend_next = None;
            return None;
        }
        Some((from, below))
    }

    /// The resend lane has dealt with every `seq` up to `seq`.
    pub fn resent_through(&mut self, seq: u64) {
        self.resend_next = self.resend_next.map(|next| next.max(seq.saturating_add(1)));
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

    #[test]
    fn batches_awaiting_the_platform_do_not_make_a_backlog() {
        let mut s = stats(10, 1000);
        s.awaiting_ack_batches = 990;
        let plan = SendPlan::at_connect(&s, 16, 0.25);
        assert_eq!(plan.live_next, 10);
        assert!(!plan.has_backlog());
    }

    /// The resend lane reads below the live cursor and steps over the backlog's range.
    #[test]
    fn the_resend_lane_skips_the_backlog_range_and_stops_at_live() {
        let mut plan = SendPlan::at_connect(&stats(10, 1000), 8, 0.25);
        plan.live_next = 1005;
        plan.backlog_next = 500;
        assert_eq!(plan.resend_range(), None);
        plan.resend(&[20, 30]);
        assert_eq!(plan.resend_range(), Some((20, 500)));
        plan.resent_through(499);
        assert_eq!(plan.resend_range(), Some((1000, 1005)));
        plan.resend(&[700]);
        assert_eq!(
            plan.resend_range(),
            Some((1000, 1005)),
            "700 is the backlog's"
        );
        plan.resent_through(1004);
        assert_eq!(plan.resend_range(), None);
        plan.resend(&[15]);
        assert_eq!(plan.resend_range(), Some((15, 500)));
    }
}
