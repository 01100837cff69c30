//! Upgrading: a store written by the redb outbox of earlier versions (format 1) is migrated to
//! the segment log on open, in place, with every batch, its numbering and its counters.

use std::path::Path;

use fieldlink_outbox::CrashWindow;

use crate::{BIG, all, append, open, payload};

const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
const RECORDS: redb::TableDefinition<u64, (u32, i64, u32)> = redb::TableDefinition::new("records");
const CHUNKS: redb::TableDefinition<(u64, u32), &[u8]> = redb::TableDefinition::new("chunks");

/// Payload bytes per chunk in the redb store.
const CHUNK: usize = 495;

/// One record of the old store: seq, samples, appended_at_ms, payload.
type OldRecord = (u64, u32, i64, Vec<u8>);

/// Writes a store as the redb outbox (format 1) left it: its three tables, the counters in
/// step with the records, payloads in 495-byte chunks.
fn old_store(
    path: &Path,
    records: &[OldRecord],
    next_seq: u64,
    seq_limit: u64,
    evicted: (u64, u64),
) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut r = txn.open_table(RECORDS).unwrap();
        let mut c = txn.open_table(CHUNKS).unwrap();
        let (mut samples, mut bytes, mut chunks) = (0u64, 0u64, 0u64);
        for (seq, n, at, payload) in records {
            r.insert(*seq, (*n, *at, payload.len() as u32)).unwrap();
            for (i, chunk) in payload.chunks(CHUNK).enumerate() {
                c.insert((*seq, i as u32), chunk).unwrap();
                chunks += 1;
            }
            samples += u64::from(*n);
            bytes += payload.len() as u64;
        }
        let mut m = txn.open_table(META).unwrap();
        for (key, value) in [
            ("format", 1),
            ("next_seq", next_seq),
            ("seq_limit", seq_limit),
            ("batches", records.len() as u64),
            ("samples", samples),
            ("payload_bytes", bytes),
            ("chunks", chunks),
            ("evicted_batches", evicted.0),
            ("evicted_samples", evicted.1),
        ] {
            m.insert(key, value).unwrap();
        }
    }
    txn.commit().unwrap();
}

/// Records 40..=99 with gaps (acked ones), payloads of several chunks, one empty.
fn old_records() -> Vec<OldRecord> {
    (40..100u64)
        .filter(|seq| seq % 7 != 0)
        .map(|seq| {
            let len = if seq == 41 {
                0
            } else {
                100 + (seq as usize * 37) % 3000
            };
            (
                seq,
                (seq % 13) as u32,
                1_764_201_600_000 + seq as i64,
                payload(seq, len),
            )
        })
        .collect()
}

#[test]
fn a_redb_store_is_migrated_with_its_batches_numbering_and_counters() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    let records = old_records();
    old_store(&path, &records, 100, 100, (12, 340));

    let (outbox, report) = open(&path, BIG);
    assert_eq!(report.moved_aside, None);
    assert_eq!(report.pending_batches, records.len() as u64);
    assert_eq!(report.next_seq, 100, "a cleanly closed store leaves no gap");
    assert_eq!(report.resumed_after_crash, None);
    let migrated: Vec<OldRecord> = all(&outbox)
        .into_iter()
        .map(|r| (r.seq, r.samples, r.appended_at_ms, r.payload))
        .collect();
    assert_eq!(migrated, records);
    let stats = outbox.stats();
    assert_eq!((stats.evicted_batches, stats.evicted_samples), (12, 340));
    assert_eq!(
        stats.samples,
        records.iter().map(|r| u64::from(r.1)).sum::<u64>()
    );
    assert_eq!(stats.oldest_appended_at_ms, Some(records[0].2));
    // The file is a segment log now, and nothing is left beside it.
    assert_eq!(&std::fs::read(&path).unwrap()[4096..4104], b"FLOUTBOX");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert_eq!(append(&outbox, 10), 100);
    outbox.ack(43).unwrap();
    drop(outbox);

    let (outbox, report) = open(&path, BIG);
    assert_eq!(report.next_seq, 101);
    assert_eq!(report.pending_batches, records.len() as u64);
    assert!(!all(&outbox).iter().any(|r| r.seq == 43));
}

/// An old store that stopped uncleanly names its crash window once migrated, as it would have
/// on its own, and numbering goes on above its reservation.
#[test]
fn a_redb_store_left_by_a_crash_reports_its_window() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    old_store(&path, &old_records(), 100, 1100, (0, 0));
    let (outbox, report) = open(&path, BIG);
    assert_eq!(
        report.resumed_after_crash,
        Some(CrashWindow {
            durable_seq: 100,
            resumed_seq: 1100
        })
    );
    assert_eq!(append(&outbox, 10), 1100);
    drop(outbox);
    let (_, report) = open(&path, BIG);
    assert_eq!(report.resumed_after_crash, None);
}

/// Migrating under a cap smaller than the old store's batches keeps the newest and counts
/// the oldest as evicted.
#[test]
fn a_redb_store_larger_than_the_new_cap_keeps_its_newest_batches() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    let records: Vec<OldRecord> = (1..=600u64)
        .map(|seq| (seq, 3, 1_764_201_600_000, payload(seq, 1024)))
        .collect();
    old_store(&path, &records, 601, 601, (0, 0));
    let cap = 256 * 1024;
    let (outbox, report) = open(&path, cap);
    let kept = all(&outbox);
    let stats = outbox.stats();
    assert!(stats.file_bytes <= cap);
    assert!(stats.evicted_batches > 0);
    assert_eq!(stats.evicted_batches + kept.len() as u64, 600);
    assert_eq!(stats.evicted_samples, 3 * stats.evicted_batches);
    assert_eq!(kept.last().map(|r| r.seq), Some(600));
    assert!(kept.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert_eq!(kept[0].payload, payload(kept[0].seq, 1024));
    assert_eq!(report.next_seq, 601);
}

/// A migration cut short (the process died before the new file replaced the old) leaves the
/// redb file as it was: the next open migrates it again.
#[test]
fn an_interrupted_migration_starts_again() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    let records = old_records();
    old_store(&path, &records, 100, 100, (0, 0));
    let mut leftover = path.clone().into_os_string();
    leftover.push(".rebuilding");
    std::fs::write(&leftover, b"half a segment log").unwrap();
    let (outbox, report) = open(&path, BIG);
    assert_eq!(report.moved_aside, None);
    assert_eq!(all(&outbox).len(), records.len());
    assert!(!Path::new(&leftover).exists());
}
