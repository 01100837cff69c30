//! What the outbox knows in memory, behind its state lock: the index, the payload cache, the
//! sent marks and the counters. Nothing here does I/O: an operation that needs a segment's
//! entries returns [`Need`] and the caller loads them outside the lock (see
//! [`crate::index`]). The batcher's appends take this lock only to publish a record they have
//! written; the sender's reads, acks and marks take it only for the time of an in-memory
//! update.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::OutboxStats;
use crate::cache::Cache;
use crate::error::Fault;
use crate::file::LogFile;
use crate::index::{Entry, Index, Need};
use crate::reader::SlotMap;
use crate::sent::Sent;

/// At most one eviction warning per this interval.
const EVICTION_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Backoff between attempts to reopen the file after a failure.
const REOPEN_BACKOFF_MIN: Duration = Duration::from_secs(1);
const REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The first and last stored record, as of the last change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ends {
    pub oldest: Option<(u64, i64)>,
    pub newest: Option<u64>,
}

/// The shared state. See the module docs.
#[derive(Debug)]
pub(crate) struct State {
    /// The open file; `None` after a failure that requires reopening it.
    pub file: Option<Arc<LogFile>>,
    pub index: Index,
    pub cache: Cache,
    /// The records marked sent, awaiting the platform's ack (memory only).
    pub sent: Sent,
    pub next_seq: u64,
    /// Where the next frame goes.
    pub end: u64,
    pub file_len: u64,
    pub evicted_batches: u64,
    pub evicted_samples: u64,
    pub appended_bytes_total: u64,
    /// Ranges of deleted `seq`s no ack frame in the log holds yet.
    pub pending: Vec<(u64, u64)>,
    /// The tail of the last commit captured and the lowest `seq` recovery reads from it: a
    /// tail never moves back (the oldest live segment may start before it).
    pub floor: (u64, u64),
    pub ends: Ends,
    /// `ends` must be recomputed.
    ends_stale: bool,
    pub evictions: EvictionLog,
    pub reopen: Reopen,
}

impl State {
    /// The state of a store just opened on `file`; the caller sets the counters.
    pub(crate) fn new(file: Arc<LogFile>, index: Index, cache: Cache) -> Self {
        State {
            file: Some(file),
            index,
            cache,
            sent: Sent::default(),
            next_seq: 1,
            end: 0,
            file_len: 0,
            evicted_batches: 0,
            evicted_samples: 0,
            appended_bytes_total: 0,
            pending: Vec::new(),
            floor: (0, 0),
            ends: Ends::default(),
            ends_stale: true,
            evictions: EvictionLog::default(),
            reopen: Reopen::default(),
        }
    }

    /// The counters, as of now.
    pub(crate) fn stats(&self) -> OutboxStats {
        OutboxStats {
            batches: self.index.batches,
            samples: self.index.samples,
            payload_bytes: self.index.payload_bytes,
            file_bytes: self.file_len,
            oldest_seq: self.ends.oldest.map(|(seq, _)| seq),
            newest_seq: self.ends.newest,
            oldest_appended_at_ms: self.ends.oldest.map(|(_, at)| at),
            next_seq: self.next_seq,
            evicted_batches: self.evicted_batches,
            evicted_samples: self.evicted_samples,
            appended_bytes_total: self.appended_bytes_total,
            awaiting_ack_batches: self.sent.len(),
            oldest_awaiting_ack_since: self.sent.oldest_at(),
        }
    }

    /// Records that `first..=last` were deleted, for the next ack frame.
    fn deleted(&mut self, first: u64, last: u64) {
        self.ends_stale = true;
        if let Some(prev) = self.pending.last_mut()
            && first <= prev.1.saturating_add(1)
            && last.saturating_add(1) >= prev.0
        {
            *prev = (prev.0.min(first), prev.1.max(last));
            return;
        }
        self.pending.push((first, last));
    }

    /// Indexes a record just written at `entry.lsn`, and keeps its payload in the cache.
    pub(crate) fn publish(
        &mut self,
        seq: u64,
        entry: Entry,
        frame_end: u64,
        payload: Option<Vec<u8>>,
    ) {
        self.index.frame_at(entry.lsn);
        self.index.push(seq, entry);
        if let Some(payload) = payload {
            self.cache.put(seq, payload);
        }
        self.next_seq = seq + 1;
        self.end = frame_end;
        self.appended_bytes_total += u64::from(entry.len);
        self.ends.newest = Some(seq);
        if self.ends.oldest.is_none() {
            self.ends.oldest = Some((seq, entry.at_ms));
        }
    }

    /// Deletes `seq` if stored.
    pub(crate) fn ack(&mut self, seq: u64) -> Result<(), Need> {
        if self.index.delete(seq)?.is_some() {
            self.deleted(seq, seq);
            self.cache.remove(seq);
        }
        self.sent.remove(seq);
        Ok(())
    }

    /// Deletes every stored record in `first..=last`; returns how many, and the segment to
    /// load if it stopped short (a retry goes on where it stopped).
    pub(crate) fn delete_range(&mut self, first: u64, last: u64) -> (u64, Option<Need>) {
        // Records appended later get higher numbers: the ack frame must not delete them when
        // recovery replays it.
        let last = last.min(self.next_seq.saturating_sub(1));
        if first > last {
            return (0, None);
        }
        let (deleted, need) = self.index.delete_range(first, last);
        if deleted > 0 {
            self.deleted(first, last);
            self.cache.remove_range(first, last);
        }
        if need.is_none() {
            self.sent.remove_range(first, last);
        }
        (deleted, need)
    }

