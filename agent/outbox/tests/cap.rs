use crate::{all, append, open, seqs};

const KIB: u64 = 1024;

/// Appends `n` payloads of `len` bytes under `cap`, checking after each call that the file
/// is within the cap, and returns the outbox's stats at the end.
fn fill(cap: u64, len: usize, n: usize) -> (fieldlink_outbox::OutboxStats, Vec<u64>) {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    let (outbox, _) = open(&path, cap);
    let mut last = 0;
    for i in 0..n {
        last = append(&outbox, len);
        if i % 100 == 99 {
            outbox.flush().unwrap();
        }
        let file = std::fs::metadata(&path).unwrap().len();
        assert!(file <= cap, "after append {i}: file {file} > cap {cap}");
        assert_eq!(outbox.stats().file_bytes, file);
    }
    let stats = outbox.stats();
    let kept = seqs(&outbox);
    assert_eq!(*kept.last().unwrap(), last, "the newest record is kept");
    // What is kept is a contiguous run of the newest: only the oldest were evicted.
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(stats.batches + stats.evicted_batches, n as u64);
    assert_eq!(stats.evicted_samples, stats.evicted_batches);
    assert_eq!(stats.oldest_seq, Some(kept[0]));
    (stats, kept)
}

#[test]
fn cap_256k_with_1000_appends_of_1k_stays_within_the_cap() {
    let cap = 256 * KIB;
    let (stats, kept) = fill(cap, 1024, 1000);
    assert!(stats.evicted_batches > 0);
    assert_eq!(kept[0], stats.evicted_batches + 1, "the oldest went first");
    // redb's fixed overhead is large next to so small a cap; still, a good part holds payload.
    assert!(
        stats.payload_bytes >= cap / 6,
        "only {} payload bytes kept under a {cap}-byte cap",
        stats.payload_bytes
    );
}

#[test]
fn cap_holds_for_small_and_large_payloads() {
    for (cap, len, n) in [
        (512 * KIB, 100, 3000),
        (1024 * KIB, 5000, 300),
        (2048 * KIB, 40_000, 120),
        (1000 * KIB, 1500, 1000), // a cap that is not a power of two
    ] {
        let (stats, _) = fill(cap, len, n);
        assert!(
            stats.evicted_batches > 0,
            "cap {cap} len {len}: nothing evicted"
        );
        assert!(
            stats.payload_bytes >= cap / 5,
            "cap {cap} len {len}: only {} payload bytes kept",
            stats.payload_bytes
        );
    }
}

#[test]
fn evictions_are_counted_and_persisted() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    let (outbox, _) = open(&path, 256 * KIB);
    for _ in 0..600 {
        outbox.append(7, |seq| crate::payload(seq, 1024)).unwrap();
    }
    let stats = outbox.stats();
    assert!(stats.evicted_batches > 0);
    assert_eq!(stats.evicted_samples, 7 * stats.evicted_batches);
    let kept = all(&outbox);
    drop(outbox);
    let (outbox, report) = open(&path, 256 * KIB);
    let after = outbox.stats();
    assert_eq!(after.evicted_batches, stats.evicted_batches);
    assert_eq!(after.evicted_samples, stats.evicted_samples);
    assert_eq!(report.next_seq, 601);
    assert_eq!(all(&outbox), kept);
    // Eviction never reuses a seq either.
    assert_eq!(append(&outbox, 10), 601);
}

#[test]
fn acked_space_is_reused_without_growing_the_file() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    let cap = 1024 * KIB;
    let (outbox, _) = open(&path, cap);
    for i in 0..2000 {
        let seq = append(&outbox, 2000);
        outbox.ack(seq).unwrap();
        if i % 50 == 0 {
            outbox.flush().unwrap();
        }
    }
    let stats = outbox.stats();
    assert_eq!(stats.evicted_batches, 0);
    assert!(
        stats.file_bytes <= 256 * KIB,
        "file {} bytes for an empty outbox",
        stats.file_bytes
    );
}
