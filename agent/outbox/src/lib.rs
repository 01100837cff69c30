//! A durable, size-capped FIFO of sequenced byte records: the agent's outbox.
//!
//! The agent appends each batch it builds, publishes it, and deletes it once it is delivered:
//! at the broker's PUBACK ([`Outbox::ack`]), or, end to end, once the platform's ack covers it
//! ([`Outbox::apply_ack`], see "Record states"). The outbox knows nothing of MQTT or of the
//! wire format: it stores bytes, a sample count and a sequence number. It is one [redb](https://docs.rs/redb/4) file, and every method is blocking (call it
//! from `spawn_blocking` or a dedicated thread). An [`Outbox`] is `Send + Sync`; one mutex
//! serialises its calls, and [`Outbox::stats`] never waits on I/O (its snapshot is stored under
//! that mutex, so it never goes backwards).
//!
//! # On-disk layout
//!
//! One redb 4 file, three tables:
//!
//! | table | key | value |
//! |---|---|---|
//! | `records` | `seq: u64` | `(samples: u32, appended_at_ms: i64, payload_len: u32)` |
//! | `chunks` | `(seq: u64, index: u32)` | up to 495 payload bytes |
//! | `meta` | `&str` | `u64`: `format` (1), `next_seq`, `seq_limit`, `batches`, `samples`, `payload_bytes`, `chunks`, `evicted_batches`, `evicted_samples` |
//!
//! Payloads are split into 495-byte chunks so that eight chunk entries fill one 4 KiB B-tree
//! leaf: every page redb allocates is a single page, the file does not fragment into odd-sized
//! blocks, and the space a record takes is predictable (see the size cap below). The counters in
//! `meta` are written in the same transaction as the records they count, so they are always
//! consistent with them, and opening costs O(1) whatever the backlog.
//!
//! # Sequence numbers
//!
//! [`Outbox::append`] gives each record the next `seq`: 1 for a new store, then one more per
//! record, for the life of the file, across restarts, acks and evictions. `next_seq` is written
//! in the append's transaction. Since an append is visible (and may be published) before it is
//! durable, a crash could otherwise hand out the same `seq` again: so the outbox also keeps
//! `seq_limit`, a reservation that is always durable before any `seq` below it is handed out
//! (a durable commit raises it by 1024 when it runs out). After a crash, numbering resumes at
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
//! Group commit. `append` and `ack` commit with [`redb::Durability::None`]: the change is visible
//! at once to every later call, but redb writes neither its header nor an fsync, so a crash
//! (kill -9 as well as a power cut) rolls the file back to the last durable commit.
//! [`Outbox::flush`] commits with [`redb::Durability::Immediate`], which makes everything
//! before it durable. The agent calls it every flush interval and at shutdown. Some commits are
//! made durable on the outbox's own initiative (a `seq` reservation, deletes piling up, a
//! compaction, dropping the `Outbox`): a record may become durable earlier than the next flush,
//! never later.
//!
//! **What a crash costs**: the records appended since the last flush (or other durable commit),
//! and the acks since then (those records are sent again; receivers drop duplicates by `seq`).
//! The store after a crash is exactly the store as of one durable commit, never a mix.
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
//! `max_bytes` bounds the file's length: when a call returns, the file is at most `max_bytes`
//! long. **Documented margin: 0 bytes**, with two exceptions: while a call runs, redb may extend
//! the file for a moment before the outbox compacts it back (the extension is sparse: nothing
//! is written there); and a single record is never split, so the newest record is kept even if
//! it alone would not fit (records over a quarter of the usable space are refused instead,
//! [`OutboxError::RecordTooLarge`]). `max_bytes` must be at least 256 KiB.
//!
//! On reaching the cap the oldest records are evicted, counted (`evicted_batches`,
//! `evicted_samples`, persisted with the records) and logged (one warning per 10 s at most, with
//! the counts since the last one). The newest record is always kept.
//!
//! How the cap is held, given that a redb file never shrinks unless compacted and grows by
//! doubling (from `L` bytes to `2L - 4096` as soon as one more page is needed):
//!
//! - The outbox estimates the pages its records take: payload + 16 bytes per chunk + 24 per
//!   record, × 1.2 for partly filled leaves and branch pages (an over-estimate: leaves filled
//!   in key order are 88-100 % full).
//! - It keeps free a headroom for redb's own pages: 16 pages, the allocator state written on
//!   close (1/512 of the cap), and the pages that redb frees only after a durable commit. To
//!   bound those, a commit is made durable once the records appended or deleted since the
//!   last durable commit exceed 1/32 of the cap, or after `max_bytes / 256 KiB` non-durable
//!   commits (at most 512): small caps commit durably more often.
//! - It evicts the oldest records before the estimate plus that headroom would outgrow the
//!   largest length that doubling can reach from the current file without passing `max_bytes`.
//! - That ladder of lengths may stop well short of the cap (from 72 KiB: 140, 276, 548 KiB...
//!   a 500 KiB cap would stop at 276). When it reaches less than 70 % of the cap, the outbox
//!   compacts once, at the moment when the compacted file's ladder reaches 70-100 % of it:
//!   early, while the store is small and compacting is cheap.
//! - If the file outgrows the cap anyway (acks far out of order can leave leaves a third full,
//!   beyond the estimate), the outbox evicts down to a third of the cap, compacts, and raises
//!   its estimate by a quarter; a warning is logged.
//!
//! So a full store holds payload of about 20 % of `max_bytes` at 256 KiB, 40 % at a few MiB,
//! and 50-70 % at 100 MiB and more (redb's fixed costs matter less; how close the ladder gets
//! to the cap decides the rest). Compaction blocks the outbox while it runs (about a second
//! per 100 MB in use).

