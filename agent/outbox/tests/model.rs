//! Random operation sequences checked against an in-memory model: appends, PUBACK acks,
//! sends, the platform's acks (random `stored_through`, missing ranges and `stored_max`),
//! timeouts, crashes, clean reopens and evictions at the cap.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fieldlink_outbox::{Outbox, OutboxStats, PlatformAck};
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
    /// Mark the pending record at this position among the pending ones (modulo their count)
    /// sent, now.
    MarkSent(usize),
    /// The platform's ack; the numbers are reduced modulo a little past the highest seq
    /// handed out. Missing ranges are `(first, length - 1)`.
    PlatformAck {
        through: u64,
        missing: Vec<(u64, u64)>,
        stored_max: Option<u64>,
        /// Only records marked sent more than this many seconds ago come back when missing.
        grace_s: u64,
    },
    /// Time passes, in seconds.
    Tick(u64),
    /// Records marked sent more than this many seconds ago go back to pending.
    Expire(u64),
    /// Read the unsent records in a range; the numbers are reduced as for acks.
    ReadUnsent {
        from: u64,
        span: u64,
        limit: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..8000, 0u32..20).prop_map(|(len, samples)| Op::Append { len, samples }),
        3 => any::<usize>().prop_map(Op::AckExisting),
        1 => (0u64..5).prop_map(Op::AckMissing),
        2 => Just(Op::Flush),
        1 => Just(Op::Crash),
        1 => Just(Op::Reopen),
        6 => any::<usize>().prop_map(Op::MarkSent),
        3 => (
            any::<u64>(),
            prop::collection::vec((any::<u64>(), 0u64..4), 0..4),
            prop::option::of(any::<u64>()),
            0u64..3,
        )
            .prop_map(|(through, missing, stored_max, grace_s)| Op::PlatformAck {
                through,
                missing,
                stored_max,
                grace_s,
            }),
        2 => (1u64..4).prop_map(Op::Tick),
        1 => (0u64..6).prop_map(Op::Expire),
        2 => (any::<u64>(), any::<u64>(), 0usize..5)
            .prop_map(|(from, span, limit)| Op::ReadUnsent { from, span, limit }),
    ]
}

/// What the platform's ack says of `seq`, as the wire's `Ack::state` decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    Stored,
    Missing,
    Unknown,
}

fn said(ack: &PlatformAck<'_>, seq: u64) -> Said {
    if seq <= ack.stored_through {
        Said::Stored
    } else if ack.missing.iter().any(|&(a, b)| (a..=b).contains(&seq)) {
        Said::Missing
    } else if ack.stored_max.is_some_and(|max| seq <= max) {
        Said::Stored
    } else {
        Said::Unknown
    }
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
    /// The model of the sent state (memory only): records marked sent, and when.
    sent: BTreeMap<u64, Instant>,
    /// The harness's clock.
    now: Instant,
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
        // Evicted or deleted records are no longer sent.
        let records = &self.model.records;
        self.sent.retain(|seq, _| records.contains_key(seq));
        let unsent: Vec<u64> = self
            .outbox()
            .unsent(0, u64::MAX, usize::MAX)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .into_iter()
            .map(|r| r.seq)
            .collect();
        let expected: Vec<u64> = records
            .keys()
            .copied()
            .filter(|seq| !self.sent.contains_key(seq))
            .collect();
        prop_assert_eq!(unsent, expected);
        prop_assert_eq!(stats.awaiting_ack_batches, self.sent.len() as u64);
        prop_assert_eq!(
            stats.oldest_awaiting_ack_since,
            self.sent.values().min().copied()
        );
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
            Op::MarkSent(i) => {
                let pending: Vec<u64> = self
                    .model
                    .records
                    .keys()
                    .copied()
                    .filter(|seq| !self.sent.contains_key(seq))
                    .collect();
                if !pending.is_empty() {
                    let seq = pending[i % pending.len()];
                    prop_assert!(self.outbox().mark_sent(seq, self.now).unwrap());
                    self.sent.insert(seq, self.now);
                }
                // A seq that is not stored is not marked.
                prop_assert!(!self.outbox().mark_sent(self.seq_floor, self.now).unwrap());
            }
            Op::PlatformAck {
                through,
                ref missing,
                stored_max,
                grace_s,
            } => {
                let n = self.seq_floor + 3;
                let missing: Vec<(u64, u64)> = missing
                    .iter()
                    .map(|&(first, len)| (first % n, first % n + len))
                    .collect();
                let ack = PlatformAck {
                    // Mostly low, so that the missing ranges and stored_max matter.
                    stored_through: (through % n) / 2,
                    missing: &missing,
                    stored_max: stored_max.map(|m| m % n),
                };
                let before = self.now - Duration::from_secs(grace_s);
                let outcome = self
                    .outbox()
                    .apply_ack(&ack, before)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let mut deleted = 0;
                let mut returned = Vec::new();
                for seq in self.model.records.keys().copied().collect::<Vec<_>>() {
                    match said(&ack, seq) {
                        Said::Stored => {
                            self.model.records.remove(&seq);
                            self.sent.remove(&seq);
                            deleted += 1;
                        }
                        Said::Missing if self.sent.get(&seq).is_some_and(|&at| at < before) => {
                            self.sent.remove(&seq);
                            returned.push(seq);
                        }
                        Said::Missing | Said::Unknown => {}
                    }
                }
                prop_assert_eq!(outcome.deleted_batches, deleted);
                prop_assert_eq!(outcome.returned, returned);
            }
            Op::Tick(s) => self.now += Duration::from_secs(s),
            Op::Expire(s) => {
                let before = self.now - Duration::from_secs(s);
                let expired = self.outbox().expire_sent(before);
                let expected: Vec<u64> = self
                    .sent
                    .iter()
                    .filter(|&(_, &at)| at < before)
                    .map(|(&seq, _)| seq)
                    .collect();
                self.sent.retain(|_, &mut at| at >= before);
                prop_assert_eq!(expired, expected);
            }
            Op::ReadUnsent { from, span, limit } => {
                let n = self.seq_floor + 3;
                let from = from % n;
                let below = from + span % n;
                let read: Vec<u64> = self
                    .outbox()
                    .unsent(from, below, limit)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?
                    .into_iter()
                    .map(|r| r.seq)
                    .collect();
                let expected: Vec<u64> = self
                    .model
                    .records
                    .range(from..below)
                    .map(|(&seq, _)| seq)
                    .filter(|seq| !self.sent.contains_key(seq))
                    .take(limit)
                    .collect();
                prop_assert_eq!(read, expected);
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
                // The sent state is memory only: after a restart every record is pending.
                self.sent.clear();
                self.outbox = Some(outbox);
                return self.check(&self.outbox().stats());
            }
            Op::Reopen => {
                drop(self.outbox.take());
                let (outbox, report) = open(&self.path, CAP);
                prop_assert_eq!(report.next_seq, self.seq_floor.max(before.next_seq));
                self.sent.clear();
                self.outbox = Some(outbox);
                self.since_flush.clear();
                return self.check(&before);
            }
        }
        self.check(&before)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn outbox_matches_the_model(ops in prop::collection::vec(op(), 1..150)) {
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
            sent: BTreeMap::new(),
            now: Instant::now(),
        };
        for op in &ops {
            h.apply(op)?;
        }
    }
}
