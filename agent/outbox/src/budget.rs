//! The size model: what a record costs in the file, and how large the file may become.
//!
//! redb never tells cheaply how many pages are in use (its `stats()` walks every page), so the
//! outbox estimates it from its own counters, and reads the truth it can get cheaply: the
//! file's length. Two facts of redb 4 shape the model (`redb-4.6.0/src/tree_store/page_store/
//! page_manager.rs`, `grow()` and `try_shrink()`):
//!
//! - The file grows only when no free page is left, and then to `2 × len - 4096` bytes
//!   (`next_desired_size = usable * 2` while the file is one region, i.e. below 4 GiB). From a
//!   file of length `L` the reachable lengths are `L`, `2L - 4096`, `4L - 12288`, ...
//! - It shrinks only by trimming free pages at its end; `compact()` moves pages down and trims
//!   everything free, leaving the file exactly as long as the pages in use.
//!
//! So the cap is held by never letting the pages in use (estimated, plus a headroom for redb's
//! own) outgrow the largest reachable length that is `<= max_bytes`, and by re-basing that
//! ladder with one early compaction when it would stop well short of the cap.

/// redb's page size (fixed at 4 KiB in redb 4).
pub(crate) const PAGE: u64 = 4096;

/// Payload bytes per chunk. A chunk entry is a 4-byte value length, a 12-byte `(u64, u32)` key
/// and the chunk: eight full chunks make 8 × 511 + 4 (leaf header) = 4092 bytes, one 4 KiB leaf.
pub(crate) const CHUNK: usize = 495;

/// Per chunk: the value length and the key.
const CHUNK_ENTRY_OVERHEAD: u64 = 16;
/// Per record: its entry in the records table (8-byte key, 16-byte fixed value).
const RECORD_ENTRY: u64 = 24;

/// Pages redb itself needs whatever the content (super header, region header, the table of
/// tables, three table roots, freed-page lists), plus the pages its non-durable commits keep
/// in use: measured at 7-14 pages over the records with 1 KiB records and any flush pattern.
const BASE_PAGES: u64 = 16;

/// Pages a non-durable commit keeps in use until a durable commit (see
/// [`Budget::commits_before_durable`]).
const PAGES_PER_COMMIT: u64 = 8;

/// A compacted empty store is 4 pages long (measured with redb 4.6).
const COMPACTED_EMPTY: u64 = 4 * PAGE;

/// The smallest cap accepted: redb's minimum file is 72 KiB (18 pages) and its fixed overhead
/// about as much again.
pub(crate) const MIN_MAX_BYTES: u64 = 256 * 1024;

/// Number of chunks a payload of `len` bytes is stored in.
pub(crate) fn chunks_for(len: u64) -> u64 {
    len.div_ceil(CHUNK as u64)
}

/// Bytes of B-tree entries a set of records takes, before page overhead.
fn raw_bytes(batches: u64, chunks: u64, payload_bytes: u64) -> u64 {
    payload_bytes
        .saturating_add(chunks.saturating_mul(CHUNK_ENTRY_OVERHEAD))
        .saturating_add(batches.saturating_mul(RECORD_ENTRY))
}

/// The length redb grows a file of `len` bytes to when it runs out of free pages.
pub(crate) fn next_len(len: u64) -> u64 {
    len.saturating_mul(2).saturating_sub(PAGE)
}

/// Bytes of pages a file of `len` bytes can hold (less the super and region headers).
fn usable(len: u64) -> u64 {
    len.saturating_sub(4 * PAGE)
}

/// The size model of one store.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    max_bytes: u64,
    /// Multiplier on the estimate, in 1/1000. Starts at 1000 and grows if the file ever outgrows
    /// the cap, i.e. if the estimate proved too low (leaves left partly empty by acks out of
    /// order can hold as little as a third of a page).
    correction_milli: u64,
    /// No re-basing compaction while the estimate is below this: set after one that did not
    /// give a good ladder, so that it is not repeated in a loop.
    no_rebase_below: u64,
}