//! # Recovery
//!
//! Opening runs redb's integrity check (it reads the whole file: about as long as reading
//! `max_bytes` from disk). After an unclean shutdown redb rolls back to the last durable commit
//! by itself. If the file cannot be opened because it is damaged (truncated, corrupted, not a
//! redb file, zero-length, or numbering past `i64::MAX`, the largest `seq` receivers accept), it
//! is renamed to `<path>.damaged-<unix_ms>` for inspection and a fresh store is created;
//! [`OpenReport`] says so and a tracing error is logged. The fresh store continues numbering
//! after the damaged one: from its `next_seq`/`seq_limit` if a read-only open can still read them
//! (and they are not past `i64::MAX`), otherwise from the wall clock (milliseconds since the
//! epoch × 1000, which is above any `seq` an earlier store handed out unless it appended over
//! 1000 records per millisecond or the clock is wrong). A file in use by another process or in a
//! format from a newer version is never moved: opening fails instead.
//!
//! On a full disk ([`OutboxError::DiskFull`]) redb's handle becomes unusable; the outbox drops it
//! and reopens the file on a later call (at most once a second, backing off to once a minute),
//! so that appends succeed again once space is freed. That reopen rolls back to the last durable
//! commit, like a crash.
//!
//! # Memory
//!
//! Bounded whatever the backlog: redb's page cache is `cache_bytes` (default 4 MiB; its write
//! buffer is half of it), the counters are O(1), and reads return at most `limit` records.

#![warn(missing_docs)]

mod backend;
mod budget;
mod error;
mod sent;

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io;
use std::ops::Bound;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{
    CursorError, Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    Table, TableDefinition, WriteTransaction,
};

use backend::{DiskFullSwitch, OutboxBackend};
use budget::{Budget, CHUNK, chunks_for};
use error::Fault;
pub use error::OutboxError;
use sent::Sent;

/// Default size of redb's page cache: small, since records are written once and read once.
pub const DEFAULT_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// The smallest accepted [`OutboxOptions::max_bytes`].
pub const MIN_MAX_BYTES: u64 = budget::MIN_MAX_BYTES;

/// How many sequence numbers one durable reservation covers: after a crash, numbering resumes at
/// most this far above the last `seq` handed out.
const SEQ_RESERVATION: u64 = 1024;

/// The largest `seq` a store hands out: receivers keep `seq` as a signed 64-bit integer
/// (the platform refuses a batch above it). A file that numbers past it is damaged.
const MAX_SEQ: u64 = i64::MAX as u64;

/// The store format written in `meta.format`.
const FORMAT_VERSION: u64 = 1;

/// Payloads at least this long are inserted through a cursor (see `insert_record`). A cursor's
/// run of inserts starts a fresh leaf, so a record may leave its last leaf partly empty: from
/// 64 chunks (8 leaves) on, the leaves stay at least 8/9 full, within the size model's
/// assumption (see "Size cap"); smaller records are inserted one chunk at a time, which fills
/// every leaf but the last.
const CURSOR_INSERT_BYTES: usize = 64 * CHUNK;

/// At most one eviction warning per this interval.
const EVICTION_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Backoff between attempts to reopen the file after an I/O failure.
const REOPEN_BACKOFF_MIN: Duration = Duration::from_secs(1);
const REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(60);

const RECORDS: TableDefinition<u64, (u32, i64, u32)> = TableDefinition::new("records");
const CHUNKS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("chunks");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

mod key {
    pub const FORMAT: &str = "format";
    pub const NEXT_SEQ: &str = "next_seq";
    pub const SEQ_LIMIT: &str = "seq_limit";
    pub const BATCHES: &str = "batches";
    pub const SAMPLES: &str = "samples";
    pub const PAYLOAD_BYTES: &str = "payload_bytes";
    pub const CHUNKS: &str = "chunks";
    pub const EVICTED_BATCHES: &str = "evicted_batches";
    pub const EVICTED_SAMPLES: &str = "evicted_samples";
}

