use fieldlink_outbox::{Outbox, OutboxError, OutboxOptions};

use crate::{BIG, all, append, open, payload, seqs};

#[test]
fn append_assigns_seq_from_one_and_reads_back() {
    let dir = crate::tempdir();
    let (outbox, report) = open(&dir.path().join("outbox.redb"), BIG);
    assert_eq!(report.next_seq, 1);
    assert_eq!(report.pending_batches, 0);
    assert_eq!(report.moved_aside, None);

    let s1 = outbox.append(3, |seq| payload(seq, 10)).unwrap();
    let s2 = outbox.append(5, |seq| payload(seq, 2000)).unwrap();
    assert_eq!((s1, s2), (1, 2));

    let records = all(&outbox);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].seq, 1);
    assert_eq!(records[0].samples, 3);
    assert_eq!(records[0].payload, payload(1, 10));
    assert_eq!(records[1].payload, payload(2, 2000));
    assert!(records[0].appended_at_ms > 1_600_000_000_000);

    let newest = outbox.newest(1).unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].seq, 2);

    let stats = outbox.stats();
    assert_eq!(stats.batches, 2);
    assert_eq!(stats.samples, 8);
    assert_eq!(stats.payload_bytes, 2010);
    assert_eq!(stats.oldest_seq, Some(1));
    assert_eq!(stats.newest_seq, Some(2));
    assert_eq!(stats.oldest_appended_at_ms, Some(records[0].appended_at_ms));
    assert_eq!(stats.next_seq, 3);
    assert_eq!(stats.appended_bytes_total, 2010);
    assert!(stats.file_bytes > 0);
}

#[test]
fn oldest_starts_at_from_seq_and_newest_is_descending() {
    let dir = crate::tempdir();
    let (outbox, _) = open(&dir.path().join("outbox.redb"), BIG);
    for _ in 0..10 {
        append(&outbox, 100);
    }
    let from5: Vec<u64> = outbox.oldest(5, 3).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(from5, [5, 6, 7]);
    let newest: Vec<u64> = outbox.newest(4).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(newest, [10, 9, 8, 7]);
    assert!(outbox.oldest(11, 10).unwrap().is_empty());
    assert!(outbox.newest(0).unwrap().is_empty());
}

#[test]
fn ack_deletes_and_unknown_ack_is_ok() {
    let dir = crate::tempdir();
    let (outbox, _) = open(&dir.path().join("outbox.redb"), BIG);
    for _ in 0..5 {
        append(&outbox, 700);
    }
    outbox.ack(1).unwrap();
    outbox.ack(3).unwrap();
    outbox.ack(3).unwrap(); // twice
    outbox.ack(99).unwrap(); // never stored
    outbox.ack(0).unwrap();
    assert_eq!(seqs(&outbox), [2, 4, 5]);
    let stats = outbox.stats();
    assert_eq!(stats.batches, 3);
    assert_eq!(stats.payload_bytes, 3 * 700);
    assert_eq!(stats.oldest_seq, Some(2));
    for seq in [2, 4, 5] {
        outbox.ack(seq).unwrap();
    }
    let stats = outbox.stats();
    assert_eq!(
        (stats.batches, stats.samples, stats.payload_bytes),
        (0, 0, 0)
    );
    assert_eq!((stats.oldest_seq, stats.newest_seq), (None, None));
    assert_eq!(stats.next_seq, 6);
}

#[test]
fn empty_and_chunk_boundary_payloads_round_trip() {
    let dir = crate::tempdir();
    let (outbox, _) = open(&dir.path().join("outbox.redb"), BIG);
    let sizes = [0usize, 1, 494, 495, 496, 990, 991, 100_000];
    for &len in &sizes {
        outbox.append(0, |_| vec![0xAB; len]).unwrap();
    }
    let records = all(&outbox);
    for (record, &len) in records.iter().zip(&sizes) {
        assert_eq!(record.payload, vec![0xAB; len]);
    }
    for record in &records {
        outbox.ack(record.seq).unwrap();
    }
    assert_eq!(outbox.stats().payload_bytes, 0);
}

#[test]
fn missing_parent_directory_is_created() {
    let dir = crate::tempdir();
    let path = dir.path().join("a/b/c/outbox.redb");
    let (outbox, _) = open(&path, BIG);
    append(&outbox, 10);
    assert!(path.exists());
}

#[test]
fn a_cap_below_the_minimum_is_refused() {
    let dir = crate::tempdir();
    let err = Outbox::open(OutboxOptions::new(dir.path().join("o.redb"), 4096)).unwrap_err();
    assert!(matches!(err, OutboxError::InvalidOptions(_)), "{err}");
}

#[test]
fn a_second_open_of_the_same_file_is_locked_and_moves_nothing() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    let (outbox, _) = open(&path, BIG);
    append(&outbox, 10);
    let err = Outbox::open(OutboxOptions::new(&path, BIG)).unwrap_err();
    assert!(matches!(err, OutboxError::Locked { .. }), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert_eq!(seqs(&outbox), [1]);
}

#[test]
fn outbox_is_send_and_sync_and_usable_from_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Outbox>();

    let dir = crate::tempdir();
    let (outbox, _) = open(&dir.path().join("outbox.redb"), BIG);
    let outbox = std::sync::Arc::new(outbox);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let outbox = outbox.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let seq = append(&outbox, 300);
                    if seq.is_multiple_of(2) {
                        outbox.ack(seq).unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    outbox.flush().unwrap();
    let seqs = seqs(&outbox);
    assert_eq!(seqs.len(), 100);
    assert!(seqs.iter().all(|s| !s.is_multiple_of(2)));
    assert_eq!(outbox.stats().next_seq, 201);
}

#[test]
fn record_too_large_for_the_cap_is_refused_without_using_a_seq() {
    let dir = crate::tempdir();
    let (outbox, _) = open(&dir.path().join("outbox.redb"), 256 * 1024);
    let err = outbox
        .append(1, |seq| payload(seq, 200 * 1024))
        .unwrap_err();
    assert!(matches!(err, OutboxError::RecordTooLarge { .. }), "{err}");
    assert_eq!(append(&outbox, 100), 1);
}

#[test]
fn the_file_and_the_directories_it_creates_are_the_agents_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::tempdir();
    let path = dir.path().join("state/fieldlink/outbox.redb");
    let (outbox, _) = open(&path, BIG);
    drop(outbox);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600, "the outbox holds the plant's data");
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.path().join("state")), 0o700);
}
