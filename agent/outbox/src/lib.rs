//! A durable, size-capped FIFO of sequenced byte records: the agent's outbox.
//!
//! The agent appends each batch it builds, publishes it, and deletes it once it is delivered:
//! at the broker's PUBACK ([`Outbox::ack`]), or, end to end, once the platform's ack covers it
//! ([`Outbox::apply_ack`], see "Record states"). The outbox knows nothing of MQTT or of the
//! wire format: it stores bytes, a sample count and a sequence number. It is one file, a log
//! of framed, checksummed records cut into segments, and every method is blocking (call it
//! from `spawn_blocking` or a dedicated thread). An [`Outbox`] is `Send + Sync`.
//!
//! # Concurrency
//!
//! Two locks. The *writer* lock is taken by [`Outbox::append`] and [`Outbox::flush`] (and by
//! reopening after a failure): it orders the writes to the file. The *state* lock guards the
//! in-memory index, the payload cache and the counters, and is never held across I/O: an
//! append takes it only to publish a record it has written, and the sender's calls
//! ([`Outbox::unsent`], [`Outbox::ack`], [`Outbox::mark_sent`], [`Outbox::apply_ack`]) only for
//! in-memory updates, reading payloads from the file outside it. So appends never wait on the
//! sender's reads and acks, nor the sender on an append's write, and a flush's fsync blocks
//! neither (it runs with no lock but its own). [`Outbox::stats`] reads the state under its
//! lock: it never waits on I/O and never goes backwards.
//!
//! # On-disk layout
//!
//! One file (by convention `outbox.redb`, its name from the redb store of earlier versions):
//!
//! - bytes 0..8192: two copies of the superblock (see [`superblock`]), written alternately
//!   by durable commits: the format (2), the segment size, `next_seq`, `seq_limit`, the
//!   eviction counters, the log's durable `tail` and `head`, and which slot holds each segment
//!   in between.
//! - then up to 1024 *slots* of one segment each (the segment size is the cap divided by
//!   1024, at least 32 KiB, in whole 4 KiB pages). The log is a sequence of bytes addressed by
//!   position (`lsn`); segment `n` is its bytes `n × size .. (n + 1) × size`, in whichever slot
//!   was free when the log reached it. A frame may run on from one segment into the next.
//! - frames (see [`frame`]): a 64-byte header (checksums of header and payload, the kind,
//!   the frame's own `lsn`, a record's `seq`, samples and append time), then the payload (a
//!   record's batch, or an ack's ranges of deleted `seq`s), padded to a multiple of 64 bytes.
//!
//! A segment's slot is reused only once a durable superblock's `tail` has passed the segment:
//! whole segments are dropped when every record in them is deleted (acked or evicted), with
//! no compaction and no copying, whatever the backlog.
//!
//! # Sequence numbers
//!
//! [`Outbox::append`] gives each record the next `seq`: 1 for a new store, then one more per
//! record, for the life of the store, across restarts, acks and evictions. Since an append is
//! visible (and may be published) before it is durable, a crash could otherwise hand out the
//! same `seq` again: so the outbox also keeps `seq_limit`, a reservation that is always durable
//! before any `seq` below it is handed out (an append that reaches it commits with it raised by
//! 1024; a flush raises it ahead, to four times the appends of the last interval, when at that
//! rate it would run out before the next flush). After a crash, numbering resumes at
//! `seq_limit`: receivers see a forward gap, never a reused `seq`. A clean close lowers the
//! reservation back to `next_seq`, so a clean restart leaves no gap.
//!
//! The open that finds a reservation above `next_seq` (the last run stopped uncleanly) names
//! the gap in [`OpenReport::resumed_after_crash`]: from the durable `next_seq` (the first `seq`
//! not made durable; those above it may have been published before the crash) to the `seq`
//! numbering resumes at. Opening lowers the reservation durably, so only that one open
//! reports it: the agent puts it in the status of the run it starts, so that receivers count
//! those numbers as a crash window rather than as lost batches.
//!
//! # When a record is durable
//!
//! Group commit. `append` writes the record's frame to the file at once (visible to every
//! later call), and an ack is noted in memory; neither fsyncs. [`Outbox::flush`] makes
//! everything before it durable: it writes one ack frame for the deletions since the last
//! commit (none for deletions the new `tail` passes), fsyncs, writes the next superblock copy
//! (`head` at the end of the log) and fsyncs again. The agent calls it every flush interval
//! and at shutdown. Some commits are made on the outbox's own initiative (a `seq` reservation,
//! freeing slots for an append, evicting, dropping the `Outbox`): a record may become durable
//! earlier than the next flush, never later.
//!
//! **What a crash costs**: recovery reads the log from the newest valid superblock's `tail` to
//! its `head` and ignores whatever lies beyond, so a crash (kill -9 as well as a power cut)
//! loses the records appended since the last commit, and the acks since then (those records
//! are sent again; receivers drop duplicates by `seq`). The store after a crash is exactly the
//! store as of one durable commit, never a mix: a superblock copy torn by a power cut fails
//! its checksum, and the other copy, the commit before, is used; no slot it refers to has
//! been reused since.
//!
//! # Record states
//!
//! A record is **pending** from its append, **sent** once [`Outbox::mark_sent`] says the
//! broker took it (PUBACK), and **acknowledged** when a [`PlatformAck`] applied with
//! [`Outbox::apply_ack`] covers it, which deletes it:
//!
//! - pending → sent: [`Outbox::mark_sent`]. Reads through [`Outbox::unsent`] skip sent
//!   records, so a sender does not send them again while they await the platform.
//! - sent → pending: an ack lists the record as missing ([`Outbox::apply_ack`] returns its
//!   `seq`), or no ack covered it within a timeout ([`Outbox::expire_sent`]). The sender sends
//!   it again.
//! - any state → deleted: an ack says it is stored (a pending record too: after a restart the
//!   platform's retained ack deletes what it already holds), [`Outbox::ack`], or eviction.
//!
//! **The sent state is kept in memory only**, with the time of its mark: it is not written to
//! the file, costs no I/O, and is lost on restart, after which every record in the store is
//! pending and is sent again (receivers drop duplicates by `seq`). The same holds after the
//! outbox reopens its file following an I/O failure, for the records the reopen brought back.
//! Its memory is about 100 bytes per sent record. The records awaiting an ack are those sent
//! within the sender's timeout (older ones go back to pending): a second's worth or so while
//! acks flow, but with a receiver that never acks, about every record in the store (so a store
//! of 100,000 records may take 10 MB for it).
//!
//! # When a record is deleted
//!
//! Only by [`Outbox::ack`] (after the broker's PUBACK), by [`Outbox::apply_ack`] (the
//! platform stored it), or by eviction when the store is full, whatever the record's state
//! (evicted sent records are counted like any other). Nothing expires by age.
//!
//! # Size cap
//!
//! `max_bytes` bounds the file's length: the superblocks and the slots, at most 1024 of them
//! (each at least 32 KiB), fit in it, so the file never grows past the cap, not even for a
//! moment (**margin: 0 bytes**). A record's frame may take at most a quarter of the slots
//! ([`OutboxError::RecordTooLarge`] beyond); `max_bytes` must be at least 256 KiB (7 slots).
//!
//! The file grows a slot at a time while no slot is free, and a commit frees the slots of the
//! segments its `tail` passed (the agent flushes every second, so the file settles at what a
//! second of appends takes, plus the backlog). It shrinks when the free slots at its end are a
//! quarter of it. An append keeps two slots free: one for the ack frame a commit may write,
//! one for the record an eviction makes room for. When it cannot, and a commit would free
//! none, the oldest records are evicted (whole segments, oldest first, until a commit frees a
//! segment and 1/64 of the slots more, so that a full store commits once per 1/64 of the cap
//! appended rather than once per append); the append's record goes into a spare slot and the
//! commit that frees the evicted ones follows it, so that a crash finds the store before the
//! append or after it. Evictions are counted (`evicted_batches`, `evicted_samples`,
//! persisted in the superblock) and logged (one warning per 10 s at most, with the counts
//! since the last one). The newest record is always kept.
//!
//! A full store holds payload of about 90 % of `max_bytes` from 32 MiB up (1,000-sample
//! batches: the rest is frame headers, the tail segment's deleted records and the spare
//! slots), less for small caps, where a segment and the two spare slots weigh more (a 256 KiB
//! cap keeps 4 or 5 segments of 32 KiB). A record takes its payload plus a 64-byte header,
//! rounded up to a multiple of 64 bytes.

