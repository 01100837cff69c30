//! Record states: pending, sent (awaiting the platform's ack), deleted once covered.

use std::time::{Duration, Instant};

use fieldlink_outbox::PlatformAck;

use crate::{BIG, append, open, seqs, tempdir};

fn unsent(outbox: &fieldlink_outbox::Outbox) -> Vec<u64> {
    let records = outbox.unsent(0, u64::MAX, usize::MAX).expect("read");
    records.into_iter().map(|r| r.seq).collect()
}

/// A sent record stays until an ack covers it; one listed missing, or not covered in time,
/// is pending again; a restart makes every record pending.
#[test]
fn sent_records_are_deleted_only_when_covered_and_come_back_when_missing_or_late() {
    let dir = tempdir();
    let path = dir.path().join("o.redb");
    let (outbox, _) = open(&path, BIG);
    for _ in 0..8 {
        append(&outbox, 100);
    }
    let t0 = Instant::now();
    for seq in 1..=6 {
        assert!(outbox.mark_sent(seq, t0).unwrap());
    }
    assert_eq!(unsent(&outbox), vec![7, 8]);
    assert_eq!(outbox.stats().awaiting_ack_batches, 6);
    assert_eq!(outbox.stats().oldest_awaiting_ack_since, Some(t0));

    // Stored through 2, 3 missing, 4 and 5 stored behind the gap (stored_max), 6 unknown.
    let later = t0 + Duration::from_secs(1);
    let outcome = outbox
        .apply_ack(
            &PlatformAck {
                stored_through: 2,
                missing: &[(3, 3)],
                stored_max: Some(5),
            },
            later,
        )
        .unwrap();
    assert_eq!(outcome.deleted_batches, 4);
    assert_eq!(outcome.returned, vec![3]);
    assert_eq!(seqs(&outbox), vec![3, 6, 7, 8]);
    assert_eq!(unsent(&outbox), vec![3, 7, 8]);
    assert_eq!(outbox.unsent(4, 8, 10).unwrap().len(), 1, "only 7 in 4..8");

    // A missing record marked sent after the ack's cut-off stays sent: it may be on its way.
    outbox.mark_sent(3, later).unwrap();
    let outcome = outbox
        .apply_ack(
            &PlatformAck {
                stored_through: 2,
                missing: &[(3, 3)],
                stored_max: None,
            },
            later,
        )
        .unwrap();
    assert_eq!(outcome, Default::default());

    // 6 (sent at t0) times out; 3 (sent later) does not yet.
    assert_eq!(outbox.expire_sent(later), vec![6]);
    assert_eq!(unsent(&outbox), vec![6, 7, 8]);

    // The sent state is memory only.
    drop(outbox);
    let (outbox, _) = open(&path, BIG);
    assert_eq!(unsent(&outbox), vec![3, 6, 7, 8]);
    assert_eq!(outbox.stats().awaiting_ack_batches, 0);
}
