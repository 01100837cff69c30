use std::path::{Path, PathBuf};

use crate::{BIG, append, open, seqs};

/// A store with 50 records (seq 1..=50), closed cleanly; returns its path.
fn store_with_records(dir: &Path) -> PathBuf {
    let path = dir.join("outbox.redb");
    let (outbox, _) = open(&path, BIG);
    for _ in 0..50 {
        append(&outbox, 4000);
    }
    path
}

/// Opens a damaged file and checks that it was moved aside, a fresh store works, and no seq of
/// the old store is reused.
fn check_recovers(path: &Path, old_highest_seq: u64) {
    let damaged_len = std::fs::metadata(path).unwrap().len();
    let (outbox, report) = open(path, BIG);
    let aside = report.moved_aside.clone().expect("moved aside");
    assert!(report.error.is_some());
    assert!(
        aside
            .to_string_lossy()
            .starts_with(&*path.to_string_lossy())
            && aside.to_string_lossy().contains(".damaged-"),
        "{}",
        aside.display()
    );
    assert_eq!(
        std::fs::metadata(&aside).unwrap().len(),
        damaged_len,
        "kept as it was"
    );
    assert_eq!(report.pending_batches, 0);
    assert!(
        report.next_seq > old_highest_seq,
        "next_seq {}",
        report.next_seq
    );

    let seq = append(&outbox, 100);
    assert_eq!(seq, report.next_seq);
    assert_eq!(seqs(&outbox), [seq]);
    outbox.flush().unwrap();
    drop(outbox);
    let (outbox, report) = open(path, BIG);
    assert_eq!(report.moved_aside, None, "the fresh store is healthy");
    assert_eq!(seqs(&outbox), [seq]);
}

#[test]
fn a_file_truncated_to_half_is_moved_aside() {
    let dir = crate::tempdir();
    let path = store_with_records(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    check_recovers(&path, 50);
}

#[test]
fn a_file_of_random_bytes_is_moved_aside() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    // xorshift: deterministic noise, no extra dependency.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&path, noise).unwrap();
    check_recovers(&path, 0);
}

#[test]
fn a_zero_length_file_is_moved_aside_and_numbering_does_not_restart() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    std::fs::write(&path, b"").unwrap();
    // Nothing says which seqs the lost store handed out: the wall clock seeds the new one.
    let (outbox, report) = open(&path, BIG);
    assert!(report.moved_aside.is_some());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        report.next_seq >= (now_ms - 60_000) * 1000,
        "{}",
        report.next_seq
    );
    let seq = append(&outbox, 100);
    assert_eq!(seq, report.next_seq);
    drop(outbox);
    let (outbox, report) = open(&path, BIG);
    assert_eq!(report.moved_aside, None);
    assert_eq!(seqs(&outbox), [seq]);
}

#[test]
fn a_store_with_corrupted_pages_is_moved_aside() {
    let dir = crate::tempdir();
    let path = store_with_records(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    // Leave the header pages, overwrite everything after the first 64 KiB.
    for b in bytes.iter_mut().skip(64 * 1024).step_by(7) {
        *b ^= 0x5A;
    }
    std::fs::write(&path, bytes).unwrap();
    check_recovers(&path, 50);
}

#[test]
fn a_redb_file_that_is_not_an_outbox_is_moved_aside() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    {
        let db = redb_create(&path);
        drop(db);
    }
    check_recovers(&path, 0);
}

fn redb_create(path: &Path) -> redb::Database {
    const OTHER: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("other");
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(OTHER).unwrap().insert("k", "v").unwrap();
    txn.commit().unwrap();
    db
}

/// The outbox's tables of a redb file.
type Tables<'a> = (
    &'a [(&'a str, u64)],
    &'a [(u64, (u32, i64, u32))],
    &'a [((u64, u32), &'a [u8])],
);

/// A redb file whose outbox tables hold `meta`, `records` and `chunks`: states no commit of
/// the outbox writes, as a bit flip under a valid checksum could leave.
fn redb_outbox(path: &Path, (meta, records, chunks): Tables<'_>) {
    const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    const RECORDS: redb::TableDefinition<u64, (u32, i64, u32)> =
        redb::TableDefinition::new("records");
    const CHUNKS: redb::TableDefinition<(u64, u32), &[u8]> = redb::TableDefinition::new("chunks");
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(META).unwrap();
        for &(key, value) in meta {
            t.insert(key, value).unwrap();
        }
        let mut t = txn.open_table(RECORDS).unwrap();
        for (seq, record) in records {
            t.insert(seq, record).unwrap();
        }
        let mut t = txn.open_table(CHUNKS).unwrap();
        for &(key, chunk) in chunks {
            t.insert(key, chunk).unwrap();
        }
    }
    txn.commit().unwrap();
}

/// Regression (fuzz target outbox_recovery): a damaged file whose `next_seq` read u64::MAX
/// seeded the fresh store with it, and the first append overflowed. A store numbered past
/// the largest seq, or with a record the next append would overwrite, is damaged.
#[test]
fn a_seq_counter_past_the_largest_seq_is_damage_and_does_not_seed_the_fresh_store() {
    let stored = (1, 0, 0);
    let cases: [Tables<'_>; 5] = [
        // The fuzzer's file: no `format` (not an outbox), `next_seq` at u64::MAX.
        (
            &[("next_seq", u64::MAX), ("stray", 1099511627775)],
            &[],
            &[((2531906049332683555, 589505315), &b"##########\0"[..])],
        ),
        (&[("format", 1), ("next_seq", u64::MAX)], &[], &[]),
        (
            &[("format", 1), ("seq_limit", i64::MAX as u64 + 1)],
            &[],
            &[],
        ),
        (
            &[("format", 1), ("next_seq", 5), ("batches", 1)],
            &[(9, stored)],
            &[],
        ),
        (&[("format", 1)], &[(u64::MAX, stored)], &[]),
    ];
    for tables in cases {
        let dir = crate::tempdir();
        let path = dir.path().join("outbox.redb");
        redb_outbox(&path, tables);
        let (outbox, report) = open(&path, BIG);
        assert!(report.moved_aside.is_some(), "{tables:?}");
        assert!(report.next_seq <= i64::MAX as u64, "{}", report.next_seq);
        let seq = append(&outbox, 100);
        assert_eq!(seqs(&outbox), [seq]);
    }
}

/// A counter no record could add up to (more samples than `u32::MAX` per record) is
/// recounted from the records, as counters out of step with the tables are.
#[test]
fn a_sample_counter_past_what_the_records_hold_is_recounted() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    redb_outbox(
        &path,
        (
            &[("format", 1), ("next_seq", 1), ("samples", u64::MAX)],
            &[],
            &[],
        ),
    );
    let (outbox, report) = open(&path, BIG);
    assert_eq!(report.moved_aside, None);
    assert_eq!(outbox.stats().samples, 0);
    outbox.append(3, |_| b"x".to_vec()).unwrap();
    assert_eq!(outbox.stats().samples, 3);
}