//! # Recovery
//!
//! Opening reads the newest valid superblock and every frame from its `tail` to its `head`
//! (checksums and positions): about as long as reading the live records from disk. Frames
//! past `head` (appends after the last commit) are ignored. If the file is damaged
//! (truncated, corrupted below `head`, not an outbox file, zero-length, or numbering past
//! `i64::MAX`, the largest `seq` receivers accept), it is renamed to
//! `<path>.damaged-<unix_ms>` for inspection and a fresh store is created; [`OpenReport`] says
//! so and a tracing error is logged. The fresh store continues numbering after the damaged
//! one: from its `next_seq`/`seq_limit` if a superblock copy still reads (and they are not past
//! `i64::MAX`), otherwise from the wall clock (milliseconds since the epoch × 1000, which is
//! above any `seq` an earlier store handed out unless it appended over 1000 records per
//! millisecond or the clock is wrong). A file in use by another process or in a format from a
//! newer version is never moved: opening fails instead.
//!
//! A store opened under a cap its slots no longer fit (the cap shrank) is rebuilt: its records
//! are copied, oldest first, into a new file beside it, evicting the oldest if they do not
//! fit, which then replaces it.
//!
//! On a failed write ([`OutboxError::DiskFull`], an I/O error) or a damaged record met while
//! reading, the outbox drops its handle and reopens the file on a later call (at most once a
//! second, backing off to once a minute), so that appends succeed again once space is freed.
//! That reopen recovers the last durable commit, like a crash.
//!
//! # Upgrading from the redb store
//!
//! Versions before this one kept the outbox in a redb 4 file at the same path (format 1, see
//! [`legacy`]). Opening such a file migrates it: its records, `next_seq`, reservation and
//! eviction counters are copied into a new segment log beside it (`<path>.rebuilding`), which
//! is synced and then renamed over it. Until that rename the redb file is untouched, so an
//! interrupted migration starts again at the next open; the migration needs free disk space
//! for the batches' payload once more. A redb file damaged, or not an outbox, is moved aside
//! as above.
//!
//! # Memory
//!
//! Bounded whatever the backlog: the payload cache holds at most `cache_bytes` of the newest
//! payloads (reads beyond it go to the file); the index keeps a few bytes per record plus the
//! loaded entries of a few segments, at most a quarter of `cache_bytes` beyond the head
//! segment's (see [`index`]); ack frames and superblocks are small.

