//! The write side: appends, durable commits, making room (new slots, commits that free slots,
//! eviction) and the file's length. Everything here runs under the writer lock, which only
//! the batcher's calls (append, flush) and reopening take; the state lock is taken for
//! in-memory updates only, never across I/O.
//!
//! A commit is two steps. Under the writer lock it captures the state (writing an ack frame for
//! the deletions not yet in the log) into a superblock; then, under the commit lock alone, it
//! fsyncs the data, writes the superblock copy and fsyncs again. A periodic flush releases the
//! writer lock in between, so that appends go on while the disk syncs; a commit an append needs
//! (a `seq` reservation, or room) keeps it.

use std::sync::{Arc, MutexGuard};

use crate::error::Fault;
use crate::file::LogFile;
use crate::frame::{self, Header};
use crate::geometry::{Geometry, HEADER_AREA};
use crate::index::Entry;
use crate::superblock::Superblock;
use crate::{SEQ_RESERVATION, Store, now_ms};

/// Slots an append leaves free: one for the ack frame a commit may write, one for the record
/// an eviction makes room for (see `make_room`).
const SPARE_SLOTS: u64 = 2;

/// What only the writer changes.
#[derive(Debug)]
pub(crate) struct Writer {
    pub geometry: Geometry,
    pub next_seq: u64,
    /// Every `seq` handed out is below this durable reservation.
    pub seq_limit: u64,
    /// Where the next frame goes.
    pub end: u64,
    pub file_len: u64,
    /// Captures taken, to order commits.
    pub captures: u64,
    /// Records appended since the last periodic flush, to reserve `seq`s ahead.
    pub appended_since_flush: u64,
}

/// The durable commits made so far.
#[derive(Debug, Default)]
pub(crate) struct CommitLog {
    pub generation: u64,
    /// The capture the newest superblock on disk was taken from.
    pub committed: u64,
    /// That superblock, to skip a commit that would change nothing.
    pub last: Option<Superblock>,
}

/// A state captured for a commit.
#[derive(Debug)]
pub(crate) struct Capture {
    no: u64,
    sb: Superblock,
}

impl Store {
    /// Appends a record (see [`Outbox::append`]).
    pub(crate) fn write_record(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        samples: u32,
        encode: impl FnOnce(u64) -> Vec<u8>,
    ) -> Result<u64, Fault> {
        let file = self.file_for_writing(w)?;
        // Every seq handed out stays below a durable reservation (see the crate docs).
        if w.next_seq >= w.seq_limit {
            w.seq_limit = w.next_seq + 1 + SEQ_RESERVATION;
            self.commit_holding(w, &file)?;
        }
        let seq = w.next_seq;
        let payload = encode(seq);
        let len = payload.len() as u64;
        let max = w.geometry.max_record();
        if len > max {
            return Err(Fault::TooLarge { bytes: len, max });
        }
        let commit = self.put_record(w, &file, seq, samples, now_ms(), payload, true)?;
        w.next_seq = seq + 1;
        w.appended_since_flush += 1;
        if commit && let Err(fault) = self.commit_holding(w, &file) {
            // The record is appended (and visible) like any other not yet durable: the store
            // is reopened from its last durable commit on the next call, as after a crash.
            self.break_off(&fault);
        }
        Ok(seq)
    }

    /// Writes a record read from another store (a rebuild), with its own `seq` and append
    /// time; `seq` is above every one stored.
    pub(crate) fn write_copy(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        seq: u64,
        samples: u32,
        at_ms: i64,
        payload: Vec<u8>,
    ) -> Result<(), Fault> {
        let file = self.file_for_writing(w)?;
        let commit = self.put_record(w, &file, seq, samples, at_ms, payload, false)?;
        w.next_seq = w.next_seq.max(seq + 1);
        if commit {
            self.commit_holding(w, &file)?;
        }
        Ok(())
    }

    /// Writes the record `seq` at the log's end and makes it visible to readers, its payload
    /// kept in the cache if `cache`; returns whether the room it took asks for a commit.
    #[allow(clippy::too_many_arguments)] // the record's fields, as `Header::record` takes them
    fn put_record(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        file: &LogFile,
        seq: u64,
        samples: u32,
        at_ms: i64,
        payload: Vec<u8>,
        cache: bool,
    ) -> Result<bool, Fault> {
        let len = payload.len() as u64;
        let (lsn, commit) = self.make_room(w, file, frame::frame_len(len))?;
        let header = Header::record(lsn, seq, samples, at_ms, &payload);
        self.write_frame(w, file, lsn, &header.encode(), &payload)?;
        let frame_end = lsn + header.frame_len();
        let entry = Entry {
            lsn,
            at_ms,
            len: len as u32,
            samples,
        };
        let mut st = self.lock_state();
        st.publish(seq, entry, frame_end, cache.then_some(payload));
        st.file_len = w.file_len;
        drop(st);
        w.end = frame_end;
        Ok(commit)
    }

