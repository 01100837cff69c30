use fieldlink_outbox::CrashWindow;

use crate::{BIG, all, append, crash, open, seqs};

#[test]
fn flushed_records_survive_a_drop_and_reopen() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    let (outbox, _) = open(&path, BIG);
    for _ in 0..20 {
        append(&outbox, 1024);
    }
    outbox.flush().unwrap();
    let before = all(&outbox);
    drop(outbox);

    let (outbox, report) = open(&path, BIG);
    assert_eq!(report.pending_batches, 20);
    assert_eq!(report.next_seq, 21, "a clean close leaves no gap");
    assert_eq!(all(&outbox), before);
}

#[test]
fn a_clean_drop_without_flush_keeps_everything() {
    // redb makes pending non-durable commits durable when the database is dropped cleanly.
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    let (outbox, _) = open(&path, BIG);
    for _ in 0..5 {
        append(&outbox, 100);
    }
    outbox.ack(2).unwrap();
    drop(outbox);
    let (outbox, report) = open(&path, BIG);
    assert_eq!(seqs(&outbox), [1, 3, 4, 5]);
    assert_eq!(report.next_seq, 6);
}

#[test]
fn a_crash_rolls_back_to_the_last_flush_exactly() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    let (outbox, _) = open(&path, BIG);
    for _ in 0..10 {
        append(&outbox, 600);
    }
    outbox.ack(4).unwrap();
    outbox.flush().unwrap();
    let flushed = all(&outbox);
    // Visible at once, but not durable: appends, and an ack.
    for _ in 0..5 {
        append(&outbox, 600);
    }
    outbox.ack(1).unwrap();
    assert_eq!(outbox.stats().batches, 13);

    let copy = crash(outbox, &path, 1);
    let (outbox, report) = open(&copy, BIG);
    assert_eq!(all(&outbox), flushed, "exactly the flushed state");
    assert_eq!(report.pending_batches, 9);
    // Seqs 11..=15 were visible (and may have been published) before the crash: never reused.
    assert!(report.next_seq > 15, "next_seq {}", report.next_seq);
    let seq = append(&outbox, 10);
    assert!(seq > 15);
}

#[test]
fn seq_is_monotonic_across_reopen_after_acking_everything() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    let (outbox, _) = open(&path, BIG);
    for _ in 0..7 {
        let seq = append(&outbox, 50);
        outbox.ack(seq).unwrap();
    }
    assert_eq!(outbox.stats().batches, 0);
    drop(outbox);
    let (outbox, report) = open(&path, BIG);
    assert_eq!(report.next_seq, 8);
    assert_eq!(append(&outbox, 50), 8);
}

#[test]
fn seq_is_monotonic_across_many_crashes() {
    let dir = crate::tempdir();
    let mut path = dir.path().join("outbox.redb");
    let mut highest = 0;
    for round in 0..5 {
        let (outbox, report) = open(&path, BIG);
        assert!(
            report.next_seq > highest,
            "round {round}: {} <= {highest}",
            report.next_seq
        );
        for i in 0..30 {
            highest = append(&outbox, 200);
            if i == 10 {
                outbox.flush().unwrap();
            }
        }
        path = crash(outbox, &path, round);
    }
}

#[test]
fn reservation_gap_after_a_crash_is_bounded() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    let (outbox, _) = open(&path, BIG);
    for _ in 0..3 {
        append(&outbox, 10);
    }
    let copy = crash(outbox, &path, 0);
    let (_, report) = open(&copy, BIG);
    // The first append reserved seqs up to 1 + 1024.
    assert!(
        report.next_seq > 3 && report.next_seq <= 1 + 1 + 1024,
        "{}",
        report.next_seq
    );
}

/// Regression (crash-reserved seqs): the open after a crash names the numbers it skips, from
/// the durable `next_seq` to the `seq` it resumes at; the opens after it name none.
#[test]
fn the_open_after_a_crash_reports_the_skipped_seqs_and_a_clean_reopen_none() {
    let dir = crate::tempdir();
    let path = dir.path().join("outbox.redb");
    let (outbox, report) = open(&path, BIG);
    assert_eq!(report.resumed_after_crash, None, "a new store");
    // The first append reserves seqs up to 2 + 1024, durably.
    for _ in 0..5 {
        append(&outbox, 100);
    }
    outbox.flush().unwrap();
    // 6..=8: handed out (and perhaps published), not durable.
    for _ in 0..3 {
        append(&outbox, 100);
    }
    let copy = crash(outbox, &path, 0);

    let (outbox, report) = open(&copy, BIG);
    let window = CrashWindow {
        durable_seq: 6,
        resumed_seq: 2 + 1024,
    };
    assert_eq!(report.resumed_after_crash, Some(window));
    assert_eq!(report.next_seq, window.resumed_seq);
    // Another crash before any append: the open that reported the window lowered the
    // reservation, so the next open reports none and numbering goes on where it resumed.
    let again = crash(outbox, &copy, 1);
    let (outbox, report) = open(&again, BIG);
    assert_eq!(report.resumed_after_crash, None);
    assert_eq!(append(&outbox, 100), window.resumed_seq);
    drop(outbox);

    let (_, report) = open(&again, BIG);
    assert_eq!(
        report.resumed_after_crash, None,
        "a clean close leaves no gap"
    );
}
