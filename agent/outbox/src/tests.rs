//! Unit tests that need the outbox's insides: the disk-full switch, the index's budget, and
//! how much of a full store is payload.

use std::path::Path;
use std::time::Duration;

use super::*;

fn open_at(path: &Path, max_bytes: u64) -> (Outbox, DiskFullSwitch) {
    let switch = DiskFullSwitch::default();
    let (outbox, _) =
        Outbox::open_with(OutboxOptions::new(path, max_bytes), switch.clone()).expect("open");
    (outbox, switch)
}

/// A temporary directory on tmpfs where there is one (fsync is not what these tests measure).
fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temporary directory")
}

/// A full disk fails the append with `DiskFull` (not `Corrupted`), and once space is freed the
/// outbox reopens its file and works again, from its last durable state, reusing no `seq`.
#[test]
fn disk_full_is_reported_and_the_outbox_recovers_once_space_is_freed() {
    let dir = tempdir();
    let path = dir.path().join("o.redb");
    let (outbox, switch) = open_at(&path, 16 << 20);
    for _ in 0..10 {
        outbox.append(1, |_| vec![1u8; 1000]).unwrap();
    }
    outbox.flush().unwrap();
    let handed_out = outbox.append(1, |_| vec![1u8; 1000]).unwrap(); // seq 11, not flushed

    switch.set(true);
    let err = outbox.append(1, |_| vec![2u8; 4000]).unwrap_err();
    assert!(matches!(err, OutboxError::DiskFull { .. }), "{err}");
    // While the disk is full, calls keep failing with DiskFull (after backoff, on reopen).
    let err = outbox.append(1, |_| vec![3u8; 10]).unwrap_err();
    assert!(matches!(err, OutboxError::DiskFull { .. }), "{err}");
    let err = outbox.flush().unwrap_err();
    assert!(matches!(err, OutboxError::DiskFull { .. }), "{err}");
    // The counters still answer.
    assert!(outbox.stats().next_seq > handed_out);

    switch.set(false);
    std::thread::sleep(Duration::from_millis(2100));
    let seq = outbox
        .append(1, |_| vec![4u8; 10])
        .expect("appends work again once space is freed");
    // Back to the last durable state: the ten flushed records, and no seq reused.
    let records = outbox.oldest(0, 100).unwrap();
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=10).chain([seq]).collect::<Vec<_>>()
    );
    assert!(
        seq > handed_out,
        "seq {seq} may have been handed out before the failure"
    );
}

/// A full store is mostly payload: the segment log keeps no free pages, only frame headers,
/// the tail segment's dead records and the slot kept for ack frames.
#[test]
fn a_full_store_holds_payload_of_most_of_its_cap() {
    for (cap, len) in [
        (4 << 20, 1024usize),
        (4 << 20, 30_000),
        // Records of 1,000 JSON samples.
        (64 << 20, 92_000),
    ] {
        let dir = tempdir();
        let (outbox, _) = open_at(&dir.path().join("o.redb"), cap);
        let n = (cap * 3 / len as u64).min(20_000);
        for i in 0..n {
            outbox.append(1, |_| vec![9u8; len]).unwrap();
            if i % 100 == 0 {
                outbox.flush().unwrap();
            }
        }
        let stats = outbox.stats();
        assert!(stats.file_bytes <= cap);
        assert!(
            stats.payload_bytes * 100 / cap >= 75,
            "cap {cap} len {len}: payload only {} ({}% of cap)",
            stats.payload_bytes,
            stats.payload_bytes * 100 / cap
        );
    }
}

/// The index keeps the entries of few segments loaded, whatever the number of records: a
/// store of many small records stays within the budget, and reads load what they need.
#[test]
fn the_index_keeps_its_loaded_entries_within_the_budget() {
    let dir = tempdir();
    let path = dir.path().join("o.redb");
    let (outbox, _) = Outbox::open_with(
        OutboxOptions {
            path: path.clone(),
            max_bytes: 64 << 20,
            cache_bytes: 64 * 1024,
        },
        DiskFullSwitch::default(),
    )
    .expect("open");
    for _ in 0..100_000 {
        outbox.append(1, |seq| seq.to_le_bytes().to_vec()).unwrap();
    }
    let budget = outbox.store.terms.index_budget();
    let loaded = outbox.store.lock_state().index.loaded_bytes();
    assert!(
        loaded <= budget + budget / 2,
        "{loaded} bytes loaded, budget {budget}"
    );
    // Reading the oldest loads their segment again; acking a range deletes whole segments.
    let oldest = outbox.oldest(0, 3).unwrap();
    assert_eq!(oldest[2].payload, 3u64.to_le_bytes());
    outbox
        .apply_ack(
            &PlatformAck {
                stored_through: 99_000,
                missing: &[],
                stored_max: None,
            },
            std::time::Instant::now(),
        )
        .unwrap();
    assert_eq!(outbox.stats().batches, 1000);
    assert_eq!(outbox.stats().oldest_seq, Some(99_001));
}

/// A migration that meets a full disk fails the open with `DiskFull`, leaves the redb store
/// in place and no half-written copy beside it; once space is freed it migrates, every
/// batch with it.
#[test]
fn a_migration_cut_short_by_a_full_disk_leaves_the_redb_store_intact() {
    const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    const RECORDS: redb::TableDefinition<u64, (u32, i64, u32)> =
        redb::TableDefinition::new("records");
    const CHUNKS: redb::TableDefinition<(u64, u32), &[u8]> = redb::TableDefinition::new("chunks");
    let dir = tempdir();
    let path = dir.path().join("outbox.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut records = txn.open_table(RECORDS).unwrap();
            let mut chunks = txn.open_table(CHUNKS).unwrap();
            for seq in 1..=3u64 {
                records.insert(seq, (5, 1_764_201_600_000, 10)).unwrap();
                chunks.insert((seq, 0), &[seq as u8; 10][..]).unwrap();
            }
            let mut meta = txn.open_table(META).unwrap();
            for (key, value) in [
                ("format", 1),
                ("next_seq", 4),
                ("seq_limit", 4),
                ("batches", 3),
                ("samples", 15),
                ("payload_bytes", 30),
                ("chunks", 3),
            ] {
                meta.insert(key, value).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let switch = DiskFullSwitch::default();
    switch.set(true);
    let err = Outbox::open_with(OutboxOptions::new(&path, 16 << 20), switch.clone()).unwrap_err();
    assert!(matches!(err, OutboxError::DiskFull { .. }), "{err}");
    assert!(
        std::fs::read(&path)
            .unwrap()
            .starts_with(&legacy::REDB_MAGIC),
        "still the redb store"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no copy left"
    );

    switch.set(false);
    let (outbox, report) =
        Outbox::open_with(OutboxOptions::new(&path, 16 << 20), switch).expect("open");
    assert_eq!((report.pending_batches, report.next_seq), (3, 4));
    assert_eq!(outbox.oldest(0, 10).unwrap()[2].payload, vec![3u8; 10]);
}