#![warn(missing_docs)]

mod cache;
mod delivery;
mod error;
mod file;
mod frame;
mod geometry;
mod index;
mod legacy;
mod reader;
mod recovery;
mod sent;
mod state;
mod superblock;
mod writer;

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use error::Fault;
pub use error::OutboxError;
use file::{DiskFullSwitch, LogFile};
use geometry::Geometry;
use index::Index;
use state::State;
use superblock::Superblock;
use writer::{CommitLog, Writer};

/// Default size of the cache of the newest payloads.
pub const DEFAULT_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// The smallest accepted [`OutboxOptions::max_bytes`].
pub const MIN_MAX_BYTES: u64 = geometry::MIN_MAX_BYTES;

/// How many sequence numbers one durable reservation covers: after a crash, numbering resumes at
/// most this far above the last `seq` handed out.
const SEQ_RESERVATION: u64 = 1024;

/// The largest `seq` a store hands out: receivers keep `seq` as a signed 64-bit integer
/// (the platform refuses a batch above it). A file that numbers past it is damaged.
const MAX_SEQ: u64 = i64::MAX as u64;

/// How to open an outbox.
#[derive(Debug, Clone)]
pub struct OutboxOptions {
    /// The store's file. Its parent directory is created if missing.
    pub path: PathBuf,
    /// The most bytes the file may take (see "Size cap" in the crate docs). At least
    /// [`MIN_MAX_BYTES`].
    pub max_bytes: u64,
    /// Bytes of memory for the newest payloads ([`DEFAULT_CACHE_BYTES`] is a good choice); the
    /// index's loaded entries take at most a quarter as much again.
    pub cache_bytes: usize,
}

