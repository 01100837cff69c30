//! Device-side failures spoil only the request they hit: exceptions, timeouts, units the
//! gateway does not reach.

use crate::support::*;
use fieldlink_wire::{Quality, Value};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test]
async fn exception_02_spoils_only_its_request() {
    bounded(async {
        let mut device = TestDevice::new();
        device.set_holding(0, &[7]);
        device.set_holding(10, &[8]); // 11 is not mapped: reading 10..12 is illegal.
        device.set_holding(20, &[9]);
        let server = RunningServer::start(Arc::new(device), any_port())
            .await
            .expect("server");
        let points = vec![
            holding_u16("good_before", 0),
            holding_u16("mapped_neighbour", 10),
            holding_u16("unmapped", 11),
            holding_u16("good_after", 20),
        ];
        let mut collecting = Collecting::start(tcp_device(server.addr, points), 8);

        for _ in 0..2 {
            let batch = collecting.batch().await;
            let samples = by_point(&batch);
            assert_eq!(samples["good_before"].value, Value::Int(7));
            assert_eq!(samples["good_after"].value, Value::Int(9));
            for name in ["mapped_neighbour", "unmapped"] {
                assert_eq!(
                    error(samples[name]),
                    Some("exception 02 illegal data address"),
                    "{name}"
                );
                assert_eq!(samples[name].value, Value::None);
            }
        }
        let stats = &collecting.stats;
        assert!(stats.read_errors.load(Ordering::Relaxed) >= 2);
        assert!(
            stats.connected.load(Ordering::Relaxed),
            "an exception keeps the connection"
        );
        assert_eq!(stats.reconnects.load(Ordering::Relaxed), 0);
        collecting.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn timeout_spoils_only_its_request_and_the_late_answer_is_dropped() {
    bounded(async {
        let mut device = TestDevice::new();
        device.set_holding(0, &[1]);
        device.set_holding(50, &[2]);
        device.set_holding(100, &[3]);
        // Answered 150 ms late with a 100 ms timeout: the answer arrives while the next
        // request is waiting for its own.
        device.slow_holding = Some((50, Duration::from_millis(150)));
        let server = RunningServer::start(Arc::new(device), any_port())
            .await
            .expect("server");
        let points = vec![
            holding_u16("before", 0),
            holding_u16("slow", 50),
            holding_u16("after", 100),
        ];
        let mut tcp = tcp_device(server.addr, points);
        tcp.timeout = Duration::from_millis(100);
        tcp.poll = Duration::from_millis(400);
        let mut collecting = Collecting::start(tcp, 8);

        for cycle in 0..3 {
            let batch = collecting.batch().await;
            let samples = by_point(&batch);
            assert_eq!(samples["before"].value, Value::Int(1), "cycle {cycle}");
            assert_eq!(error(samples["slow"]), Some("timeout"), "cycle {cycle}");
            assert_eq!(
                samples["after"].quality,
                Quality::Good,
                "cycle {cycle}: {batch:?}"
            );
            assert_eq!(samples["after"].value, Value::Int(3), "cycle {cycle}");
            assert!(
                samples["slow"].ts - samples["before"].ts >= 90,
                "cycle {cycle}: a timeout is stamped when it expired"
            );
            assert!(samples["after"].ts >= samples["slow"].ts);
        }
        let stats = &collecting.stats;
        assert_eq!(
            stats.reconnects.load(Ordering::Relaxed),
            0,
            "a timeout keeps the connection"
        );
        assert!(stats.connected.load(Ordering::Relaxed));
        assert!(stats.read_errors.load(Ordering::Relaxed) >= 3);
        collecting.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn unit_behind_the_gateway_that_does_not_answer_is_exception_0b() {
    bounded(async {
        let mut device = TestDevice::new();
        device.set_holding(0, &[5]);
        let server = RunningServer::start(Arc::new(device), any_port())
            .await
            .expect("server");
        let mut tcp = tcp_device(server.addr, vec![holding_u16("a", 0), holding_u16("b", 9)]);
        tcp.unit = 7;
        let mut collecting = Collecting::start(tcp, 8);

        let batch = collecting.batch().await;
        assert_eq!(batch.len(), 2);
        for sample in &batch {
            assert_eq!(
                error(sample),
                Some("exception 0B gateway target device failed to respond")
            );
        }
        assert!(collecting.stats.connected.load(Ordering::Relaxed));
        collecting.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn silent_unit_times_out_while_another_device_on_the_gateway_reads_fine() {
    bounded(async {
        let mut device = TestDevice::new();
        device.set_holding(0, &[5]);
        device.silent_for_unknown_units = true;
        let server = RunningServer::start(Arc::new(device), any_port())
            .await
            .expect("server");

        let mut silent = tcp_device(server.addr, vec![holding_u16("a", 0)]);
        silent.unit = 9;
        silent.timeout = Duration::from_millis(80);
        let mut silent = Collecting::start(silent, 8);
        let mut healthy = Collecting::start(tcp_device(server.addr, vec![holding_u16("a", 0)]), 8);

        for _ in 0..3 {
            let batch = silent.batch().await;
            assert_eq!(error(&batch[0]), Some("timeout"));
            let batch = healthy.batch().await;
            assert_eq!(batch[0].value, Value::Int(5));
        }
        assert_eq!(silent.stats.reconnects.load(Ordering::Relaxed), 0);
        silent.stop().await;
        healthy.stop().await;
        server.stop().await;
    })
    .await;
}