    /// The open file, for a call that writes.
    fn file_for_writing(&self, w: &mut MutexGuard<'_, Writer>) -> Result<Arc<LogFile>, Fault> {
        self.ensure_open(w)?;
        self.lock_state()
            .file
            .clone()
            .ok_or_else(|| Fault::Internal("the store is not open".to_string()))
    }

    /// Makes sure the segments a frame of `len` bytes at the end of the log will touch are
    /// resident, keeping [`SPARE_SLOTS`] slots free; commits to free slots, and evicts the
    /// oldest records, when it must. Returns where the frame goes, and whether the caller must
    /// commit once the frame is written: after an eviction the frame takes one of the spare
    /// slots and the commit that frees the evicted ones comes after it, so that the durable
    /// state holds the frame too (a crash finds the store before the append or after it).
    fn make_room(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        file: &LogFile,
        len: u64,
    ) -> Result<(u64, bool), Fault> {
        let seg = w.geometry.segment;
        loop {
            let lsn = w.end;
            let mut st = self.lock_state();
            let first_new = st
                .index
                .last_segment()
                .map_or(lsn / seg, |last| last + 1)
                .max(lsn / seg);
            let last_needed = (lsn + len - 1) / seg;
            let needed = (last_needed + 1).saturating_sub(first_new);
            if needed == 0 {
                return Ok((lsn, false));
            }
            let free = st.index.free_slots();
            if free >= needed + SPARE_SLOTS {
                st.allocate(first_new, last_needed)?;
                return Ok((lsn, false));
            }
            if st.reclaimable() == 0 {
                // Evict whole segments, oldest first, until a commit frees enough slots (and
                // 1/64 of the slots more, so that the next appends do not commit for each).
                let want = needed + SPARE_SLOTS + w.geometry.slots / 64;
                while free + st.reclaimable() < want && st.evict_oldest_segment().is_some() {}
                if free > needed {
                    st.allocate(first_new, last_needed)?;
                    return Ok((lsn, true));
                }
                if st.reclaimable() == 0 {
                    return Err(Fault::Internal(format!(
                        "no room for a frame of {len} bytes with every record evicted"
                    )));
                }
                // A frame larger than the spare room: the eviction is committed on its own
                // (a crash may find it done and the append not).
            }
            drop(st);
            self.commit_holding(w, file)?;
        }
    }

    /// Writes a frame (`head`, then `body`) at `lsn`, through the slots of its segments.
    fn write_frame(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        file: &LogFile,
        lsn: u64,
        head: &[u8],
        body: &[u8],
    ) -> Result<(), Fault> {
        let total = (head.len() + body.len()) as u64;
        let pieces = self
            .lock_state()
            .index
            .pieces(lsn, total)
            .ok_or_else(|| Fault::Internal(format!("log position {lsn} has no slot")))?;
        let mut at = 0usize;
        for (offset, n) in pieces {
            let n = n as usize;
            let mut written = 0usize;
            while written < n {
                let i = at + written;
                let (src, from) = if i < head.len() {
                    (head, i)
                } else {
                    (body, i - head.len())
                };
                let take = (src.len() - from).min(n - written);
                file.write_at(&src[from..from + take], offset + written as u64)?;
                written += take;
            }
            at += n;
            w.file_len = w.file_len.max(offset + n as u64);
        }
        Ok(())
    }

    /// Commits while holding the writer lock throughout (for appends and closing).
    pub(crate) fn commit_holding(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        file: &LogFile,
    ) -> Result<(), Fault> {
        let capture = self.capture(w, file)?;
        self.finish(file, &capture)?;
        self.apply(w, file, &capture)
    }