impl OutboxOptions {
    /// Options for the file at `path` capped at `max_bytes`, with the default cache size.
    pub fn new(path: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self {
            path: path.into(),
            max_bytes,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// What [`Outbox::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Where the damaged file was moved, if the existing file was damaged.
    pub moved_aside: Option<PathBuf>,
    /// Why the file was moved aside.
    pub error: Option<String>,
    /// Records in the store, waiting for an ack.
    pub pending_batches: u64,
    /// The `seq` the next append gets.
    pub next_seq: u64,
    /// The sequence numbers skipped because the last run stopped uncleanly (kill -9, power
    /// cut) with a reservation above its durable `next_seq`; `None` after a clean close, and
    /// for a new or a damaged file (see "Sequence numbers" in the crate docs).
    pub resumed_after_crash: Option<CrashWindow>,
}

/// The sequence numbers an unclean stop skipped: every `seq` in `durable_seq..resumed_seq`
/// was reserved by the run that stopped, and may have been handed out (and published) or
/// not, but is never handed out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashWindow {
    /// The durable `next_seq` found in the file: the first `seq` that the run that stopped
    /// had not made durable.
    pub durable_seq: u64,
    /// The first `seq` of this run: the reservation that run had made durable.
    pub resumed_seq: u64,
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number.
    pub seq: u64,
    /// The number of samples in it, as given to [`Outbox::append`].
    pub samples: u32,
    /// The payload, as built by the `encode` closure of [`Outbox::append`].
    pub payload: Vec<u8>,
    /// When it was appended, in milliseconds since the Unix epoch.
    pub appended_at_ms: i64,
}

/// Counters describing the store, kept in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Records in the store.
    pub batches: u64,
    /// Samples in those records.
    pub samples: u64,
    /// Payload bytes in those records.
    pub payload_bytes: u64,
    /// The file's length in bytes.
    pub file_bytes: u64,
    /// The oldest record's `seq`.
    pub oldest_seq: Option<u64>,
    /// The newest record's `seq`.
    pub newest_seq: Option<u64>,
    /// When the oldest record was appended (ms since the Unix epoch).
    pub oldest_appended_at_ms: Option<i64>,
    /// The `seq` the next append gets.
    pub next_seq: u64,
    /// Records evicted to stay under the cap since the store was created (persisted).
    pub evicted_batches: u64,
    /// Samples in those records (persisted).
    pub evicted_samples: u64,
    /// Payload bytes appended since the outbox was opened, for rate estimates.
    pub appended_bytes_total: u64,
    /// Records sent and awaiting the platform's ack (see "Record states"; in memory only).
    pub awaiting_ack_batches: u64,
    /// When the record awaiting the platform's ack the longest was marked sent.
    pub oldest_awaiting_ack_since: Option<Instant>,
}

/// What the platform's ack says of the store's numbering, in plain numbers (see "Record
/// states"). For a `seq`: at most `stored_through` → stored; in a `missing` range → missing;
/// at most `stored_max` → stored; else unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformAck<'a> {
    /// Every `seq` up to this one is stored.
    pub stored_through: u64,
    /// Ranges `(first, last)`, inclusive, known to be missing. Any order; overlaps are fine.
    pub missing: &'a [(u64, u64)],
    /// Every `seq` above `stored_through`, up to this one, that no `missing` range holds is
    /// stored. The caller lowers it to where the list of missing ranges is complete, if the
    /// list was cut short.
    pub stored_max: Option<u64>,
}