/// How to open an outbox.
#[derive(Debug, Clone)]
pub struct OutboxOptions {
    /// The store's file. Its parent directory is created if missing.
    pub path: PathBuf,
    /// The most bytes the file may take (see "Size cap" in the crate docs). At least
    /// [`MIN_MAX_BYTES`].
    pub max_bytes: u64,
    /// Bytes of memory redb may use to cache pages ([`DEFAULT_CACHE_BYTES`] is a good choice).
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
    inner: Mutex<Inner>,
    /// The counters as of the last call, for readers that must not wait on `inner`. Written
    /// only while `inner` is held (lock order: `inner`, then `stats`).
    stats: Mutex<OutboxStats>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Opens the store at `opts.path`, creating it (and its parent directory) if missing, or
    /// moving a damaged file aside and starting afresh (see "Recovery" in the crate docs).
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
        let mut inner = Inner {
            path: opts.path,
            cache_bytes: opts.cache_bytes,
            disk_full,
            db: None,
            c: Counters::default(),
            budget: Budget::new(opts.max_bytes),
            file_len: 0,
            ends: Ends::default(),
            unflushed: false,
            churn_since_durable: 0,
            commits_since_durable: 0,
            appended_bytes_total: 0,
            evictions: EvictionLog::default(),
            reopen: Reopen::default(),
            sent: Sent::default(),
        };
        let report = inner.open_file().map_err(|f| f.into_error(&inner.path))?;
        let stats = inner.stats();
        Ok((
            Outbox {
                inner: Mutex::new(inner),
                stats: Mutex::new(stats),
            },
            report,
        ))
    }

    /// Assigns the next seq, calls `encode(seq)` to build the payload, stores it (visible at
    /// once to readers, durable at the next flush). Evicts oldest records first if needed to
    /// stay within the cap. Returns the seq.
    ///
    /// `encode` runs while the outbox is locked: keep it to serialising the batch. If the append
    /// fails, the `seq` was not used and the next append gets it again.
    pub fn append(
        &self,
        samples: u32,
        encode: impl FnOnce(u64) -> Vec<u8>,
    ) -> Result<u64, OutboxError> {
        self.with_inner(|inner| inner.append(samples, encode))
    }

    /// Makes everything appended and acked so far durable (one fsync'd commit for all of them:
    /// group commit). Cheap when nothing changed since the last durable commit.
    pub fn flush(&self) -> Result<(), OutboxError> {
        self.with_inner(Inner::flush)
    }

    /// Deletes the record `seq`, after the broker's PUBACK for it. An unknown `seq` (already
    /// acked, evicted, or never stored) is not an error. Durable at the next flush.
    pub fn ack(&self, seq: u64) -> Result<(), OutboxError> {
        self.with_inner(|inner| inner.ack(seq))
    }

    /// Marks record `seq` sent at `at` (the broker took it): it awaits the platform's ack and
    /// [`Outbox::unsent`] skips it. Returns false (and does nothing) if `seq` is not stored.
    /// In memory only (see "Record states").
    pub fn mark_sent(&self, seq: u64, at: Instant) -> Result<bool, OutboxError> {
        self.with_inner(|inner| inner.mark_sent(seq, at))
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
        self.with_inner(|inner| inner.apply_ack(ack, missing_sent_before))
    }

    /// Makes pending again every sent record marked before `before` (no ack covered it in
    /// time); returns their seqs, ascending: send them again.
    pub fn expire_sent(&self, before: Instant) -> Vec<u64> {
        // No I/O: this cannot fail, and the stats snapshot is refreshed as for every call.
        self.with_inner(|inner| Ok(inner.sent.take_before(before)))
            .unwrap_or_default()
    }

    /// Up to `limit` records that are not sent (see "Record states"), with
    /// `from_seq <= seq < below`, oldest first.
    pub fn unsent(
        &self,
        from_seq: u64,
        below: u64,
        limit: usize,
    ) -> Result<Vec<Record>, OutboxError> {
        self.with_inner(|inner| inner.read_unsent(from_seq, below, limit))
    }

    /// Up to `limit` records with `seq >= from_seq`, oldest first, whatever their state.
    pub fn oldest(&self, from_seq: u64, limit: usize) -> Result<Vec<Record>, OutboxError> {
        self.with_inner(|inner| inner.read(Direction::Oldest(from_seq), limit))
    }

    /// The newest `limit` records, newest first, whatever their state.
    pub fn newest(&self, limit: usize) -> Result<Vec<Record>, OutboxError> {
        self.with_inner(|inner| inner.read(Direction::Newest, limit))
    }

    /// The store's counters, from memory: never waits on I/O. The snapshot includes every
    /// call that has returned and never goes backwards; a call still running is not in it
    /// (see [`Outbox::pending_batches`]).
    pub fn stats(&self) -> OutboxStats {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records in the store, read under the outbox's lock: if a call is running, this waits
    /// for it (and so for its I/O) and counts its change. For decisions that must not rest on
    /// a snapshot, such as whether shutdown may stop waiting for acks.
    pub fn pending_batches(&self) -> u64 {
        self.lock_inner().c.batches
    }

    fn with_inner<T>(
        &self,
        op: impl FnOnce(&mut Inner) -> Result<T, Fault>,
    ) -> Result<T, OutboxError> {
        let mut inner = self.lock_inner();
        let result = op(&mut inner);
        let result = result.map_err(|fault| inner.fail(fault));
        let oldest_kept = inner.ends.oldest_seq();
        inner.evictions.maybe_log(oldest_kept);
        // Stored before the lock is released, so snapshots are stored in the order of the
        // calls: an older one never overwrites a newer one, and every call that has returned
        // is in the snapshot. (Stored after, a thread preempted in between would put back a
        // snapshot older than other threads' calls.)
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner) = inner.stats();
        drop(inner);
        result
    }

    fn lock_inner(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(inner) => inner,
            Err(poisoned) => {
                // A panic (in `encode`, most likely) unwound through a call. redb aborted any
                // transaction it left open, but the in-memory counters may be off: reload them
                // from the file.
                let mut inner = poisoned.into_inner();
                inner.db = None;
                self.inner.clear_poison();
                inner
            }
        }
    }
}

/// The first and last record, as of the last commit.
#[derive(Debug, Clone, Copy, Default)]
struct Ends {
    oldest: Option<(u64, i64)>,
    newest: Option<u64>,
}

impl Ends {
    fn oldest_seq(&self) -> Option<u64> {
        self.oldest.map(|(seq, _)| seq)
    }

    fn read(records: &impl ReadableTable<u64, (u32, i64, u32)>) -> Result<Self, Fault> {
        let oldest = records.first()?.map(|(k, v)| (k.value(), v.value().1));
        let newest = records.last()?.map(|(k, _)| k.value());
        Ok(Self { oldest, newest })
    }
}

/// The counters kept in `meta`, as of the last commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    next_seq: u64,
    seq_limit: u64,
    batches: u64,
    samples: u64,
    payload_bytes: u64,
    chunks: u64,
    evicted_batches: u64,
    evicted_samples: u64,
}

impl Counters {
    fn load(meta: &impl ReadableTable<&'static str, u64>) -> Result<Self, Fault> {
        let get = |name: &str| -> Result<u64, Fault> {
            Ok(meta.get(name)?.map(|v| v.value()).unwrap_or_default())
        };
        Ok(Self {
            next_seq: get(key::NEXT_SEQ)?,
            seq_limit: get(key::SEQ_LIMIT)?,
            batches: get(key::BATCHES)?,
            samples: get(key::SAMPLES)?,
            payload_bytes: get(key::PAYLOAD_BYTES)?,
            chunks: get(key::CHUNKS)?,
            evicted_batches: get(key::EVICTED_BATCHES)?,
            evicted_samples: get(key::EVICTED_SAMPLES)?,
        })
    }

    fn store(&self, meta: &mut Table<'_, &'static str, u64>) -> Result<(), Fault> {
        for (name, value) in [
            (key::NEXT_SEQ, self.next_seq),
            (key::SEQ_LIMIT, self.seq_limit),
            (key::BATCHES, self.batches),
            (key::SAMPLES, self.samples),
            (key::PAYLOAD_BYTES, self.payload_bytes),
            (key::CHUNKS, self.chunks),
            (key::EVICTED_BATCHES, self.evicted_batches),
            (key::EVICTED_SAMPLES, self.evicted_samples),
        ] {
            meta.insert(name, value)?;
        }
        Ok(())
    }