    /// Marks `seq` sent at `at` if it is stored.
    pub(crate) fn mark_sent(&mut self, seq: u64, at: Instant) -> bool {
        let stored = self.index.contains(seq);
        if stored {
            self.sent.mark(seq, at);
        }
        stored
    }

    /// Evicts the oldest segment's live records (to make room); returns the records and
    /// samples evicted.
    pub(crate) fn evict_oldest_segment(&mut self) -> Option<(u64, u64)> {
        let (first, last, batches, samples) = self.index.evict_oldest_segment()?;
        self.evictions.add(batches, samples);
        self.evicted_batches = self.evicted_batches.saturating_add(batches);
        self.evicted_samples = self.evicted_samples.saturating_add(samples);
        self.cache.remove_range(first, last);
        self.sent.forget_below(last.saturating_add(1));
        self.ends_stale = true;
        Some((batches, samples))
    }

    /// Recomputes the first and last record if a change may have moved them.
    pub(crate) fn settle_ends(&mut self) -> Result<(), Need> {
        if !self.ends_stale {
            return Ok(());
        }
        self.ends = Ends {
            oldest: self.index.oldest()?,
            newest: self.index.newest(),
        };
        self.ends_stale = false;
        Ok(())
    }

    /// Where a commit of the log up to `end` puts its tail, and the lowest `seq` recovery
    /// reads from there (see [`Index::tail`]), never before the last commit's.
    pub(crate) fn tail(&self, end: u64) -> (u64, u64) {
        let here = self.index.tail(end, self.next_seq);
        if here.0 >= self.floor.0 {
            here
        } else {
            self.floor
        }
    }

    /// Adds segments `first..=last` in the lowest free slots.
    pub(crate) fn allocate(&mut self, first: u64, last: u64) -> Result<(), Fault> {
        for id in first..=last {
            let slot = self
                .index
                .free_slot()
                .ok_or_else(|| Fault::Internal("no free slot".to_string()))?;
            self.index.add_segment(id, slot);
        }
        Ok(())
    }

    /// Segments that a commit of the current state would free: those before the tail's.
    pub(crate) fn reclaimable(&self) -> u64 {
        let seg = self.index.geometry().segment;
        let tail_segment = self.tail(self.end).0 / seg;
        self.index
            .slots()
            .take_while(|&(id, _)| id < tail_segment)
            .count() as u64
    }

    /// The slots of the resident segments from `first` on.
    pub(crate) fn slot_map(&self, first: u64) -> SlotMap {
        SlotMap::new(
            self.index.geometry(),
            first,
            self.index
                .slots()
                .filter(|&(id, _)| id >= first)
                .map(|(_, slot)| slot)
                .collect(),
        )
    }
}

/// Evictions not yet logged, for the rate-limited warning.
#[derive(Debug, Default)]
pub(crate) struct EvictionLog {
    batches: u64,
    samples: u64,
    last_warning: Option<Instant>,
}

impl EvictionLog {
    fn add(&mut self, batches: u64, samples: u64) {
        self.batches += batches;
        self.samples += samples;
    }

    /// Logs the evictions since the last warning, at most once per interval.
    pub(crate) fn maybe_log(&mut self, oldest_kept: Option<u64>) {
        if self.batches == 0
            || self
                .last_warning
                .is_some_and(|at| at.elapsed() < EVICTION_LOG_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            evicted_batches = self.batches,
            evicted_samples = self.samples,
            oldest_kept_seq = oldest_kept,
            "outbox full: evicted the oldest batches to stay within its size cap"
        );
        self.batches = 0;
        self.samples = 0;
        self.last_warning = Some(Instant::now());
    }
}

/// When to try reopening the file after a failure, and what to report until then.
#[derive(Debug, Default)]
pub(crate) struct Reopen {
    not_before: Option<Instant>,
    backoff: Option<Duration>,
    /// The failure that closed the file: kind and message, to report while waiting.
    last: Option<(io::ErrorKind, String)>,
}

impl Reopen {
    /// A call failed (or reopening did): wait before the next attempt, longer each time.
    pub(crate) fn failed(&mut self, fault: &Fault) {
        if let Fault::DiskFull(e) | Fault::Io(e) = fault {
            self.last = Some((e.kind(), e.to_string()));
        }
        let backoff = self
            .backoff
            .map_or(REOPEN_BACKOFF_MIN, |b| (b * 2).min(REOPEN_BACKOFF_MAX));
        self.backoff = Some(backoff);
        self.not_before = Some(Instant::now() + backoff);
    }

    /// Whether reopening may be tried at `now`; if not, the error to report meanwhile.
    pub(crate) fn check(&self, now: Instant) -> Result<(), Fault> {
        match self.not_before {
            Some(not_before) if now < not_before => {
                let (kind, message) = self
                    .last
                    .clone()
                    .unwrap_or((io::ErrorKind::Other, "the store is closed".to_string()));
                Err(io::Error::new(kind, format!("{message} (will retry)")).into())
            }
            _ => Ok(()),
        }
    }
}