impl PlatformAck<'_> {
    /// The inclusive ranges of `seq` this ack says are stored, ascending.
    fn stored_ranges(&self) -> Vec<(u64, u64)> {
        let through = self.stored_through;
        let mut ranges = vec![(0, through)];
        let (Some(max), Some(mut next)) = (self.stored_max, through.checked_add(1)) else {
            return ranges;
        };
        let mut missing: Vec<(u64, u64)> = self
            .missing
            .iter()
            .filter(|&&(first, last)| first <= last && last >= next)
            .map(|&(first, last)| (first.max(next), last))
            .collect();
        missing.sort_unstable();
        for (first, last) in missing {
            if next > max {
                return ranges;
            }
            if first > next {
                ranges.push((next, (first - 1).min(max)));
            }
            match last.checked_add(1) {
                Some(after) => next = next.max(after),
                None => return ranges,
            }
        }
        if next <= max {
            ranges.push((next, max));
        }
        ranges
    }

    /// The inclusive ranges of `seq` this ack says are missing (above `stored_through`).
    fn missing_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let floor = self.stored_through.saturating_add(1);
        self.missing
            .iter()
            .filter(move |&&(first, last)| first <= last && last >= floor)
            .map(move |&(first, last)| (first.max(floor), last))
    }
}

/// What applying a [`PlatformAck`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckOutcome {
    /// Records deleted because the ack says they are stored.
    pub deleted_batches: u64,
    /// Sent records the ack lists as missing, pending again (ascending): send them again.
    pub returned: Vec<u64>,
}

/// The outbox. See the crate docs.
pub struct Outbox {
    store: Store,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Opens the store at `opts.path`, creating it (and its parent directory) if missing,
    /// migrating an old redb store, or moving a damaged file aside and starting afresh (see
    /// "Recovery" in the crate docs).
    pub fn open(opts: OutboxOptions) -> Result<(Outbox, OpenReport), OutboxError> {
        Self::open_with(opts, DiskFullSwitch::default())
    }

