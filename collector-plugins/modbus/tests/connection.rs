//! Losing, failing and regaining the connection, and stopping.

use crate::support::*;
use fieldlink_wire::{Quality, Sample, Value};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

fn all_good(batch: &[Sample]) -> bool {
    batch.iter().all(|s| s.quality == Quality::Good)
}

#[tokio::test]
async fn server_restarted_on_the_same_port_is_reconnected_to() {
    bounded(async {
        let mut memory = TestDevice::new();
        memory.set_holding(0, &[11, 12]);
        let device = Arc::new(memory);
        let server = RunningServer::start(Arc::clone(&device), any_port())
            .await
            .expect("server");
        let addr = server.addr;
        let points = vec![holding_u16("a", 0), holding_u16("b", 1)];
        let mut tcp = tcp_device(addr, points);
        tcp.poll = Duration::from_millis(50);
        tcp.timeout = Duration::from_millis(100);
        let mut collecting = Collecting::start(tcp, 64);

        let batch = collecting.batch_where(all_good).await;
        assert_eq!(batch[0].value, Value::Int(11));

        server.stop().await;
        let batch = collecting.batch_where(|b| !all_good(b)).await;
        assert_eq!(
            batch.len(),
            2,
            "every point is reported while the device is away"
        );
        for sample in &batch {
            let error = error(sample).expect("bad");
            assert!(
                error.starts_with("disconnected: ") || error.starts_with("connect failed: "),
                "{error}"
            );
        }
        // Stay away long enough for at least one failed reconnect.
        collecting
            .batch_where(|b| error(&b[0]).is_some_and(|e| e.starts_with("connect failed: ")))
            .await;
        assert!(!collecting.stats.connected.load(Ordering::Relaxed));

        let server = RunningServer::start(device, addr)
            .await
            .expect("restart on the same port");
        let batch = collecting.batch_where(all_good).await;
        assert_eq!(batch[1].value, Value::Int(12));
        let stats = &collecting.stats;
        assert!(stats.connected.load(Ordering::Relaxed));
        assert!(
            stats.reconnects.load(Ordering::Relaxed) >= 2,
            "lost once, failed at least once"
        );
        collecting.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn transport_error_spoils_the_rest_of_the_cycle_only() {
    bounded(async {
        let mut memory = TestDevice::new();
        memory.set_holding(0, &[1]);
        memory.set_holding(50, &[2]);
        memory.set_holding(100, &[3]);
        memory.slow_holding = Some((50, Duration::from_secs(60)));
        let device = Arc::new(memory);
        let server = RunningServer::start(Arc::clone(&device), any_port())
            .await
            .expect("server");
        let points = vec![
            holding_u16("first", 0),
            holding_u16("hung", 50),
            holding_u16("last", 100),
        ];
        let mut tcp = tcp_device(server.addr, points);
        tcp.timeout = Duration::from_secs(5);
        tcp.poll = Duration::from_secs(1);
        let mut collecting = Collecting::start(tcp, 8);

        // The device goes away while the second request waits for its answer.
        while device.requests.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.stop().await;

        let batch = collecting.batch().await;
        let samples = by_point(&batch);
        assert_eq!(
            samples["first"].value,
            Value::Int(1),
            "read before the loss stays good"
        );
        for name in ["hung", "last"] {
            assert_eq!(
                error(samples[name]),
                Some("disconnected: connection closed by the device"),
                "{name}"
            );
        }
        let stats = &collecting.stats;
        assert!(!stats.connected.load(Ordering::Relaxed));
        assert_eq!(
            stats.reconnects.load(Ordering::Relaxed),
            1,
            "the loss counts once"
        );
        assert_eq!(
            stats.read_errors.load(Ordering::Relaxed),
            1,
            "one request failed"
        );
        collecting.stop().await;
    })
    .await;
}

#[tokio::test]
async fn shutdown_interrupts_a_request_in_flight() {
    bounded(async {
        let mut device = TestDevice::new();
        device.set_holding(0, &[1]);
        device.slow_holding = Some((0, Duration::from_secs(30)));
        let server = RunningServer::start(Arc::new(device), any_port())
            .await
            .expect("server");
        let mut tcp = tcp_device(server.addr, vec![holding_u16("a", 0)]);
        tcp.timeout = Duration::from_secs(20);
        let collecting = Collecting::start(tcp, 8);

        tokio::time::sleep(Duration::from_millis(200)).await;
        // `stop` asserts that the collector returns within 500 ms of the cancellation.
        collecting.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn shutdown_interrupts_a_send_blocked_on_a_full_sink() {
    bounded(async {
        let mut device = TestDevice::new();
        device.set_holding(0, &[1]);
        let server = RunningServer::start(Arc::new(device), any_port())
            .await
            .expect("server");
        let mut tcp = tcp_device(server.addr, vec![holding_u16("a", 0)]);
        tcp.poll = Duration::from_millis(10);
        // Capacity one and never drained: the second batch blocks in `send`.
        let collecting = Collecting::start(tcp, 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            collecting.stats.cycles.load(Ordering::Relaxed) >= 2,
            "a send is pending"
        );
        collecting.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn closed_sink_ends_the_collector() {
    bounded(async {
        let mut device = TestDevice::new();
        device.set_holding(0, &[1]);
        let server = RunningServer::start(Arc::new(device), any_port())
            .await
            .expect("server");
        let mut tcp = tcp_device(server.addr, vec![holding_u16("a", 0)]);
        tcp.poll = Duration::from_millis(20);
        let mut collecting = Collecting::start(tcp, 8);
        collecting.batch().await;

        collecting.rx.close();
        collecting.finished(Duration::from_secs(1)).await;
        assert!(!collecting.stats.connected.load(Ordering::Relaxed));
        server.stop().await;
    })
    .await;
}

/// A loopback port nobody listens on: connects to it are refused at once.
fn refused_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind(any_port()).expect("bind a free port");
    listener.local_addr().expect("its address")
}

#[tokio::test(start_paused = true)]
async fn device_down_yields_one_bad_batch_per_poll_and_reconnects_with_backoff() {
    // Paused time: the two minutes below pass in an instant and the counts are exact.
    let mut tcp = tcp_device(
        refused_addr(),
        vec![holding_u16("a", 0), holding_u16("b", 1)],
    );
    tcp.poll = Duration::from_secs(1);
    let mut collecting = Collecting::start(tcp, 256);

    let started = Instant::now();
    for _ in 0..120 {
        let batch = collecting.batch().await;
        assert_eq!(batch.len(), 2, "one bad sample per point per poll");
        for sample in &batch {
            let error = error(sample).expect("bad");
            assert!(error.starts_with("connect failed: "), "{error}");
            assert_eq!(sample.value, Value::None);
        }
    }
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_secs(118)..=Duration::from_secs(120)).contains(&elapsed),
        "120 batches took {elapsed:?}: one per poll period, no flood"
    );
    // Attempts at 0, 1, 2 and 3 s, then further apart: 0.25 s doubling with jitter (half
    // to all of the step), capped at 10 s (so a device that comes back is read within
    // 10 s), gives 12 to 30 attempts in two minutes.
    let stats = &collecting.stats;
    let attempts = stats.reconnects.load(Ordering::Relaxed);
    assert!(
        (12..=30).contains(&attempts),
        "{attempts} attempts in two minutes"
    );
    assert!(!stats.connected.load(Ordering::Relaxed));
    assert_eq!(stats.cycles.load(Ordering::Relaxed), 0, "no read cycle ran");
    collecting.stop().await;
}
