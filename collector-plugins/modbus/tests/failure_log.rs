//! A device that keeps failing is logged when it stops answering, summarized once per
//! interval, and logged when it answers again: never a line per failed read or retry.

use crate::support::*;
use fieldlink_collector_api::DeviceStats;
use fieldlink_modbus::{ModbusRtuCollector, ModbusTcpCollector};
use fieldlink_testkit::LogCapture;
use fieldlink_wire::Quality;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// The summary interval of these tests (5 minutes in the agent).
const SUMMARY: Duration = Duration::from_millis(800);

/// The number after `key=` in `line`.
fn count(line: &str, key: &str) -> u64 {
    let at = line.find(&format!("{key}=")).expect(key) + key.len() + 1;
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("a count")
}

/// Stats whose failure summaries come every [`SUMMARY`].
fn fast_summaries() -> DeviceStats {
    DeviceStats {
        failure_summary: SUMMARY,
        ..DeviceStats::default()
    }
}

/// Checks the lines of one outage of `outage` that ended: one at its start, a summary per
/// interval with counts, one at its end; returns the end's line.
fn assert_one_outage(captured: &LogCapture, outage: Duration, first_error: &str) -> String {
    let down = captured.lines_with("device not answering");
    assert_eq!(down.len(), 1, "{down:#?}");
    assert!(down[0].contains("WARN"), "{}", down[0]);
    assert!(down[0].contains(first_error), "{}", down[0]);

    let summaries = captured.lines_with("device still not answering");
    let most = (outage.as_millis() / SUMMARY.as_millis()) as usize + 1;
    assert!(
        !summaries.is_empty() && summaries.len() <= most,
        "{} summaries in {outage:?}: {summaries:#?}",
        summaries.len()
    );
    for summary in &summaries {
        assert!(
            summary.contains("WARN") && summary.contains("down_for="),
            "{summary}"
        );
        assert!(summary.contains("last_error="), "{summary}");
        let _ = count(summary, "failed_reads");
        let _ = count(summary, "reconnect_attempts");
    }

    let up = captured.lines_with("device answers again");
    assert_eq!(up.len(), 1, "{up:#?}");
    assert!(
        up[0].contains("INFO") && up[0].contains("down_for="),
        "{}",
        up[0]
    );
    up[0].clone()
}

/// A Modbus TCP device whose port is closed: one line when it is found dead, summaries
/// with the reconnect attempts, one line when a server appears on its port.
#[tokio::test]
async fn a_dead_tcp_device_is_logged_on_change_and_summarized_not_per_retry() {
    bounded(async {
        let captured = LogCapture::default();
        let _guard = captured.install();
        let port = std::net::TcpListener::bind(any_port()).expect("bind");
        let addr = port.local_addr().expect("addr");
        drop(port); // a real dead device: connections are refused
        let mut device = tcp_device(addr, vec![holding_u16("speed", 0)]);
        device.poll = Duration::from_millis(20);
        let collector = Box::new(ModbusTcpCollector::new(device));
        let mut collecting = Collecting::run_with_stats(collector, 1024, fast_summaries());

        let started = Instant::now();
        let mut bad_cycles = 0;
        while started.elapsed() < Duration::from_millis(2500) {
            let batch = collecting.batch().await;
            assert!(batch.iter().all(|s| s.quality != Quality::Good));
            bad_cycles += 1;
        }
        let mut memory = TestDevice::new();
        memory.set_holding(0, &[42]);
        let server = RunningServer::start(Arc::new(memory), addr)
            .await
            .expect("a server on the dead device's port");
        collecting
            .batch_where(|b| b.iter().all(|s| s.quality == Quality::Good))
            .await;
        let outage = started.elapsed();

        let up = assert_one_outage(&captured, outage, "error=connect failed:");
        // The counts are the device's own counters (read after the line, so perhaps higher).
        let logged = count(&up, "reconnect_attempts");
        let attempts = collecting.stats.reconnects.load(Ordering::Relaxed);
        assert!(
            (3..=attempts).contains(&logged),
            "{logged} of {attempts}: {up}"
        );
        let warns = captured.lines_with("WARN").len();
        assert!(
            bad_cycles > 40 && warns * 5 < bad_cycles,
            "{warns} warnings for {bad_cycles} failed cycles"
        );
        assert!(
            captured.lines_with("device answers").len() == 1,
            "a device that never answered has no first-answer line, only the recovery"
        );
        collecting.stop().await;
        server.stop().await;
    })
    .await;
}

/// A dead slave on a live RTU bus: one line when it goes silent, summaries, one line when
/// it answers again; its probes are not each logged.
#[tokio::test]
async fn a_dead_rtu_slave_is_logged_on_change_and_summarized_not_per_probe() {
    bounded(async {
        let captured = LogCapture::default();
        let _guard = captured.install();
        let mut memory = TestDevice::new();
        memory.set_holding(0, &[42]);
        memory.units = vec![1];
        memory.silent_for_unknown_units = true;
        let memory = Arc::new(memory);
        let server = RunningServer::start_rtu_over_tcp(Arc::clone(&memory))
            .await
            .expect("server");
        let mut device = rtu_device(
            "dosing",
            rtu_tcp(server.addr),
            2,
            vec![holding_u16("speed", 0)],
        );
        device.poll = Duration::from_millis(20);
        let collector = Box::new(ModbusRtuCollector::new(device));
        let mut collecting = Collecting::run_with_stats(collector, 1024, fast_summaries());

        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(2500) {
            let batch = collecting.batch().await;
            assert!(batch.iter().all(|s| s.quality != Quality::Good));
        }
        memory.set_answering(1, true);
        memory.set_answering(2, true);
        collecting
            .batch_where(|b| b.iter().all(|s| s.quality == Quality::Good))
            .await;
        let outage = started.elapsed();

        let up = assert_one_outage(&captured, outage, "error=timeout");
        assert!(
            up.contains("unit 2"),
            "the peer names the bus and unit: {up}"
        );
        let logged = count(&up, "failed_reads");
        let failed = collecting.stats.read_errors.load(Ordering::Relaxed);
        assert!((1..=failed).contains(&logged), "{logged} of {failed}: {up}");
        collecting.stop().await;
        server.stop().await;
    })
    .await;
}
