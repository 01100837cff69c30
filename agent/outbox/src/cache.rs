//! The newest payloads, kept in memory up to a byte budget, so that the sender reads what was
//! just appended without reading the file. Appends come in `seq` order; when the budget is
//! passed the oldest go first (the file has them, and after an outage the sender wants the
//! newest first). A payload read for sending is taken out: a batch is sent once, and if it is
//! sent again the file has it.

use std::collections::VecDeque;

/// The cache. See the module docs.
#[derive(Debug)]
pub(crate) struct Cache {
    /// `(seq, payload)` ascending; a taken payload leaves `None` until the front passes it.
    entries: VecDeque<(u64, Option<Vec<u8>>)>,
    bytes: usize,
    budget: usize,
}

impl Cache {
    /// An empty cache holding at most `budget` bytes of payload.
    pub(crate) fn new(budget: usize) -> Self {
        Cache {
            entries: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    /// Bytes of payload held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keeps the payload of `seq` (above every `seq` held); drops the oldest beyond the budget.
    pub(crate) fn put(&mut self, seq: u64, payload: Vec<u8>) {
        if payload.len() > self.budget {
            return;
        }
        self.bytes += payload.len();
        self.entries.push_back((seq, Some(payload)));
        while self.bytes > self.budget {
            self.pop_front();
        }
        self.trim();
    }

    fn find(&self, seq: u64) -> Option<usize> {
        self.entries.binary_search_by_key(&seq, |&(s, _)| s).ok()
    }

    /// Takes the payload of `seq` out, if held.
    pub(crate) fn take(&mut self, seq: u64) -> Option<Vec<u8>> {
        let i = self.find(seq)?;
        let payload = self.entries[i].1.take()?;
        self.bytes -= payload.len();
        self.trim();
        Some(payload)
    }

    /// A copy of the payload of `seq`, if held.
    pub(crate) fn get(&self, seq: u64) -> Option<Vec<u8>> {
        self.entries[self.find(seq)?].1.clone()
    }

    /// Drops the payload of `seq` (deleted).
    pub(crate) fn remove(&mut self, seq: u64) {
        drop(self.take(seq));
    }

    /// Drops the payloads with `first <= seq <= last`.
    pub(crate) fn remove_range(&mut self, first: u64, last: u64) {
        let from = self.entries.partition_point(|&(s, _)| s < first);
        for (seq, payload) in self.entries.iter_mut().skip(from) {
            if *seq > last {
                break;
            }
            if let Some(p) = payload.take() {
                self.bytes -= p.len();
            }
        }
        self.trim();
    }

    fn pop_front(&mut self) {
        if let Some((_, Some(p))) = self.entries.pop_front() {
            self.bytes -= p.len();
        }
    }

    /// Drops taken entries at the front.
    fn trim(&mut self) {
        while self.entries.front().is_some_and(|(_, p)| p.is_none()) {
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_go_first_and_a_taken_payload_is_gone() {
        let mut cache = Cache::new(25);
        for seq in 1..=3 {
            cache.put(seq, vec![seq as u8; 10]);
        }
        assert_eq!(cache.bytes(), 20, "seq 1 dropped to stay within 25 bytes");
        assert_eq!(cache.get(1), None);
        assert_eq!(cache.take(2), Some(vec![2; 10]));
        assert_eq!(cache.take(2), None);
        assert_eq!(cache.get(3), Some(vec![3; 10]));
        cache.put(4, vec![4; 100]);
        assert_eq!(cache.get(4), None, "larger than the whole budget");
        cache.remove_range(0, 3);
        assert_eq!(cache.bytes(), 0);
    }
}