    fn remove(&mut self, samples: u32, len: u64) -> Result<(), Fault> {
        let out_of_step = || Fault::Corrupted("the meta counters are out of step".to_string());
        self.batches = self.batches.checked_sub(1).ok_or_else(out_of_step)?;
        self.samples = self
            .samples
            .checked_sub(u64::from(samples))
            .ok_or_else(out_of_step)?;
        self.payload_bytes = self
            .payload_bytes
            .checked_sub(len)
            .ok_or_else(out_of_step)?;
        self.chunks = self
            .chunks
            .checked_sub(chunks_for(len))
            .ok_or_else(out_of_step)?;
        Ok(())
    }
}

/// Evictions not yet logged, for the rate-limited warning.
#[derive(Debug, Default)]
struct EvictionLog {
    batches: u64,
    samples: u64,
    last_warning: Option<Instant>,
}

impl EvictionLog {
    fn add(&mut self, batches: u64, samples: u64) {
        self.batches += batches;
        self.samples += samples;
    }

    fn maybe_log(&mut self, oldest_kept: Option<u64>) {
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

/// When to try reopening the file after an I/O failure, and what to report until then.
#[derive(Debug, Default)]
struct Reopen {
    not_before: Option<Instant>,
    backoff: Option<Duration>,
    /// The failure that closed the handle: kind and message, to report while waiting.
    last: Option<(io::ErrorKind, String)>,
}

enum Direction {
    Oldest(u64),
    Newest,
}

/// How an outcome of one transaction wants to be committed.
struct Commit<T> {
    value: T,
    durable: bool,
    churn: u64,
}

struct Inner {
    path: PathBuf,
    cache_bytes: usize,
    disk_full: DiskFullSwitch,
    /// redb's handle; `None` after a failure that requires reopening the file.
    db: Option<Database>,
    c: Counters,
    budget: Budget,
    file_len: u64,
    ends: Ends,
    /// Commits since the last durable one.
    unflushed: bool,
    /// Estimated bytes of records appended or deleted since the last durable commit.
    churn_since_durable: u64,
    /// Non-durable commits since the last durable commit.
    commits_since_durable: u64,
    appended_bytes_total: u64,
    evictions: EvictionLog,
    reopen: Reopen,
    /// The records marked sent, awaiting the platform's ack (memory only).
    sent: Sent,
}

impl Inner {
    fn stats(&self) -> OutboxStats {
        OutboxStats {
            batches: self.c.batches,
            samples: self.c.samples,
            payload_bytes: self.c.payload_bytes,
            file_bytes: self.file_len,
            oldest_seq: self.ends.oldest_seq(),
            newest_seq: self.ends.newest,
            oldest_appended_at_ms: self.ends.oldest.map(|(_, at)| at),
            next_seq: self.c.next_seq,
            evicted_batches: self.c.evicted_batches,
            evicted_samples: self.c.evicted_samples,
            appended_bytes_total: self.appended_bytes_total,
            awaiting_ack_batches: self.sent.len(),
            oldest_awaiting_ack_since: self.sent.oldest_at(),
        }
    }

    fn estimate(&self) -> u64 {
        self.budget
            .estimate(self.c.batches, self.c.chunks, self.c.payload_bytes)
    }

    fn db(&self) -> Result<&Database, Fault> {
        self.db
            .as_ref()
            .ok_or_else(|| Fault::Internal("the store is not open".to_string()))
    }

    /// Turns a failure into the caller's error, dropping redb's handle when it is unusable.
    fn fail(&mut self, fault: Fault) -> OutboxError {
        if fault.needs_reopen() && self.db.is_some() {
            if let Fault::DiskFull(e) | Fault::Io(e) = &fault {
                self.reopen.last = Some((e.kind(), e.to_string()));
            }
            tracing::error!(path = %self.path.display(), error = %fault_text(&fault),
                "outbox write failed; the store will be reopened from its last durable state");
            self.db = None;
        }
        fault.into_error(&self.path)
    }

    // ----- opening -----

    /// Opens the file (or creates it), moving it aside if damaged, and loads the counters.
    fn open_file(&mut self) -> Result<OpenReport, Fault> {
        let mut report = OpenReport {
            moved_aside: None,
            error: None,
            pending_batches: 0,
            next_seq: 0,
            resumed_after_crash: None,
        };
        let mut seed = 1;
        let damage = match fs::metadata(&self.path) {
            Ok(meta) if meta.len() == 0 => Some("the file is empty (zero-length)".to_string()),
            Ok(_) => match self.open_existing() {
                Ok(window) => {
                    report.resumed_after_crash = window;
                    None
                }
                Err(fault) if fault.is_damage() => Some(fault_text(&fault)),
                Err(fault) => return Err(fault),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(reason) = damage {
            self.db = None;
            // When reopening after a failure, this handle knows every seq it handed out.
            seed = match read_old_seq(&self.path) {
                Some(seq) => seq,
                None => clock_seed(),
            }
            .max(self.c.next_seq);
            let aside = move_aside(&self.path)?;
            tracing::error!(
                path = %self.path.display(),
                moved_to = %aside.display(),
                error = %reason,
                next_seq = seed,
                "outbox file damaged: moved it aside and started a fresh store"
            );
            report.moved_aside = Some(aside);
            report.error = Some(reason);
        }
        if self.db.is_none() {
            self.db = Some(self.open_db()?);
        }
        // After `open_existing`, the reservation is already lowered: this finds no window.
        self.load_state(seed)?;
        self.forget_sent_not_stored()?;
        // A file written under a larger cap, or grown by the recovery, is brought under this one.
        self.enforce_cap()?;
        report.pending_batches = self.c.batches;
        report.next_seq = self.c.next_seq;
        Ok(report)
    }

    /// Opens the existing file and loads its state; returns the numbers a crash skipped.
    fn open_existing(&mut self) -> Result<Option<CrashWindow>, Fault> {
        let db = self.open_db()?;
        self.db = Some(db);
        // A file that redb opens but that is not an outbox, or whose tables do not read back,
        // is damaged too.
        self.load_state(1)
    }

    fn open_db(&self) -> Result<Database, Fault> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.path)?;
        let backend = OutboxBackend::new(file, self.disk_full.clone())?;
        let cache_bytes = self.cache_bytes;
        // redb checks integrity on open (and reports corruption instead of trusting the file),
        // but a malformed file must not take the agent down if something still panics.
        let opened = catch_unwind(AssertUnwindSafe(|| {
            Database::builder()
                .set_cache_size(cache_bytes)
                .set_check_integrity_on_open(true)
                .create_with_backend(backend)
        }));
        match opened {
            Ok(result) => Ok(result?),
            Err(_) => Err(Fault::Corrupted(
                "redb panicked while opening the file".to_string(),
            )),
        }
    }

    /// Reads (or initialises) the counters, makes the `seq` reservation good, and records the
    /// file length and the first and last records. Returns the numbers skipped if the file
    /// holds a reservation above its `next_seq` (the last run stopped uncleanly).
    fn load_state(&mut self, seed: u64) -> Result<Option<CrashWindow>, Fault> {
        let db = self.db()?;
        let mut txn = db.begin_write()?;
        let (c, ends, window) = {
            let had_tables = txn.list_tables()?.next().is_some();
            let mut meta = txn.open_table(META)?;
            let records = txn.open_table(RECORDS)?;
            let chunks = txn.open_table(CHUNKS)?;
            let format = meta.get(key::FORMAT)?.map(|v| v.value());
            let mut c = match format {
                Some(FORMAT_VERSION) => Counters::load(&meta)?,
                Some(other) => {
                    return Err(Fault::Incompatible(format!(
                        "outbox format {other}; this version reads format {FORMAT_VERSION}"
                    )));
                }
                None if had_tables => {
                    return Err(Fault::Corrupted(
                        "a redb file, but not an outbox store".to_string(),
                    ));
                }
                None => {
                    meta.insert(key::FORMAT, FORMAT_VERSION)?;
                    Counters {
                        next_seq: seed.max(1),
                        ..Counters::default()
                    }
                }
            };
            // A record holds at most u32::MAX samples and bytes: larger sums are out of step too.
            let past_records = |sum: u64| sum > c.batches.saturating_mul(u64::from(u32::MAX));
            if c.batches != records.len()?
                || c.chunks != chunks.len()?
                || past_records(c.samples)
                || past_records(c.payload_bytes)
            {
                tracing::warn!(path = %self.path.display(),
                    "outbox counters disagree with the tables; recounting");
                recount(&mut c, &records)?;
            }
            // After a crash, appends past the last durable commit may have been published:
            // resume above every seq that was reserved. A clean close lowered the
            // reservation to `next_seq`, so only an unclean stop leaves a window.
            let durable_seq = c.next_seq.max(1);
            c.next_seq = c.next_seq.max(c.seq_limit).max(1);
            c.seq_limit = c.next_seq;
            let window = (c.next_seq > durable_seq).then_some(CrashWindow {
                durable_seq,
                resumed_seq: c.next_seq,
            });
            let ends = Ends::read(&records)?;
            // No commit writes these: counters that would overflow, or a record that the
            // next append would overwrite.
            if c.next_seq > MAX_SEQ || ends.newest.is_some_and(|seq| seq >= c.next_seq) {
                return Err(Fault::Corrupted(format!(
                    "next_seq {} is past the largest seq ({MAX_SEQ}) or not above the newest record ({:?})",
                    c.next_seq, ends.newest
                )));
            }
            c.store(&mut meta)?;
            (c, ends, window)
        };
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        self.c = c;
        self.ends = ends;
        self.unflushed = false;
        self.churn_since_durable = 0;
        self.commits_since_durable = 0;
        self.refresh_file_len()?;
        Ok(window)
    }

    fn refresh_file_len(&mut self) -> Result<(), Fault> {
        self.file_len = fs::metadata(&self.path)?.len();
        Ok(())
    }

    /// Makes sure redb's handle is open, reopening the file after an earlier failure (with
    /// backoff, so that a full disk is not re-read every call).
    fn ensure_open(&mut self) -> Result<(), Fault> {
        if self.db.is_some() {
            return Ok(());
        }
        let now = Instant::now();
        if let Some(not_before) = self.reopen.not_before
            && now < not_before
        {
            let (kind, message) = self
                .reopen
                .last
                .clone()
                .unwrap_or((io::ErrorKind::Other, "the store is closed".to_string()));
            return Err(io::Error::new(kind, format!("{message} (will retry)")).into());
        }
        match self.open_file() {
            Ok(report) => {
                tracing::info!(path = %self.path.display(), pending_batches = report.pending_batches,
                    next_seq = report.next_seq, "outbox reopened");
                self.reopen = Reopen::default();
                Ok(())
            }
            Err(fault) => {
                self.db = None;
                let backoff = self
                    .reopen
                    .backoff
                    .map_or(REOPEN_BACKOFF_MIN, |b| (b * 2).min(REOPEN_BACKOFF_MAX));
                self.reopen.backoff = Some(backoff);
                self.reopen.not_before = Some(now + backoff);
                if let Fault::DiskFull(e) | Fault::Io(e) = &fault {
                    self.reopen.last = Some((e.kind(), e.to_string()));
                }
                Err(fault)
            }
        }
    }

    // ----- writing -----

    /// Runs `body` in one write transaction, stores the counters it updated, and commits,
    /// durably if `body` or the pile of deletes asks for it. The in-memory state changes only if
    /// the commit succeeds.
    fn write<T>(
        &mut self,
        body: impl FnOnce(&WriteTransaction, &mut Counters, &Budget) -> Result<Commit<T>, Fault>,
    ) -> Result<T, Fault> {
        let mut c = self.c;
        let db = self.db()?;
        let mut txn = db.begin_write()?;
        let (commit, ends) = {
            let commit = body(&txn, &mut c, &self.budget)?;
            let mut meta = txn.open_table(META)?;
            c.store(&mut meta)?;
            let records = txn.open_table(RECORDS)?;
            (commit, Ends::read(&records)?)
        };
        let churn = self.churn_since_durable + commit.churn;
        let durable = commit.durable
            || churn > self.budget.churn_before_durable()
            || self.commits_since_durable + 1 >= self.budget.commits_before_durable();
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        txn.commit()?;
        self.c = c;
        self.ends = ends;
        // Evictions take the oldest records: whatever was marked sent below the oldest left is
        // gone.
        self.sent
            .forget_below(ends.oldest_seq().unwrap_or(self.c.next_seq));
        self.unflushed = !durable;
        self.churn_since_durable = if durable { 0 } else { churn };
        self.commits_since_durable = if durable {
            0
        } else {
            self.commits_since_durable + 1
        };
        self.refresh_file_len()?;
        Ok(commit.value)
    }

    fn append(&mut self, samples: u32, encode: impl FnOnce(u64) -> Vec<u8>) -> Result<u64, Fault> {
        self.ensure_open()?;
        let seq = self.c.next_seq;
        let payload = encode(seq);
        let len = payload.len() as u64;
        let max = self.budget.max_record().min(u64::from(u32::MAX));
        if len > max {
            return Err(Fault::TooLarge { bytes: len, max });
        }
        let footprint = self.budget.footprint(len);
        let estimate = self.estimate() + footprint;
        if self.budget.should_rebase(self.file_len, estimate) {
            self.rebase()?;
            self.budget.rebased(self.file_len, estimate);
        }
        let limit = self.budget.limit(self.file_len);
        let now = now_ms();
        let (evicted_batches, evicted_samples) = self.write(|txn, c, budget| {
            let mut records = txn.open_table(RECORDS)?;
            let mut chunks = txn.open_table(CHUNKS)?;
            let mut evicted = (0, 0);
            let mut churn = 0;
            while c.batches > 0
                && budget
                    .estimate(c.batches, c.chunks, c.payload_bytes)
                    .saturating_add(footprint)
                    > limit
            {
                let Some((samples, len)) = pop_oldest(&mut records, &mut chunks, c)? else {
                    break;
                };
                evicted.0 += 1;
                evicted.1 += u64::from(samples);
                churn += budget.footprint(len);
            }
            churn += footprint;
            c.evicted_batches = c.evicted_batches.saturating_add(evicted.0);
            c.evicted_samples = c.evicted_samples.saturating_add(evicted.1);
            insert_record(&mut records, &mut chunks, seq, samples, now, &payload)?;
            c.batches += 1;
            c.samples += u64::from(samples);
            c.payload_bytes += len;
            c.chunks += chunks_for(len);
            c.next_seq = seq + 1;
            // Every seq handed out stays below a durable reservation (see the crate docs).
            let reserve = c.next_seq > c.seq_limit;
            if reserve {
                c.seq_limit = c.next_seq + SEQ_RESERVATION;
            }
            Ok(Commit {
                value: evicted,
                durable: reserve,
                churn,
            })
        })?;
        self.appended_bytes_total += len;
        self.evictions.add(evicted_batches, evicted_samples);
        self.enforce_cap()?;
        Ok(seq)
    }

    fn ack(&mut self, seq: u64) -> Result<(), Fault> {
        self.ensure_open()?;
        let known = {
            let txn = self.db()?.begin_read()?;
            let records = txn.open_table(RECORDS)?;
            records.get(seq)?.is_some()
        };
        if !known {
            return Ok(());
        }
        self.write(|txn, c, budget| {
            let mut records = txn.open_table(RECORDS)?;
            let mut chunks = txn.open_table(CHUNKS)?;
            let deleted = remove_record(&mut records, &mut chunks, c, seq)?;
            Ok(Commit {
                value: (),
                durable: false,
                churn: deleted.map_or(0, |(_, len)| budget.footprint(len)),
            })
        })?;
        self.sent.remove(seq);
        self.enforce_cap()
    }

    fn mark_sent(&mut self, seq: u64, at: Instant) -> Result<bool, Fault> {
        self.ensure_open()?;
        let stored = {
            let txn = self.db()?.begin_read()?;
            let records = txn.open_table(RECORDS)?;
            records.get(seq)?.is_some()
        };
        if stored {
            self.sent.mark(seq, at);
        }
        Ok(stored)
    }

    fn apply_ack(
        &mut self,
        ack: &PlatformAck<'_>,
        missing_sent_before: Instant,
    ) -> Result<AckOutcome, Fault> {
        self.ensure_open()?;
        // Read first: most acks find nothing new to delete, and need no write transaction.
        let doomed = {
            let txn = self.db()?.begin_read()?;
            let records = txn.open_table(RECORDS)?;
            let mut doomed = Vec::new();
            for (first, last) in ack.stored_ranges() {
                for entry in records.range(first..=last)? {
                    doomed.push(entry?.0.value());
                }
            }
            doomed
        };
        let mut outcome = AckOutcome::default();
        if !doomed.is_empty() {
            let deleted = self.write(|txn, c, budget| {
                let mut records = txn.open_table(RECORDS)?;
                let mut chunks = txn.open_table(CHUNKS)?;
                let mut churn = 0;
                let mut deleted = 0;
                for &seq in &doomed {
                    if let Some((_, len)) = remove_record(&mut records, &mut chunks, c, seq)? {
                        churn += budget.footprint(len);
                        deleted += 1;
                    }
                }
                Ok(Commit {
                    value: deleted,
                    durable: false,
                    churn,
                })
            })?;
            for &seq in &doomed {
                self.sent.remove(seq);
            }
            outcome.deleted_batches = deleted;
        }
        let mut returned: Vec<u64> = ack
            .missing_ranges()
            .flat_map(|(first, last)| self.sent.in_range_before(first, last, missing_sent_before))
            .collect();
        returned.sort_unstable();
        returned.dedup();
        for &seq in &returned {
            self.sent.remove(seq);
        }
        outcome.returned = returned;
        self.enforce_cap()?;
        Ok(outcome)
    }

    /// After the file was reopened (rolled back to its last durable commit), forgets the sent
    /// marks of records that are no longer stored.
    fn forget_sent_not_stored(&mut self) -> Result<(), Fault> {
        if self.sent.len() == 0 {
            return Ok(());
        }
        let db = self
            .db
            .as_ref()
            .ok_or_else(|| Fault::Internal("the store is not open".to_string()))?;
        let txn = db.begin_read()?;
        let records = txn.open_table(RECORDS)?;
        // A record that cannot be looked up is treated as pending: sent again, never lost.
        self.sent
            .retain(|seq| records.get(seq).is_ok_and(|r| r.is_some()));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Fault> {
        self.ensure_open()?;
        if self.unflushed {
            self.write(|_, _, _| {
                Ok(Commit {
                    value: (),
                    durable: true,
                    churn: 0,
                })
            })?;
        }
        self.enforce_cap()
    }

    /// Compacts the file so that redb's next doubling lands near the cap.
    fn rebase(&mut self) -> Result<(), Fault> {
        let before = self.file_len;
        let started = Instant::now();
        self.compact()?;
        tracing::info!(
            file_bytes_before = before,
            file_bytes_after = self.file_len,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "outbox compacted so that its file can grow to its size cap"
        );
        Ok(())
    }

    fn compact(&mut self) -> Result<(), Fault> {
        let db = self
            .db
            .as_mut()
            .ok_or_else(|| Fault::Internal("the store is not open".to_string()))?;
        // Every transaction is scoped to one call under the lock, so none is live here.
        db.compact()?;
        // compact() commits durably: everything so far is durable now.
        self.unflushed = false;
        self.churn_since_durable = 0;
        self.commits_since_durable = 0;
        self.refresh_file_len()
    }

    /// If the file outgrew the cap (the estimate or the headroom was too low: acks far out of
    /// order leave leaves partly empty), evicts and compacts until it fits, keeping the newest
    /// record, and raises the estimate so that it does not happen again.
    fn enforce_cap(&mut self) -> Result<(), Fault> {
        let max = self.budget.max_bytes();
        let mut round = 0;
        while self.file_len > max && round < 8 && (round == 0 || self.c.batches > 1) {
            round += 1;
            tracing::warn!(
                file_bytes = self.file_len,
                max_bytes = max,
                "outbox file outgrew its size cap; evicting and compacting"
            );
            self.budget.raise_correction();
            let target = if round == 1 {
                self.budget.emergency_target()
            } else {
                self.estimate() / 2
            };
            let (batches, samples) = self.write(|txn, c, budget| {
                let mut records = txn.open_table(RECORDS)?;
                let mut chunks = txn.open_table(CHUNKS)?;
                let mut evicted = (0, 0);
                while c.batches > 1
                    && budget.estimate(c.batches, c.chunks, c.payload_bytes) > target
                {
                    let Some((samples, _)) = pop_oldest(&mut records, &mut chunks, c)? else {
                        break;
                    };
                    evicted.0 += 1;
                    evicted.1 += u64::from(samples);
                }
                c.evicted_batches = c.evicted_batches.saturating_add(evicted.0);
                c.evicted_samples = c.evicted_samples.saturating_add(evicted.1);
                Ok(Commit {
                    value: evicted,
                    durable: true,
                    churn: 0,
                })
            })?;
            self.evictions.add(batches, samples);
            self.compact()?;
        }
        Ok(())
    }

    // ----- reading -----

    fn read_unsent(&mut self, from: u64, below: u64, limit: usize) -> Result<Vec<Record>, Fault> {
        self.ensure_open()?;
        let txn = self.db()?.begin_read()?;
        let records = txn.open_table(RECORDS)?;
        let chunks = txn.open_table(CHUNKS)?;
        let mut out = Vec::new();
        let mut next = self.sent.next_unsent(from);
        // A run of sent records is stepped over in memory and the scan restarts after it, so
        // a read costs the records it returns, not the sent ones between them.
        'scan: while next < below && out.len() < limit {
            for entry in records.range(next..below)? {
                let (k, v) = entry?;
                let seq = k.value();
                if self.sent.contains(seq) {
                    next = self.sent.next_unsent(seq);
                    continue 'scan;
                }
                let (samples, appended_at_ms, len) = v.value();
                out.push(Record {
                    seq,
                    samples,
                    payload: read_payload(&chunks, seq, u64::from(len))?,
                    appended_at_ms,
                });
                if out.len() >= limit {
                    break 'scan;
                }
            }
            break;
        }
        Ok(out)
    }

    fn read(&mut self, direction: Direction, limit: usize) -> Result<Vec<Record>, Fault> {
        self.ensure_open()?;
        let txn = self.db()?.begin_read()?;
        let records = txn.open_table(RECORDS)?;
        let chunks = txn.open_table(CHUNKS)?;
        let mut out = Vec::new();
        let mut push = |seq: u64, (samples, appended_at_ms, len): (u32, i64, u32)| {
            out.push(Record {
                seq,
                samples,
                payload: read_payload(&chunks, seq, u64::from(len))?,
                appended_at_ms,
            });
            Ok::<_, Fault>(())
        };
        match direction {
            Direction::Oldest(from_seq) => {
                for entry in records.range(from_seq..)?.take(limit) {
                    let (k, v) = entry?;
                    push(k.value(), v.value())?;
                }
            }
            Direction::Newest => {
                for entry in records.iter()?.rev().take(limit) {
                    let (k, v) = entry?;
                    push(k.value(), v.value())?;
                }
            }
        }
        Ok(out)
    }
}

impl Drop for Inner {
    /// A clean close lowers the `seq` reservation back to `next_seq`, so that a clean restart
    /// leaves no gap in the numbering, and makes everything durable.
    fn drop(&mut self) {
        if std::thread::panicking() || self.db.is_none() {
            return;
        }
        let result = self.write(|_, c, _| {
            c.seq_limit = c.next_seq;
            Ok(Commit {
                value: (),
                durable: true,
                churn: 0,
            })
        });
        if let Err(fault) = result {
            tracing::warn!(path = %self.path.display(), error = %fault_text(&fault),
                "outbox close: final commit failed; the next open resumes numbering above the reservation");
        }
    }
}

// ----- record storage -----

fn insert_record(
    records: &mut Table<'_, u64, (u32, i64, u32)>,
    chunks: &mut Table<'_, (u64, u32), &[u8]>,
    seq: u64,
    samples: u32,
    appended_at_ms: i64,
    payload: &[u8],
) -> Result<(), Fault> {
    let len = u32::try_from(payload.len())
        .map_err(|_| Fault::Internal("payload length checked above".to_string()))?;
    records.insert(seq, (samples, appended_at_ms, len))?;
    if payload.len() < CURSOR_INSERT_BYTES {
        for (index, chunk) in (0u32..).zip(payload.chunks(CHUNK)) {
            chunks.insert((seq, index), chunk)?;
        }
        return Ok(());
    }
    // A new record's chunks sort after every stored key (its `seq` is the highest): a large
    // record's go in through a cursor at the end of the table, which redb buffers and writes
    // leaf by leaf, instead of one descent from the root per chunk.
    let mut cursor = chunks.upper_bound_mut(Bound::<(u64, u32)>::Unbounded)?;
    for (index, chunk) in (0u32..).zip(payload.chunks(CHUNK)) {
        match cursor.insert_before((seq, index), chunk) {
            Ok(()) => {}
            Err(CursorError::UnorderedKey) => {
                return Err(Fault::Internal(format!(
                    "record {seq} does not sort after every stored record"
                )));
            }
            Err(CursorError::Storage(e)) => return Err(e.into()),
            Err(e) => return Err(redb::Error::from(e).into()),
        }
    }
    cursor.close()?;
    Ok(())
}

/// Deletes record `seq` and its chunks; returns its samples and payload length if it existed.
fn remove_record(
    records: &mut Table<'_, u64, (u32, i64, u32)>,
    chunks: &mut Table<'_, (u64, u32), &[u8]>,
    c: &mut Counters,
    seq: u64,
) -> Result<Option<(u32, u64)>, Fault> {
    let Some((samples, _, len)) = records.remove(seq)?.map(|v| v.value()) else {
        return Ok(None);
    };
    let len = u64::from(len);
    remove_chunks(chunks, seq, len)?;
    c.remove(samples, len)?;
    Ok(Some((samples, len)))
}

/// Deletes the oldest record; returns its samples and payload length.
fn pop_oldest(
    records: &mut Table<'_, u64, (u32, i64, u32)>,
    chunks: &mut Table<'_, (u64, u32), &[u8]>,
    c: &mut Counters,
) -> Result<Option<(u32, u64)>, Fault> {
    let Some((seq, (samples, _, len))) = records.pop_first()?.map(|(k, v)| (k.value(), v.value()))
    else {
        return Ok(None);
    };
    let len = u64::from(len);
    remove_chunks(chunks, seq, len)?;
    c.remove(samples, len)?;
    Ok(Some((samples, len)))
}

fn remove_chunks(
    chunks: &mut Table<'_, (u64, u32), &[u8]>,
    seq: u64,
    len: u64,
) -> Result<(), Fault> {
    // One scan of the record's key range, which redb applies leaf by leaf, instead of one
    // descent from the root per chunk; the pages left are the same.
    let expected = chunks_for(len);
    let mut found = 0u64;
    chunks.retain_in((seq, 0)..=(seq, u32::MAX), |(_, index), _| {
        found += u64::from(u64::from(index) == found);
        false
    })?;
    if found != expected {
        return Err(Fault::Corrupted(format!(
            "record {seq} is missing chunk {found} of its {expected}"
        )));
    }
    Ok(())
}

fn read_payload(
    chunks: &impl ReadableTable<(u64, u32), &'static [u8]>,
    seq: u64,
    len: u64,
) -> Result<Vec<u8>, Fault> {
    let mut payload = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    for entry in chunks.range((seq, 0)..=(seq, u32::MAX))? {
        let (_, chunk) = entry?;
        payload.extend_from_slice(chunk.value());
    }
    if payload.len() as u64 != len {
        return Err(Fault::Corrupted(format!(
            "record {seq} should hold {len} bytes, its chunks hold {}",
            payload.len()
        )));
    }
    Ok(payload)
}

/// Recomputes the record counters from the records table (only if they disagree with it).
fn recount(
    c: &mut Counters,
    records: &impl ReadableTable<u64, (u32, i64, u32)>,
) -> Result<(), Fault> {
    let (mut batches, mut samples, mut payload_bytes, mut chunks) = (0, 0, 0, 0);
    let mut last_seq = 0;
    for entry in records.iter()? {
        let (k, v) = entry?;
        let (s, _, len) = v.value();
        batches += 1;
        samples += u64::from(s);
        payload_bytes += u64::from(len);
        chunks += chunks_for(u64::from(len));
        last_seq = k.value();
    }
    c.batches = batches;
    c.samples = samples;
    c.payload_bytes = payload_bytes;
    c.chunks = chunks;
    c.next_seq = c.next_seq.max(last_seq.saturating_add(1));
    Ok(())
}

// ----- damage -----

/// Tries to read the numbering of a damaged file without writing to it.
fn read_old_seq(path: &Path) -> Option<u64> {
    let read = || -> Result<Option<u64>, Fault> {
        let db = Database::builder()
            .set_cache_size(1024 * 1024)
            .open_read_only(path)?;
        let txn = db.begin_read()?;
        let meta = txn.open_table(META)?;
        let c = Counters::load(&meta)?;
        let seq = c.next_seq.max(c.seq_limit);
        // A damaged counter must not seed the fresh store past the largest seq.
        Ok((1..=MAX_SEQ).contains(&seq).then_some(seq))
    };
    catch_unwind(read).ok()?.ok()?
}

/// A `seq` above any an earlier store can have handed out: ms since the epoch × 1000.
fn clock_seed() -> u64 {
    u64::try_from(now_ms())
        .unwrap_or(0)
        .saturating_mul(1000)
        .max(1)
}

fn move_aside(path: &Path) -> Result<PathBuf, Fault> {
    let mut ms = u64::try_from(now_ms()).unwrap_or(0);
    loop {
        let mut name = OsString::from(path.as_os_str());
        name.push(format!(".damaged-{ms}"));
        let aside = PathBuf::from(name);
        if !aside.exists() {
            fs::rename(path, &aside)?;
            return Ok(aside);
        }
        ms += 1;
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn fault_text(fault: &Fault) -> String {
    match fault {
        Fault::DiskFull(e) | Fault::Io(e) => e.to_string(),
        Fault::Corrupted(s) | Fault::Incompatible(s) | Fault::Internal(s) => s.clone(),
        Fault::Locked => "in use by another process".to_string(),
        Fault::TooLarge { bytes, max } => format!("record of {bytes} bytes, at most {max}"),
    }
}

#[cfg(test)]
mod tests;
