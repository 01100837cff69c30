//! Which records are sent (the broker took them) and await the platform's ack, kept in
//! memory only: after a restart every record is pending again (see "Record states" in the
//! crate docs).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// The sent records, by `seq` and by the time they were marked sent.
#[derive(Debug, Default)]
pub struct Sent {
    by_seq: BTreeMap<u64, Instant>,
    /// The same entries ordered by time, so that expiring and the oldest's age cost
    /// O(log n) whatever the number awaiting.
    by_time: BTreeSet<(Instant, u64)>,
}

impl Sent {
    /// Records marked sent.
    pub fn len(&self) -> u64 {
        self.by_seq.len() as u64
    }

    /// When the record marked sent the longest ago was marked.
    pub fn oldest_at(&self) -> Option<Instant> {
        self.by_time.first().map(|&(at, _)| at)
    }

    /// Marks `seq` sent at `at` (again, if it was: the later mark counts).
    pub fn mark(&mut self, seq: u64, at: Instant) {
        if let Some(old) = self.by_seq.insert(seq, at) {
            self.by_time.remove(&(old, seq));
        }
        self.by_time.insert((at, seq));
    }

    /// Forgets `seq` (deleted, or pending again); returns when it was marked sent.
    pub fn remove(&mut self, seq: u64) -> Option<Instant> {
        let at = self.by_seq.remove(&seq)?;
        self.by_time.remove(&(at, seq));
        Some(at)
    }

    /// Forgets the entries in `first..=last` (deleted).
    pub fn remove_range(&mut self, first: u64, last: u64) {
        if first > last {
            return;
        }
        let doomed: Vec<(u64, Instant)> = self
            .by_seq
            .range(first..=last)
            .map(|(&seq, &at)| (seq, at))
            .collect();
        for (seq, at) in doomed {
            self.by_seq.remove(&seq);
            self.by_time.remove(&(at, seq));
        }
    }

    /// The seqs in `first..=last` marked sent before `before`.
    pub fn in_range_before(&self, first: u64, last: u64, before: Instant) -> Vec<u64> {
        if first > last {
            return Vec::new();
        }
        self.by_seq
            .range(first..=last)
            .filter(|&(_, &at)| at < before)
            .map(|(&seq, _)| seq)
            .collect()
    }

    /// Forgets every entry marked before `before`; returns their seqs, ascending.
    pub fn take_before(&mut self, before: Instant) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Some(&(at, seq)) = self.by_time.first() {
            if at >= before {
                break;
            }
            self.by_time.pop_first();
            self.by_seq.remove(&seq);
            seqs.push(seq);
        }
        seqs.sort_unstable();
        seqs
    }

    /// Forgets the entries below `seq` (their records were evicted).
    pub fn forget_below(&mut self, seq: u64) {
        while let Some((&first, &at)) = self.by_seq.first_key_value() {
            if first >= seq {
                break;
            }
            self.by_seq.pop_first();
            self.by_time.remove(&(at, first));
        }
    }

    /// Keeps only the entries for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        let by_time = &mut self.by_time;
        self.by_seq.retain(|&seq, &mut at| {
            let kept = keep(seq);
            if !kept {
                by_time.remove(&(at, seq));
            }
            kept
        });
    }

    /// The first `seq` at or above `seq` that is not marked sent: where a read that skips
    /// sent records goes on, without walking a run of them in the store.
    pub fn next_unsent(&self, seq: u64) -> u64 {
        let mut next = seq;
        for (&s, _) in self.by_seq.range(seq..) {
            if s != next {
                break;
            }
            next = next.saturating_add(1);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expiring_takes_the_oldest_marks_and_keeps_both_indexes_in_step() {
        let t0 = Instant::now();
        let mut sent = Sent::default();
        for (seq, secs) in [(5, 3), (1, 1), (9, 2), (4, 5)] {
            sent.mark(seq, t0 + Duration::from_secs(secs));
        }
        sent.mark(4, t0);
        assert_eq!(sent.oldest_at(), Some(t0));
        assert_eq!(sent.take_before(t0 + Duration::from_secs(3)), vec![1, 4, 9]);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent.oldest_at(), Some(t0 + Duration::from_secs(3)));
        assert_eq!(sent.next_unsent(5), 6);
        assert_eq!(sent.next_unsent(6), 6);
        sent.forget_below(6);
        assert_eq!((sent.len(), sent.oldest_at()), (0, None));
    }
}