    fn open_with(
        opts: OutboxOptions,
        disk_full: DiskFullSwitch,
    ) -> Result<(Outbox, OpenReport), OutboxError> {
        if opts.max_bytes < MIN_MAX_BYTES {
            return Err(OutboxError::InvalidOptions(format!(
                "max_bytes is {} bytes; the minimum is {MIN_MAX_BYTES}",
                opts.max_bytes
            )));
        }
        if let Some(parent) = opts.path.parent()
            && !parent.as_os_str().is_empty()
        {
            // The plant's data: readable by the agent's user alone (as the .deb's
            // /var/lib/fieldlink is).
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| Fault::from(e).into_error(parent))?;
        }
        let terms = Terms {
            path: opts.path,
            max_bytes: opts.max_bytes,
            cache_bytes: opts.cache_bytes,
            disk_full,
        };
        let opened = recovery::open(&terms, 1).map_err(|f| f.into_error(&terms.path))?;
        Ok((
            Outbox {
                store: opened.store,
            },
            opened.report,
        ))
    }

    /// Assigns the next seq, calls `encode(seq)` to build the payload, stores it (visible at
    /// once to readers, durable at the next flush). Evicts oldest records first if needed to
    /// stay within the cap. Returns the seq.
    ///
    /// `encode` runs under the writer lock, which only appends and flushes take: keep it to
    /// serialising the batch. If the append fails, the `seq` was not used and the next append
    /// gets it again.
    pub fn append(
        &self,
        samples: u32,
        encode: impl FnOnce(u64) -> Vec<u8>,
    ) -> Result<u64, OutboxError> {
        let s = &self.store;
        let result = {
            let mut w = s.lock_writer();
            s.write_record(&mut w, samples, encode)
        };
        // Evictions to make room may have moved the oldest record.
        let result = result.and_then(|seq| s.settle_ends().map(|()| seq));
        s.done(result)
    }

    /// Makes everything appended and acked so far durable (one fsync'd commit for all of them:
    /// group commit). Cheap when nothing changed since the last durable commit. Appends may go
    /// on while it syncs.
    pub fn flush(&self) -> Result<(), OutboxError> {
        let s = &self.store;
        let result = s.flush_now().and_then(|()| s.settle_ends());
        s.done(result)
    }

    /// Deletes the record `seq`, after the broker's PUBACK for it. An unknown `seq` (already
    /// acked, evicted, or never stored) is not an error. Durable at the next flush.
    pub fn ack(&self, seq: u64) -> Result<(), OutboxError> {
        let s = &self.store;
        let result = s.with_state(|st| st.ack(seq));
        s.done(result)
    }

    /// Marks record `seq` sent at `at` (the broker took it): it awaits the platform's ack and
    /// [`Outbox::unsent`] skips it. Returns false (and does nothing) if `seq` is not stored.
    /// In memory only (see "Record states").
    pub fn mark_sent(&self, seq: u64, at: Instant) -> Result<bool, OutboxError> {
        let s = &self.store;
        let result = s.with_state(|st| Ok(st.mark_sent(seq, at)));
        s.done(result)
    }

    /// Applies the platform's ack: deletes every record it says is stored, whatever its
    /// state, and makes pending again the sent records it lists as missing that were marked
    /// sent before `missing_sent_before` (a later one may still be on its way to the
    /// platform). Durable at the next flush, like [`Outbox::ack`].
    pub fn apply_ack(
        &self,
        ack: &PlatformAck<'_>,
        missing_sent_before: Instant,
    ) -> Result<AckOutcome, OutboxError> {
        let s = &self.store;
        let result = s.apply_platform_ack(ack, missing_sent_before);
        s.done(result)
    }

    /// Makes pending again every sent record marked before `before` (no ack covered it in
    /// time); returns their seqs, ascending: send them again.
    pub fn expire_sent(&self, before: Instant) -> Vec<u64> {
        // No I/O: this cannot fail.
        self.store.lock_state().sent.take_before(before)
    }

    /// Up to `limit` records that are not sent (see "Record states"), with
    /// `from_seq <= seq < below`, oldest first.
    pub fn unsent(
        &self,
        from_seq: u64,
        below: u64,
        limit: usize,
    ) -> Result<Vec<Record>, OutboxError> {
        let s = &self.store;
        let result = s.read(delivery::Read::Unsent { from_seq, below }, limit);
        s.done(result)
    }

    /// Up to `limit` records with `seq >= from_seq`, oldest first, whatever their state.
    pub fn oldest(&self, from_seq: u64, limit: usize) -> Result<Vec<Record>, OutboxError> {
        let s = &self.store;
        let result = s.read_oldest(from_seq, limit);
        s.done(result)
    }

    /// The newest `limit` records, newest first, whatever their state.
    pub fn newest(&self, limit: usize) -> Result<Vec<Record>, OutboxError> {
        let s = &self.store;
        let result = s.read(delivery::Read::Newest, limit);
        s.done(result)
    }

    /// The store's counters, from memory: never waits on I/O. The snapshot includes every
    /// call that has returned and never goes backwards.
    pub fn stats(&self) -> OutboxStats {
        self.store.lock_state().stats()
    }

    /// Records in the store, including those of calls that have returned: for decisions that
    /// must not rest on a stale figure, such as whether shutdown may stop waiting for acks.
    pub fn pending_batches(&self) -> u64 {
        self.store.pending_batches()
    }
}

impl Drop for Outbox {
    /// A clean close lowers the `seq` reservation back to `next_seq`, so that a clean restart
    /// leaves no gap in the numbering, and makes everything durable.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        if let Err(fault) = self.store.close() {
            tracing::warn!(path = %self.store.terms.path.display(), error = %fault.text(),
                "outbox close: final commit failed; the next open resumes numbering above the reservation");
        }
    }
}

/// What a store was opened with.
#[derive(Debug, Clone)]
pub(crate) struct Terms {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub cache_bytes: usize,
    pub disk_full: DiskFullSwitch,
}

impl Terms {
    /// The budget of the index's loaded entries.
    pub(crate) fn index_budget(&self) -> usize {
        (self.cache_bytes / 4).max(256 * 1024)
    }
}

/// The open store: the writer's and the sender's sides (see "Concurrency").
pub(crate) struct Store {
    terms: Terms,
    writer: Mutex<Writer>,
    state: Mutex<State>,
    commits: Mutex<CommitLog>,
}