impl Budget {
    pub(crate) fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            correction_milli: 1000,
            no_rebase_below: 0,
        }
    }

    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Estimated bytes of pages in use for the given record counters, excluding redb's own
    /// fixed pages. Leaves appended in key order hold at least 4092 - 511 = 3581 bytes of
    /// entries (the next entry did not fit); branch pages add about 1 %: 4096 / 3581 × 1.01 =
    /// 1.155, rounded up to 1.2.
    pub(crate) fn estimate(&self, batches: u64, chunks: u64, payload_bytes: u64) -> u64 {
        let raw = raw_bytes(batches, chunks, payload_bytes);
        let paged = raw.saturating_mul(6) / 5;
        paged.saturating_mul(self.correction_milli) / 1000
    }

    /// Estimated cost of one record with a payload of `len` bytes.
    pub(crate) fn footprint(&self, len: u64) -> u64 {
        self.estimate(1, chunks_for(len), len)
    }

    /// Bytes that must stay free beyond the records: redb's fixed pages, the allocator state
    /// it writes on close (about 1/512 of the file), and the pages of records appended or deleted
    /// since the last durable commit. redb cannot reuse a page freed by a non-durable commit
    /// before a durable one, and frees some of them only at the durable commit after that one,
    /// so up to two rounds of churn are in limbo.
    pub(crate) fn headroom(&self) -> u64 {
        BASE_PAGES * PAGE
            + 2 * self.churn_before_durable()
            + self.commits_before_durable() * PAGES_PER_COMMIT * PAGE
            + self.max_bytes / 512
    }

    /// Non-durable commits after which the next commit is made durable. Each non-durable commit
    /// leaves pages that redb frees only after a later durable commit: the copies of the pages
    /// it changed (copy-on-write) and a list of the pages it freed, which the durable commit
    /// writes into its own entry of about 3.2 KB (`durable_commit()` in
    /// `redb-4.6.0/src/transactions.rs`). Measured: up to 7 pages per commit.
    pub(crate) fn commits_before_durable(&self) -> u64 {
        (self.max_bytes / (256 * 1024)).clamp(1, 512)
    }

    /// Estimated bytes of records appended or deleted after which the next commit is made
    /// durable, so that the pages freed meanwhile become reusable and the file does not grow for
    /// want of them (see [`Self::headroom`]).
    pub(crate) fn churn_before_durable(&self) -> u64 {
        (self.max_bytes / 32).clamp(8 * 1024, 32 * 1024 * 1024)
    }

    /// The longest file reachable from `len` by redb's doublings without passing the cap.
    pub(crate) fn reachable_len(&self, len: u64) -> u64 {
        let mut len = len.max(PAGE);
        while next_len(len) <= self.max_bytes && next_len(len) > len {
            len = next_len(len);
        }
        len
    }

    /// The most the estimate may reach with a file of `file_len` bytes, before the oldest records
    /// are evicted.
    pub(crate) fn limit(&self, file_len: u64) -> u64 {
        usable(self.reachable_len(file_len)).saturating_sub(self.headroom())
    }

    /// The largest payload accepted: one record may take at most a quarter of the space, so that
    /// the newest records always fit next to it.
    pub(crate) fn max_record(&self) -> u64 {
        let quarter = usable(self.max_bytes).saturating_sub(self.headroom()) / 4;
        // footprint(len) ~= len × 1.2 × correction; invert conservatively.
        let per_byte_milli = 1200 * self.correction_milli / 1000 + 40;
        quarter.saturating_mul(1000) / per_byte_milli.max(1)
    }

    /// Whether to compact now to re-base the growth ladder, given the current file length and
    /// the estimate after the pending append.
    ///
    /// Worth it only when the ladder from the current length stops well short of the cap (under
    /// 70 % of it). After a compaction the file is as long as the pages in use (the estimate
    /// plus a few pages at most), and the ladder restarts from there: compact when that
    /// length's ladder reaches 70-100 % of the cap. As the store fills, the first such moment
    /// comes early (the ladder's windows are at 70-100 % of cap / 2^k), while compacting is
    /// cheap. If the compaction did not give a good ladder (the estimate was far off), wait for
    /// the estimate to grow by half before trying again.
    pub(crate) fn should_rebase(&self, file_len: u64, estimate: u64) -> bool {
        let good = self.max_bytes / 10 * 7;
        if self.reachable_len(file_len) >= good || estimate < self.no_rebase_below {
            return false;
        }
        let compacted = estimate.saturating_add(COMPACTED_EMPTY);
        compacted < file_len && self.reachable_len(compacted) >= good
    }

    /// Records the outcome of a re-basing compaction made at `estimate`.
    pub(crate) fn rebased(&mut self, file_len: u64, estimate: u64) {
        if self.reachable_len(file_len) < self.max_bytes / 10 * 7 {
            self.no_rebase_below = estimate.saturating_mul(3) / 2;
        } else {
            self.no_rebase_below = 0;
        }
    }

    #[cfg(test)]
    pub(crate) fn correction_milli(&self) -> u64 {
        self.correction_milli
    }

    /// The file outgrew the cap although the estimate said it would not: the estimate is too
    /// low. Raise it by a quarter (at most to 4×).
    pub(crate) fn raise_correction(&mut self) {
        self.correction_milli = (self.correction_milli * 5 / 4).min(4000);
    }

    /// The estimate to evict down to when the file outgrew the cap: a third of the cap, so that
    /// after a compaction the file's next doubling stays under the cap even if the estimate is
    /// still somewhat low.
    pub(crate) fn emergency_target(&self) -> u64 {
        self.max_bytes / 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lengths redb 4.6 was observed to grow a fresh file through: 18, 35, 69, 137 pages.
    #[test]
    fn next_len_matches_redb_growth() {
        assert_eq!(next_len(18 * PAGE), 35 * PAGE);
        assert_eq!(next_len(35 * PAGE), 69 * PAGE);
        assert_eq!(next_len(69 * PAGE), 137 * PAGE);
    }

    #[test]
    fn reachable_len_stops_below_the_cap() {
        let budget = Budget::new(256 * 1024);
        // 18 -> 35 pages fits under 64 pages; 69 does not.
        assert_eq!(budget.reachable_len(18 * PAGE), 35 * PAGE);
        assert_eq!(budget.reachable_len(35 * PAGE), 35 * PAGE);
        // A file already past the cap stays where it is.
        assert_eq!(budget.reachable_len(100 * PAGE), 100 * PAGE);
    }

    #[test]
    fn footprint_covers_chunking_and_leaf_slack() {
        let budget = Budget::new(1 << 30);
        // 1 KiB: three chunks, 1024 + 48 + 24 = 1096 raw, 1315 estimated.
        assert_eq!(chunks_for(1024), 3);
        assert_eq!(budget.footprint(1024), 1315);
        assert_eq!(chunks_for(0), 0);
    }

    #[test]
    fn rebase_when_the_compacted_ladder_reaches_near_the_cap() {
        let cap = 1000 * PAGE;
        let mut budget = Budget::new(cap);
        // From 545 pages the ladder stops there (next 1089 > 1000): short.
        let len = 545 * PAGE;
        // Compacted to 30 + 4 pages: ladder 34, 67, 133, 265, 529 pages: short again.
        assert!(!budget.should_rebase(len, 30 * PAGE));
        // Compacted to 60 + 4 pages: 64, 127, 253, 505, 1009 > 1000: no.
        assert!(!budget.should_rebase(len, 60 * PAGE));
        // Compacted to 55 + 4 pages: 59, 117, 233, 465, 929 <= 1000: yes.
        assert!(budget.should_rebase(len, 55 * PAGE));
        // A compaction that left a short ladder holds off the next try until 1.5×.
        budget.rebased(100 * PAGE, 55 * PAGE);
        assert!(!budget.should_rebase(len, 60 * PAGE));
        assert!(budget.should_rebase(len, 110 * PAGE));
        budget.rebased(900 * PAGE, 110 * PAGE);
        // A ladder that already reaches near the cap needs no re-base.
        assert!(!budget.should_rebase(900 * PAGE, 110 * PAGE));
    }
}
