//! The segment log's own promises: a torn superblock falls back to the commit before it, a
//! shrunk cap rebuilds the file, acked segments are dropped by range and their slots reused.

use crate::{BIG, all, append, crash, open, seqs};

/// A power cut while the newest superblock copy was written leaves it failing its checksum:
/// the store opens as of the commit before, whose segments were not reused since.
#[test]
fn a_torn_superblock_falls_back_to_the_commit_before() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    let (outbox, _) = open(&path, BIG);
    for _ in 0..5 {
        append(&outbox, 3000);
    }
    outbox.flush().unwrap();
    let before = all(&outbox);
    for _ in 0..5 {
        append(&outbox, 3000);
    }
    outbox.ack(1).unwrap();
    outbox.flush().unwrap();
    let copy = crash(outbox, &path, 0);
    // Which copy is the newest: the one with the higher generation (bytes 16..24).
    let mut bytes = std::fs::read(&copy).unwrap();
    let generation = |at: usize| u64::from_le_bytes(bytes[at + 16..at + 24].try_into().unwrap());
    let newest = if generation(0) > generation(4096) {
        0
    } else {
        4096
    };
    // A byte of its counters (bytes 16.. are under its checksum).
    bytes[newest + 50] ^= 0xFF;
    std::fs::write(&copy, &bytes).unwrap();

    let (outbox, report) = open(&copy, BIG);
    assert_eq!(report.moved_aside, None);
    assert_eq!(seqs(&outbox), [1, 2, 3, 4, 5]);
    assert!(all(&outbox) == before, "the payloads of the first commit");
    assert!(
        report.next_seq > 10,
        "seqs handed out before the crash are not reused"
    );
}

/// Opened under a smaller cap, a store is rebuilt to fit it: the newest batches are kept,
/// the oldest counted as evicted, and the file is within the new cap.
#[test]
fn a_smaller_cap_rebuilds_the_file_keeping_the_newest() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    let (outbox, _) = open(&path, 8 << 20);
    for _ in 0..2000 {
        append(&outbox, 2000);
    }
    drop(outbox);
    let cap = 512 * 1024;
    let (outbox, report) = open(&path, cap);
    let stats = outbox.stats();
    assert!(std::fs::metadata(&path).unwrap().len() <= cap);
    assert_eq!(report.next_seq, 2001);
    assert!(stats.evicted_batches > 0);
    assert_eq!(stats.batches + stats.evicted_batches, 2000);
    let kept = seqs(&outbox);
    assert_eq!(kept.last(), Some(&2000));
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(append(&outbox, 10), 2001);
}

/// Batches acked as fast as they come keep a handful of segments in use: a commit frees the
/// slots of every segment behind the oldest live record, and appends reuse them.
#[test]
fn acked_segments_are_dropped_and_their_slots_reused() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    let (outbox, _) = open(&path, 64 << 20);
    for i in 0..20_000u64 {
        let seq = append(&outbox, 5000);
        if seq > 30 {
            outbox.ack(seq - 30).unwrap();
        }
        if i % 200 == 0 {
            outbox.flush().unwrap();
        }
    }
    let stats = outbox.stats();
    assert_eq!(stats.evicted_batches, 0);
    assert_eq!(stats.batches, 30);
    // 100 MB went through a file that stays at a few segments: 200 batches between flushes
    // and the 30 awaiting their ack.
    assert!(
        stats.file_bytes < 4 << 20,
        "file {} bytes after 100 MB of batches",
        stats.file_bytes
    );
}

/// The sender reads and acks while the batcher appends from another thread: every batch is
/// read once, in order, and the store ends empty.
#[test]
fn appends_and_the_senders_reads_and_acks_interleave() {
    let dir = crate::tempdir();
    let (outbox, _) = open(&dir.path().join("outbox.redb"), 16 << 20);
    const N: u64 = 3000;
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..N {
                append(&outbox, 700 + (i as usize % 5000));
                if i % 100 == 0 {
                    outbox.flush().unwrap();
                }
            }
        });
        s.spawn(|| {
            let mut next = 1;
            while next <= N {
                for record in outbox.unsent(next, u64::MAX, 16).unwrap() {
                    assert_eq!(record.seq, next);
                    assert_eq!(
                        record.payload,
                        crate::payload(record.seq, record.payload.len())
                    );
                    outbox.ack(record.seq).unwrap();
                    next += 1;
                }
                std::thread::yield_now();
            }
        });
    });
    assert_eq!(outbox.stats().batches, 0);
    assert_eq!(outbox.stats().next_seq, N + 1);
}