impl Store {
    /// A store on `file`, in the state `sb` describes (its counters; the log's end is `sb.head`),
    /// with `index` holding its records.
    pub(crate) fn new(
        terms: &Terms,
        file: Arc<LogFile>,
        geometry: Geometry,
        index: Index,
        sb: &Superblock,
        file_len: u64,
    ) -> Store {
        let mut state = State::new(file, index, cache::Cache::new(terms.cache_bytes));
        state.next_seq = sb.next_seq;
        state.end = sb.head;
        state.file_len = file_len;
        state.evicted_batches = sb.evicted_batches;
        state.evicted_samples = sb.evicted_samples;
        // Recovery reads from `sb.tail`; which `seq` it meets first is not needed.
        state.floor = (sb.tail, 0);
        Store {
            terms: terms.clone(),
            writer: Mutex::new(Writer {
                geometry,
                next_seq: sb.next_seq,
                seq_limit: sb.seq_limit,
                end: sb.head,
                file_len,
                captures: 0,
                appended_since_flush: 0,
            }),
            state: Mutex::new(state),
            commits: Mutex::new(CommitLog {
                generation: sb.generation,
                committed: 0,
                last: Some(Superblock {
                    generation: 0,
                    ..sb.clone()
                }),
            }),
        }
    }

    /// Notes that the file's newest superblock is `sb` (recovery may resume with other
    /// counters, which the next commit writes).
    pub(crate) fn recovered_from(&self, sb: &Superblock) {
        let mut log = self.lock_commits();
        log.generation = sb.generation;
        log.last = Some(Superblock {
            generation: 0,
            ..sb.clone()
        });
    }

