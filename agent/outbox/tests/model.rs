//! Random operation sequences checked against an in-memory model.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use fieldlink_outbox::{Outbox, OutboxStats};
use proptest::prelude::*;

use crate::{all, crash, open};

const CAP: u64 = 256 * 1024;

#[derive(Debug, Clone)]
enum Op {
    Append {
        len: usize,
        samples: u32,
    },
    /// Ack the record at this position among the stored ones (modulo their count).
    AckExisting(usize),
    /// Ack a seq that is not stored: this far above the highest handed out.
    AckMissing(u64),
    Flush,
    /// kill -9: reopen what reached the file.
    Crash,
    /// Drop cleanly and reopen.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..8000, 0u32..20).prop_map(|(len, samples)| Op::Append { len, samples }),
        3 => any::<usize>().prop_map(Op::AckExisting),
        1 => (0u64..5).prop_map(Op::AckMissing),
        2 => Just(Op::Flush),
        1 => Just(Op::Crash),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct State {
    records: BTreeMap<u64, (u32, Rc<Vec<u8>>)>,
    evicted_batches: u64,
    evicted_samples: u64,
}

impl State {
    fn of(outbox: &Outbox) -> Self {
        let stats = outbox.stats();
        State {
            records: all(outbox)
                .into_iter()
                .map(|r| (r.seq, (r.samples, Rc::new(r.payload))))
                .collect(),
            evicted_batches: stats.evicted_batches,
            evicted_samples: stats.evicted_samples,
        }
    }

    /// Evicts the `n` oldest records, as the outbox reported doing.
    fn evict(&mut self, n: u64) -> Result<(), TestCaseError> {
        for _ in 0..n {
            let (_, (samples, _)) = self.records.pop_first().ok_or_else(|| {
                TestCaseError::fail("the outbox evicted more records than it had")
            })?;
            self.evicted_batches += 1;
            self.evicted_samples += u64::from(samples);
        }
        Ok(())
    }
}

struct Harness {
    path: PathBuf,
    outbox: Option<Outbox>,
    model: State,
    /// Model states since the last flush, any of which a crash may recover (redb makes some
    /// commits durable on its own, e.g. when compacting).
    since_flush: Vec<State>,
    /// Every seq ever handed out is below this.
    seq_floor: u64,
    crashes: usize,
}

impl Harness {
    fn outbox(&self) -> &Outbox {
        self.outbox.as_ref().expect("open")
    }

    fn check(&mut self, before: &OutboxStats) -> Result<(), TestCaseError> {
        let stats = self.outbox().stats();
        // Evictions happen only to keep the cap, always oldest first.
        let evicted = stats.evicted_batches - before.evicted_batches;
        self.model.evict(evicted)?;
        let actual = State::of(self.outbox());
        prop_assert_eq!(&actual, &self.model);
        prop_assert_eq!(stats.batches, self.model.records.len() as u64);
        let samples: u64 = self
            .model
            .records
            .values()
            .map(|(s, _)| u64::from(*s))
            .sum();
        let bytes: u64 = self
            .model
            .records
            .values()
            .map(|(_, p)| p.len() as u64)
            .sum();
        prop_assert_eq!(stats.samples, samples);
        prop_assert_eq!(stats.payload_bytes, bytes);
        prop_assert_eq!(stats.oldest_seq, self.model.records.keys().next().copied());
        prop_assert_eq!(
            stats.newest_seq,
            self.model.records.keys().next_back().copied()
        );
        prop_assert!(stats.next_seq >= self.seq_floor);
        prop_assert!(
            stats.file_bytes <= CAP,
            "file {} > cap {}",
            stats.file_bytes,
            CAP
        );
        prop_assert_eq!(
            stats.file_bytes,
            std::fs::metadata(&self.path).unwrap().len()
        );
        self.since_flush.push(self.model.clone());
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let before = self.outbox().stats();
        match *op {
            Op::Append { len, samples } => {
                let payload = Rc::new(crate::payload(before.next_seq, len));
                let expected = before.next_seq;
                let seq = self
                    .outbox()
                    .append(samples, |seq| crate::payload(seq, len))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(seq, expected);
                prop_assert!(seq >= self.seq_floor);
                self.seq_floor = seq + 1;
                self.model.records.insert(seq, (samples, payload));
            }
            Op::AckExisting(i) => {
                if !self.model.records.is_empty() {
                    let seq = *self
                        .model
                        .records
                        .keys()
                        .nth(i % self.model.records.len())
                        .unwrap();
                    self.outbox().ack(seq).unwrap();
                    self.model.records.remove(&seq);
                }
            }
            Op::AckMissing(above) => {
                self.outbox().ack(self.seq_floor + above).unwrap();
            }
            Op::Flush => {
                self.outbox().flush().unwrap();
                self.since_flush.clear();
            }
            Op::Crash => {
                let outbox = self.outbox.take().unwrap();
                self.path = crash(outbox, &self.path, self.crashes);
                self.crashes += 1;
                let (outbox, report) = open(&self.path, CAP);
                prop_assert!(report.moved_aside.is_none());
                prop_assert!(
                    report.next_seq >= self.seq_floor,
                    "seq reused after a crash"
                );
                let recovered = State::of(&outbox);
                prop_assert!(
                    self.since_flush.contains(&recovered),
                    "recovered state is no state since the last flush: {:?}",
                    recovered.records.keys().collect::<Vec<_>>()
                );
                self.model = recovered;
                self.since_flush.clear();
                self.outbox = Some(outbox);
                return self.check(&self.outbox().stats());
            }
            Op::Reopen => {
                drop(self.outbox.take());
                let (outbox, report) = open(&self.path, CAP);
                prop_assert_eq!(report.next_seq, self.seq_floor.max(before.next_seq));
                self.outbox = Some(outbox);
                self.since_flush.clear();
                return self.check(&before);
            }
        }
        self.check(&before)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn outbox_matches_the_model(ops in prop::collection::vec(op(), 1..100)) {
        let dir = crate::tempdir();
        let path = dir.path().join("outbox.redb");
        let (outbox, _) = open(&path, CAP);
        let mut h = Harness {
            path,
            outbox: Some(outbox),
            model: State::default(),
            since_flush: vec![State::default()],
            seq_floor: 1,
            crashes: 0,
        };
        for op in &ops {
            h.apply(op)?;
        }
    }
}
