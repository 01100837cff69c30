//! Unit tests that need the outbox's insides: redb's real page counts, and the disk-full switch.

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

/// Bytes of pages redb has allocated (its `stats()` walks every page: tests only).
fn allocated_bytes(outbox: &Outbox) -> u64 {
    let inner = outbox.lock_inner();
    let txn = inner.db().unwrap().begin_write().unwrap();
    let bytes = txn.stats().unwrap().allocated_pages() * budget::PAGE;
    txn.abort().unwrap();
    bytes
}

/// The size model holds: the pages redb really uses stay within the estimate plus the headroom,
/// for small and large payloads, acks trailing appends, and any flush interval. This is what
/// keeps the file from growing past the cap.
#[test]
fn estimate_and_headroom_cover_the_pages_redb_uses() {
    for len in [10usize, 1024, 20_000] {
        for flush_every in [1u64, 10, 100_000] {
            let dir = tempdir();
            let (outbox, _) = open_at(&dir.path().join("o.redb"), 16 << 20);
            let n = (400_000 / (len as u64 + 200)).clamp(60, 400);
            let mut worst = i64::MIN;
            for i in 1..=n {
                outbox.append(1, |_| vec![7u8; len]).unwrap();
                if i > n / 2 {
                    outbox.ack(i - n / 2).unwrap();
                }
                if i % flush_every == 0 {
                    outbox.flush().unwrap();
                }
                if i % 13 == 0 || i == n {
                    let allowed = {
                        let inner = outbox.lock_inner();
                        inner.estimate() + inner.budget.headroom()
                    };
                    let used = allocated_bytes(&outbox);
                    worst = worst.max(used as i64 - allowed as i64);
                    assert!(
                        used <= allowed,
                        "len {len} flush every {flush_every}, after {i}: redb uses {used} bytes, \\
                         the model allows {allowed}"
                    );
                }
            }
            println!(
                "len {len} flush every {flush_every}: worst margin {} bytes",
                -worst
            );
        }
    }
}

/// A full disk fails the append with `DiskFull` (not `Corrupted`), and once space is freed the
/// outbox reopens its file and works again, from its last durable state.
#[test]
fn disk_full_is_reported_and_the_outbox_recovers_once_space_is_freed() {
    let dir = tempdir();
    let path = dir.path().join("o.redb");
    let (outbox, switch) = open_at(&path, 16 << 20);
    for _ in 0..10 {
        outbox.append(1, |_| vec![1u8; 1000]).unwrap();
    }
    outbox.flush().unwrap();
    outbox.append(1, |_| vec![1u8; 1000]).unwrap(); // seq 11, not flushed

    switch.set(true);
    // Appends fill redb's write buffer until it must write to the file, or flush does.
    let err = (0..10_000)
        .find_map(|_| outbox.append(1, |_| vec![2u8; 4000]).err())
        .or_else(|| outbox.flush().err())
        .expect("a write fails on a full disk");
    assert!(matches!(err, OutboxError::DiskFull { .. }), "{err}");
    // While the disk is full, calls keep failing with DiskFull (after backoff, on reopen).
    let err = outbox.append(1, |_| vec![3u8; 10]).unwrap_err();
    assert!(matches!(err, OutboxError::DiskFull { .. }), "{err}");
    // The counters still answer.
    assert!(outbox.stats().next_seq > 11);

    switch.set(false);
    std::thread::sleep(REOPEN_BACKOFF_MIN * 2 + Duration::from_millis(100));
    let seq = outbox
        .append(1, |_| vec![4u8; 10])
        .expect("appends work again once space is freed");
    // Back to the last durable state: the ten flushed records, and no seq reused.
    let records = outbox.oldest(0, 100).unwrap();
    assert_eq!(records.len(), 11);
    assert_eq!(
        records[..10].iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert!(
        seq > 11,
        "seq {seq} may have been handed out before the failure"
    );
    assert_eq!(records[10].seq, seq);
}

/// Filling a store far past its cap never takes the emergency path (evict to a third and
/// compact): the model keeps the file under the cap by itself.
#[test]
fn filling_past_the_cap_needs_no_emergency_compaction() {
    for (cap, len) in [
        (256 * 1024, 1024usize),
        (4 << 20, 1024),
        (4 << 20, 30_000),
        (3 << 20, 700),
        // Records of 1,000 JSON samples, inserted through a cursor.
        (16 << 20, 92_000),
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
        let inner = outbox.lock_inner();
        assert_eq!(
            inner.budget.correction_milli(),
            1000,
            "cap {cap} len {len}: emergency happened"
        );
        println!(
            "cap {cap} len {len}: file {} payload {} ({}% of cap), evicted {}",
            stats.file_bytes,
            stats.payload_bytes,
            stats.payload_bytes * 100 / cap,
            stats.evicted_batches
        );
    }
}