    /// A periodic flush: captures under the writer lock, then syncs without it, so that
    /// appends go on meanwhile.
    pub(crate) fn flush_now(&self) -> Result<(), Fault> {
        let (file, capture) = {
            let mut w = self.lock_writer();
            let file = self.file_for_writing(&mut w)?;
            // If the reservation may run out before the next flush at the rate of the last
            // interval, this commit raises it, so that appends rarely commit for one.
            let rate = std::mem::take(&mut w.appended_since_flush);
            if w.seq_limit.saturating_sub(w.next_seq) < 2 * rate {
                w.seq_limit = w.next_seq + (4 * rate).max(SEQ_RESERVATION);
            }
            let capture = self.capture(&mut w, &file)?;
            (file, capture)
        };
        self.finish(&file, &capture)?;
        let mut w = self.lock_writer();
        self.apply(&mut w, &file, &capture)
    }

    /// Captures the state for a commit: writes an ack frame for the deletions no frame holds
    /// yet (evicting if there is no room even for that), then builds the superblock, all as of
    /// one moment of the state.
    fn capture(&self, w: &mut MutexGuard<'_, Writer>, file: &LogFile) -> Result<Capture, Fault> {
        let seg = w.geometry.segment;
        loop {
            let mut st = self.lock_state();
            let mut end = w.end;
            // Deletions below the tail need no frame: recovery does not read that far back.
            let (tail, boundary) = st.tail(end);
            st.pending.retain(|&(_, last)| last >= boundary);
            let ack = (!st.pending.is_empty()).then(|| frame::ack(end, &st.pending));
            if let Some((header, _)) = &ack {
                let len = header.frame_len();
                let first_new = st
                    .index
                    .last_segment()
                    .map_or(end / seg, |l| l + 1)
                    .max(end / seg);
                let needed = ((end + len - 1) / seg + 1).saturating_sub(first_new);
                if st.index.free_slots() < needed {
                    // Not even room for the ack frame: evict, which also shortens it.
                    if st.evict_oldest_segment().is_some() {
                        continue;
                    }
                    return Err(Fault::Internal("no room for an ack frame".to_string()));
                }
                if needed > 0 {
                    st.allocate(first_new, first_new + needed - 1)?;
                }
                end += len;
            }
            st.floor = (tail, boundary);
            let slots: Vec<u16> = Superblock::segments(seg, tail, end)
                .map(|id| st.index.slot_of(id))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    Fault::Internal("a segment between tail and head has no slot".to_string())
                })?;
            let sb = Superblock {
                generation: 0,
                segment: seg,
                next_seq: w.next_seq,
                seq_limit: w.seq_limit,
                evicted_batches: st.evicted_batches,
                evicted_samples: st.evicted_samples,
                tail,
                head: end,
                slots,
            };
            st.pending.clear();
            drop(st);
            if let Some((header, payload)) = ack {
                let lsn = w.end;
                self.write_frame(w, file, lsn, &header.encode(), &payload)?;
                let mut st = self.lock_state();
                st.index.frame_at(lsn);
                st.end = end;
                st.file_len = w.file_len;
                w.end = end;
            }
            w.captures += 1;
            return Ok(Capture { no: w.captures, sb });
        }
    }

    /// Makes a capture durable: fsync, the superblock copy, fsync. A capture older than one
    /// already committed is skipped (the newer superblock covers it), as is one that would
    /// change nothing.
    fn finish(&self, file: &LogFile, capture: &Capture) -> Result<(), Fault> {
        let mut log = self.lock_commits();
        if capture.no <= log.committed {
            return Ok(());
        }
        if log.last.as_ref() == Some(&capture.sb) {
            log.committed = capture.no;
            return Ok(());
        }
        file.sync()?;
        let sb = Superblock {
            generation: log.generation + 1,
            ..capture.sb.clone()
        };
        file.write_at(&sb.encode(), sb.offset())?;
        file.sync()?;
        log.generation = sb.generation;
        log.committed = capture.no;
        log.last = Some(capture.sb.clone());
        Ok(())
    }

    /// After a commit: the segments before its tail are free, and the file may shrink.
    fn apply(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        file: &LogFile,
        capture: &Capture,
    ) -> Result<(), Fault> {
        let seg = w.geometry.segment;
        let mut st = self.lock_state();
        st.index.drop_before(capture.sb.tail / seg);
        // Free slots at the end of the file are given back once they are a quarter of it.
        let used = w.geometry.len_for_slots(st.index.slots_in_use_end());
        let len = w.file_len;
        if len > used && len - used >= (len - HEADER_AREA) / 4 {
            drop(st);
            file.truncate(used)?;
            w.file_len = used;
            self.lock_state().file_len = used;
        }
        Ok(())
    }
}
