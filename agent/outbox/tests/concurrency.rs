//! Calls from many threads at once, as the agent's batcher and publisher make them.

use fieldlink_outbox::OutboxStats;

use crate::{BIG, append, open};

/// Regression: each call stored its stats snapshot after releasing the outbox's lock, so a
/// slower thread's older snapshot could overwrite a newer one: `stats()` went backwards and,
/// with everything acked, could still show a batch (the agent then waited out its whole
/// `shutdown_timeout` for it).
#[test]
fn stats_never_go_backwards_under_concurrent_appends_and_acks() {
    // More threads than cores, and a yield after every call: a thread preempted between a
    // call and its snapshot is what the old code got wrong.
    const THREADS: u64 = 16;
    const ROUNDS: u64 = 1000;
    let dir = crate::tempdir();
    let (outbox, _) = open(&dir.path().join("outbox.redb"), BIG);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                let mut seen = outbox.stats();
                for _ in 0..ROUNDS {
                    let seq = append(&outbox, 64);
                    std::thread::yield_now();
                    seen = newer(&seen, outbox.stats(), seq, "append");
                    outbox.ack(seq).expect("ack");
                    std::thread::yield_now();
                    seen = newer(&seen, outbox.stats(), seq, "ack");
                }
            });
        }
    });
    let stats = outbox.stats();
    assert_eq!(
        (stats.batches, stats.samples, stats.payload_bytes),
        (0, 0, 0),
        "everything was acked: {stats:?}"
    );
    assert_eq!(stats.next_seq, THREADS * ROUNDS + 1, "{stats:?}");
}

/// `now`, after checking that it reflects this thread's call for `seq` (which has returned)
/// and that no counter that only grows went down since `seen`.
fn newer(seen: &OutboxStats, now: OutboxStats, seq: u64, call: &str) -> OutboxStats {
    assert!(
        now.next_seq > seq,
        "after the {call} of seq {seq} returned, stats show next_seq {}",
        now.next_seq
    );
    assert!(
        now.next_seq >= seen.next_seq && now.appended_bytes_total >= seen.appended_bytes_total,
        "stats went backwards after the {call} of seq {seq}: next_seq {} -> {}, appended bytes {} -> {}",
        seen.next_seq,
        now.next_seq,
        seen.appended_bytes_total,
        now.appended_bytes_total
    );
    now
}
