//! An informal throughput figure (run with `cargo test --release -p fieldlink-outbox -- --ignored
//! --nocapture`); the benchmarks proper live in bench/.

use std::time::Instant;

use crate::open;

#[test]
#[ignore = "prints a figure; run in release"]
fn append_ack_throughput_1k_payloads_flush_every_1000() {
    // On the real disk, not tmpfs: the flushes' fsyncs are part of the figure.
    let dir = tempfile::tempdir().unwrap();
    let (outbox, _) = open(&dir.path().join("outbox.redb"), 1 << 30);
    let payload = vec![0x42u8; 1024];
    let n = 200_000u64;
    // Acks trail appends by 100 records, as PUBACKs trail publishes.
    let started = Instant::now();
    for i in 1..=n {
        let seq = outbox.append(10, |_| payload.clone()).unwrap();
        if seq > 100 {
            outbox.ack(seq - 100).unwrap();
        }
        if i % 1000 == 0 {
            outbox.flush().unwrap();
        }
    }
    outbox.flush().unwrap();
    let elapsed = started.elapsed();
    let stats = outbox.stats();
    println!(
        "append+ack of 1 KiB, flush every 1000: {n} in {:.2} s = {:.0} records/s ({:.1} MB/s); file {} KiB",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        n as f64 * 1024.0 / elapsed.as_secs_f64() / 1e6,
        stats.file_bytes / 1024
    );

    // Backlog: append only (an outage), then drain oldest first.
    let started = Instant::now();
    for i in 1..=n {
        outbox.append(10, |_| payload.clone()).unwrap();
        if i % 1000 == 0 {
            outbox.flush().unwrap();
        }
    }
    let fill = started.elapsed();
    let started = Instant::now();
    let mut from = 0;
    loop {
        let batch = outbox.oldest(from, 100).unwrap();
        let Some(last) = batch.last() else { break };
        from = last.seq + 1;
        for r in &batch {
            outbox.ack(r.seq).unwrap();
        }
        outbox.flush().unwrap();
    }
    let drain = started.elapsed();
    println!(
        "backlog of {n}: fill {:.0} records/s, drain (read 100, ack, flush) {:.0} records/s; file {} MiB",
        n as f64 / fill.as_secs_f64(),
        n as f64 / drain.as_secs_f64(),
        outbox.stats().file_bytes >> 20
    );
}

#[test]
#[ignore = "prints figures; run in release"]
fn utilization_of_full_stores_at_realistic_caps() {
    for (cap, len) in [
        (16u64 << 20, 1024usize),
        (100 << 20, 1024),
        (100 << 20, 20_000),
        (256 << 20, 8_000),
    ] {
        let dir = crate::tempdir();
        let path = dir.path().join("outbox.redb");
        let (outbox, _) = open(&path, cap);
        let payload = vec![0x42u8; len];
        let n = cap * 3 / 2 / len as u64;
        let started = Instant::now();
        for i in 1..=n {
            outbox.append(10, |_| payload.clone()).unwrap();
            if i % 200 == 0 {
                outbox.flush().unwrap();
            }
            let file = outbox.stats().file_bytes;
            assert!(file <= cap, "file {file} > cap {cap}");
        }
        let stats = outbox.stats();
        let du = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&path).unwrap().blocks() * 512
        };
        println!(
            "cap {} MiB, {len}-byte payloads: file {:.1} MiB ({}% of cap; {:.1} MiB on disk), payload {:.1} MiB ({}% of cap), evicted {}, {:.1} s",
            cap >> 20,
            stats.file_bytes as f64 / (1 << 20) as f64,
            stats.file_bytes * 100 / cap,
            du as f64 / (1 << 20) as f64,
            stats.payload_bytes as f64 / (1 << 20) as f64,
            stats.payload_bytes * 100 / cap,
            stats.evicted_batches,
            started.elapsed().as_secs_f64()
        );
    }
}
