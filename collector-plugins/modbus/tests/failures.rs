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
        // Answered 750 ms late with a 500 ms timeout: the answer arrives while the next
        // request is waiting for its own. (Margins of hundreds of milliseconds, so that a
        // loaded CI machine does not time out the prompt answers too.)
        device.slow_holding = Some((50, Duration::from_millis(750)));
        let server = RunningServer::start(Arc::new(device), any_port())
            .await
            .expect("server");
        let points = vec![
            holding_u16("before", 0),
            holding_u16("slow", 50),
            holding_u16("after", 100),
        ];
        let mut tcp = tcp_device(server.addr, points);
        tcp.timeout = Duration::from_millis(500);
        tcp.poll = Duration::from_millis(1200);
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
                samples["slow"].ts - samples["before"].ts >= 450,
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

#[tokio::test]
async fn exception_01_says_the_device_does_not_support_the_read() {
    bounded(async {
        let mut device = TestDevice::new();
        device.set_holding(0, &[1]);
        device.set_input(0, &[2]);
        device.unsupported = vec![fieldlink_collector_api::Area::Input];
        let server = RunningServer::start(Arc::new(device), any_port())
            .await
            .expect("server");
        let input = point(
            "input",
            fieldlink_collector_api::Area::Input,
            0,
            fieldlink_collector_api::DataType::U16,
            fieldlink_collector_api::WordOrder::Abcd,
        );
        let points = vec![holding_u16("holding", 0), input];
        let mut collecting = Collecting::start(tcp_device(server.addr, points), 8);
        let batch = collecting.batch().await;
        let samples = by_point(&batch);
        assert_eq!(samples["holding"].value, Value::Int(1));
        assert_eq!(
            error(samples["input"]),
            Some("exception 01 illegal function: the device does not support this read")
        );
        assert_eq!(collecting.stats.reconnects.load(Ordering::Relaxed), 0);
        collecting.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn units_0_and_255_are_read_from_tcp_gateways() {
    bounded(async {
        let mut device = TestDevice::new();
        device.units = vec![0, 255];
        device.set_holding(0, &[42]);
        let device = Arc::new(device);
        let server = RunningServer::start(Arc::clone(&device), any_port())
            .await
            .expect("server");
        for unit in [0, 255] {
            let mut tcp = tcp_device(server.addr, vec![holding_u16("a", 0)]);
            tcp.unit = unit;
            let mut collecting = Collecting::start(tcp, 8);
            let batch = collecting.batch().await;
            assert_eq!(batch[0].value, Value::Int(42), "unit {unit}: {batch:?}");
            assert_eq!(device.requests_for(unit), 1);
            collecting.stop().await;
        }
        server.stop().await;
    })
    .await;
}

/// An MBAP answer to `request` (a 12-byte read request) carrying `pdu`.
fn mbap_answer(request: &[u8], pdu: &[u8]) -> Vec<u8> {
    let mut bytes = request[..4].to_vec();
    let length = u16::try_from(pdu.len() + 1).expect("short pdu");
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.push(request[6]);
    bytes.extend_from_slice(pdu);
    bytes
}

#[tokio::test]
async fn an_answer_with_a_wrong_byte_count_is_bad_and_recycles_the_connection() {
    bounded(async {
        // The byte count says 4 registers (8 bytes) but the frame carries one.
        let server =
            ScriptedServer::start(12, |request| mbap_answer(request, &[0x03, 8, 0x00, 0x2A])).await;
        let mut collecting =
            Collecting::start(tcp_device(server.addr, vec![holding_u16("a", 0)]), 8);
        for _ in 0..2 {
            let batch = collecting.batch().await;
            let error = error(&batch[0]).expect("bad");
            assert!(
                error.starts_with("malformed answer: ") && error.ends_with("; connection recycled"),
                "{error}"
            );
        }
        assert!(
            server.connections.load(Ordering::SeqCst) >= 2,
            "reconnected"
        );
        collecting.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_answer_of_the_wrong_quantity_is_bad_and_recycles_the_connection() {
    bounded(async {
        // A consistent frame, but one register where two were asked for.
        let server =
            ScriptedServer::start(12, |request| mbap_answer(request, &[0x03, 2, 0x00, 0x2A])).await;
        let points = vec![holding_u16("a", 0), holding_u16("b", 1)];
        let mut collecting = Collecting::start(tcp_device(server.addr, points), 8);
        let batch = collecting.batch().await;
        for sample in &batch {
            assert_eq!(
                error(sample),
                Some("malformed answer: 1 registers for a request of 2; connection recycled")
            );
        }
        collecting.batch().await;
        assert!(
            server.connections.load(Ordering::SeqCst) >= 2,
            "reconnected"
        );
        assert!(collecting.stats.reconnects.load(Ordering::Relaxed) >= 1);
        collecting.stop().await;
    })
    .await;
}

#[tokio::test]
async fn tcp_retries_repeat_a_timeout_but_never_an_exception() {
    bounded(async {
        let mut device = TestDevice::new();
        device.set_holding(0, &[1]);
        device.slow_holding = Some((0, Duration::from_millis(300)));
        let device = Arc::new(device);
        let server = RunningServer::start(Arc::clone(&device), any_port())
            .await
            .expect("server");
        let mut tcp = tcp_device(server.addr, vec![holding_u16("slow", 0)]);
        tcp.timeout = Duration::from_millis(50);
        tcp.retries = 2;
        tcp.poll = Duration::from_secs(10);
        let mut collecting = Collecting::start(tcp, 8);
        let batch = collecting.batch().await;
        assert_eq!(error(&batch[0]), Some("timeout"));
        // The server answers one request at a time, so it sees the retries late.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while device.requests.load(Ordering::SeqCst) < 3 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            device.requests.load(Ordering::SeqCst),
            3,
            "the request and two retries"
        );
        collecting.stop().await;

        let before = device.requests.load(Ordering::SeqCst);
        let mut tcp = tcp_device(server.addr, vec![holding_u16("unmapped", 9)]);
        tcp.retries = 2;
        tcp.poll = Duration::from_secs(10);
        let mut collecting = Collecting::start(tcp, 8);
        let batch = collecting.batch().await;
        assert_eq!(error(&batch[0]), Some("exception 02 illegal data address"));
        assert_eq!(
            device.requests.load(Ordering::SeqCst) - before,
            1,
            "an exception is not retried"
        );
        collecting.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn max_registers_and_bits_per_request_are_honoured_on_the_wire() {
    bounded(async {
        let mut device = TestDevice::new();
        device.set_holding(0, &[5; 20]);
        for a in 0..40 {
            device.coils.insert(a, a % 2 == 0);
        }
        let device = Arc::new(device);
        let server = RunningServer::start(Arc::clone(&device), any_port())
            .await
            .expect("server");
        let mut points: Vec<_> = (0..20).map(|a| holding_u16(&format!("r{a}"), a)).collect();
        points.extend((0..40).map(|a| {
            point(
                &format!("c{a}"),
                fieldlink_collector_api::Area::Coil,
                a,
                fieldlink_collector_api::DataType::Bool,
                fieldlink_collector_api::WordOrder::Abcd,
            )
        }));
        let mut tcp = tcp_device(server.addr, points);
        tcp.limits.max_registers = 8;
        tcp.limits.max_bits = 16;
        tcp.poll = Duration::from_secs(10);
        let mut collecting = Collecting::start(tcp, 8);
        let batch = collecting.batch().await;
        assert!(
            batch.iter().all(|s| s.quality == Quality::Good),
            "{batch:?}"
        );
        // 20 registers in 8 + 8 + 4, 40 coils in 16 + 16 + 8.
        assert_eq!(device.requests.load(Ordering::SeqCst), 6);
        assert_eq!(device.largest_quantity.load(Ordering::SeqCst), 16);
        collecting.stop().await;
        server.stop().await;
    })
    .await;
}