    /// The writer lock (see "Concurrency").
    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // A panic in `encode` leaves the writer as it was: it changes only after encoding.
        self.writer.lock().unwrap_or_else(|poisoned| {
            self.writer.clear_poison();
            poisoned.into_inner()
        })
    }

    /// The state lock (see "Concurrency").
    pub(crate) fn lock_state(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => {
                // A panic under the state lock may have left the index half updated: reopen
                // the file (recovering its durable state) on the next call.
                let mut state = poisoned.into_inner();
                state.file = None;
                self.state.clear_poison();
                state
            }
        }
    }

    /// The commit lock: one superblock write at a time.
    pub(crate) fn lock_commits(&self) -> MutexGuard<'_, CommitLog> {
        self.commits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Turns a call's failure into the caller's error, dropping the file handle when it is
    /// unusable, and logs evictions.
    fn done<T>(&self, result: Result<T, Fault>) -> Result<T, OutboxError> {
        let result = result.map_err(|fault| {
            self.break_off(&fault);
            fault.into_error(&self.terms.path)
        });
        let mut st = self.lock_state();
        let oldest = st.ends.oldest.map(|(seq, _)| seq);
        st.evictions.maybe_log(oldest);
        result
    }

    /// After `fault`, drops the file handle if it is unusable: the next call reopens the file
    /// (after a backoff), recovering its last durable commit.
    pub(crate) fn break_off(&self, fault: &Fault) {
        let mut st = self.lock_state();
        if fault.needs_reopen() && st.file.is_some() {
            st.reopen.failed(fault);
            tracing::error!(path = %self.terms.path.display(), error = %fault.text(),
                "outbox write failed; the store will be reopened from its last durable state");
            st.file = None;
        }
    }

    /// Makes sure the file is open, reopening it after an earlier failure (with backoff, so
    /// that a full disk is not re-read every call).
    pub(crate) fn ensure_open(&self, w: &mut MutexGuard<'_, Writer>) -> Result<(), Fault> {
        let floor = {
            let st = self.lock_state();
            if st.file.is_some() {
                return Ok(());
            }
            st.reopen.check(Instant::now())?;
            st.next_seq
        };
        match recovery::open(&self.terms, floor) {
            Ok(opened) => {
                let Store {
                    writer,
                    state,
                    commits,
                    ..
                } = opened.store;
                **w = writer.into_inner().unwrap_or_else(PoisonError::into_inner);
                *self.lock_commits() = commits.into_inner().unwrap_or_else(PoisonError::into_inner);
                let mut st = self.lock_state();
                let mut fresh = state.into_inner().unwrap_or_else(PoisonError::into_inner);
                fresh.sent = std::mem::take(&mut st.sent);
                fresh.appended_bytes_total = st.appended_bytes_total;
                fresh.evictions = std::mem::take(&mut st.evictions);
                // A record that the reopen did not bring back is no longer sent.
                let State { index, sent, .. } = &mut fresh;
                sent.retain(|seq| index.contains(seq));
                *st = fresh;
                tracing::info!(path = %self.terms.path.display(),
                    pending_batches = opened.report.pending_batches,
                    next_seq = opened.report.next_seq, "outbox reopened");
                Ok(())
            }
            Err(fault) => {
                self.lock_state().reopen.failed(&fault);
                Err(fault)
            }
        }
    }

    /// Makes sure the file is open, for a call that does not write.
    pub(crate) fn ready(&self) -> Result<(), Fault> {
        if self.lock_state().file.is_some() {
            return Ok(());
        }
        let mut w = self.lock_writer();
        self.ensure_open(&mut w)
    }

    /// Commits now, holding the writer lock.
    pub(crate) fn commit(&self) -> Result<(), Fault> {
        let mut w = self.lock_writer();
        let file = self.file()?;
        self.commit_holding(&mut w, &file)
    }

    /// The open file.
    pub(crate) fn file(&self) -> Result<Arc<LogFile>, Fault> {
        self.lock_state()
            .file
            .clone()
            .ok_or_else(|| Fault::Internal("the store is not open".to_string()))
    }

    /// Shortens a file left longer than this cap allows (its slots past the cap are free).
    pub(crate) fn fit_file(&self, geometry: Geometry) -> Result<(), Fault> {
        let mut w = self.lock_writer();
        let cap_len = geometry.len_for_slots(geometry.slots);
        if w.file_len > cap_len {
            self.file()?.truncate(cap_len)?;
            w.file_len = cap_len;
            self.lock_state().file_len = cap_len;
        }
        Ok(())
    }

    /// Records stored now.
    pub(crate) fn pending_batches(&self) -> u64 {
        self.lock_state().index.batches
    }

    /// The eviction counters and the next `seq`.
    pub(crate) fn counters(&self) -> (u64, u64, u64) {
        let st = self.lock_state();
        (st.evicted_batches, st.evicted_samples, st.next_seq)
    }

    /// Copies a record read from another store (see [`recovery`]); one too large for this
    /// store's cap is counted as evicted.
    pub(crate) fn copy_record(
        &self,
        seq: u64,
        samples: u32,
        at_ms: i64,
        payload: Vec<u8>,
    ) -> Result<(), Fault> {
        let mut w = self.lock_writer();
        if payload.len() as u64 > w.geometry.max_record() {
            let mut st = self.lock_state();
            st.evicted_batches += 1;
            st.evicted_samples += u64::from(samples);
            return Ok(());
        }
        self.write_copy(&mut w, seq, samples, at_ms, payload)
    }

    /// Ends a copy: numbering goes on at `next_seq` (no reservation above it), the evictions of
    /// the store copied from are added, and everything is committed.
    pub(crate) fn close_copy(&self, next_seq: u64, evicted: (u64, u64)) -> Result<(), Fault> {
        let mut w = self.lock_writer();
        w.next_seq = w.next_seq.max(next_seq);
        w.seq_limit = w.next_seq;
        {
            let mut st = self.lock_state();
            st.next_seq = w.next_seq;
            st.evicted_batches += evicted.0;
            st.evicted_samples += evicted.1;
        }
        let file = self.file()?;
        self.commit_holding(&mut w, &file)
    }

    /// A clean close: lowers the reservation and commits.
    fn close(&self) -> Result<(), Fault> {
        let mut w = self.lock_writer();
        let Some(file) = self.lock_state().file.clone() else {
            return Ok(());
        };
        w.seq_limit = w.next_seq;
        self.commit_holding(&mut w, &file)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
