//! Modbus RTU: framing against tokio-modbus's RTU-over-TCP server, the serial path through
//! a pseudo-terminal pair, and a bus whose silent slave must not slow its neighbours.

use crate::support::*;
use fieldlink_collector_api::{Area, DataType, WordOrder};
use fieldlink_modbus::{BusLink, DataBits, Parity, SerialLine, StopBits};
use fieldlink_wire::{Quality, Sample, Value};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A device answering units 1 to 4 with a few known registers, silent for the others.
fn four_slaves() -> TestDevice {
    let mut device = TestDevice::new();
    device.units = vec![1, 2, 3, 4];
    device.silent_for_unknown_units = true;
    device.set_holding(0, &[0x42F6, 0xE979, 7]); // 123.456f32, then 7
    device.set_input(0, &[0xFFFE]);
    device.coils.insert(0, true);
    device.coils.insert(1, false);
    device
}

fn points() -> Vec<fieldlink_modbus::PointSpec> {
    vec![
        point("f32", Area::Holding, 0, DataType::F32, WordOrder::Abcd),
        holding_u16("seven", 2),
        point("i16", Area::Input, 0, DataType::I16, WordOrder::Abcd),
        point("coil0", Area::Coil, 0, DataType::Bool, WordOrder::Abcd),
        point("coil1", Area::Coil, 1, DataType::Bool, WordOrder::Abcd),
    ]
}

fn assert_known_values(batch: &[Sample]) {
    let samples = by_point(batch);
    assert_eq!(samples["f32"].value, Value::Float(123.456), "{batch:?}");
    assert_eq!(samples["seven"].value, Value::Int(7));
    assert_eq!(samples["i16"].value, Value::Int(-2));
    assert_eq!(samples["coil0"].value, Value::Bool(true));
    assert_eq!(samples["coil1"].value, Value::Bool(false));
}

#[tokio::test]
async fn rtu_framing_over_tcp_reads_registers_and_bits() {
    bounded(async {
        let device = Arc::new(four_slaves());
        let server = RunningServer::start_rtu_over_tcp(Arc::clone(&device))
            .await
            .expect("server");
        let rtu = rtu_device("meter-2", rtu_tcp(server.addr), 2, points());
        let mut collecting = Collecting::start_rtu(rtu, 8);
        for _ in 0..3 {
            let batch = collecting.batch().await;
            assert_eq!(batch.len(), 5, "one sample per point");
            assert_known_values(&batch);
            assert!(batch.iter().all(|s| &*s.device == "meter-2"));
        }
        assert!(device.requests_for(2) >= 9, "three requests a cycle");
        assert_eq!(device.requests_for(1), 0, "only unit 2 is asked");
        assert!(collecting.stats.connected.load(Ordering::Relaxed));
        assert!(collecting.stats.cycles.load(Ordering::Relaxed) >= 3);
        collecting.stop().await;
        server.stop().await;
    })
    .await;
}

/// The intervals between a point's consecutive samples, in ms.
fn intervals(timestamps: &[i64]) -> Vec<i64> {
    timestamps.windows(2).map(|w| w[1] - w[0]).collect()
}

fn median(values: &mut [i64]) -> i64 {
    values.sort_unstable();
    values[values.len() / 2]
}

#[tokio::test]
async fn five_slaves_one_silent_the_other_four_keep_their_poll_rate() {
    bounded(async {
        let device = Arc::new(four_slaves());
        let server = RunningServer::start_rtu_over_tcp(Arc::clone(&device))
            .await
            .expect("server");
        let poll = Duration::from_millis(200);
        let link = rtu_tcp(server.addr);
        let mut buses: Vec<(u8, Collecting)> = (1..=5)
            .map(|unit| {
                let mut rtu = rtu_device(&format!("slave-{unit}"), link.clone(), unit, points());
                rtu.poll = poll;
                rtu.timeout = Duration::from_millis(100);
                (unit, Collecting::start_rtu(rtu, 256))
            })
            .collect();

        // Three seconds: fifteen polls.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut report = Vec::new();
        for (unit, collecting) in &mut buses {
            let mut batches = Vec::new();
            while let Ok(batch) = collecting.rx.try_recv() {
                batches.push(batch);
            }
            let ts: Vec<i64> = batches.iter().map(|b| b[0].ts).collect();
            let mut gaps = intervals(&ts);
            let median_gap = median(&mut gaps);
            report.push(format!(
                "unit {unit}: {} batches, median interval {median_gap} ms, intervals {gaps:?}",
                batches.len()
            ));
            if *unit == 5 {
                for batch in &batches {
                    assert_eq!(batch.len(), 5, "one bad sample per point per poll");
                    assert!(batch.iter().all(|s| error(s) == Some("timeout")));
                }
                assert!(
                    (12..=16).contains(&batches.len()),
                    "the silent slave is reported at its poll rate: {report:?}"
                );
            } else {
                for batch in &batches {
                    assert_known_values(batch);
                }
                assert!(
                    (12..=16).contains(&batches.len()),
                    "unit {unit} kept its rate: {report:?}"
                );
                let poll_ms = i64::try_from(poll.as_millis()).expect("ms");
                assert!(
                    (median_gap - poll_ms).abs() <= poll_ms / 5,
                    "unit {unit}: median interval within 20% of the poll: {report:?}"
                );
            }
        }
        // Without backoff the silent slave would be asked fifteen times; with it, its
        // probes come after 1-2, 2-4 and 4-8 polls.
        let probes = device.requests_for(5);
        assert!(
            (2..=6).contains(&probes),
            "{probes} probes of the silent slave"
        );
        println!("five-slave bus, poll 200 ms, unit 5 silent:");
        for line in &report {
            println!("  {line}");
        }
        println!("  unit 5 probed {probes} times in 3 s");
        for (_, collecting) in buses {
            collecting.stop().await;
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_silent_slave_that_answers_again_is_read_again() {
    bounded(async {
        let mut memory = four_slaves();
        memory.units = vec![1];
        let device = Arc::new(memory);
        let server = RunningServer::start_rtu_over_tcp(Arc::clone(&device))
            .await
            .expect("server");
        let mut rtu = rtu_device("late", rtu_tcp(server.addr), 3, points());
        rtu.timeout = Duration::from_millis(50);
        let mut collecting = Collecting::start_rtu(rtu, 256);
        let batch = collecting.batch().await;
        assert!(batch.iter().all(|s| error(s) == Some("timeout")));
        assert!(!collecting.stats.connected.load(Ordering::Relaxed));

        device.set_answering(3, true);
        let batch = collecting
            .batch_where(|b| b.iter().all(|s| s.quality == Quality::Good))
            .await;
        assert_known_values(&batch);
        assert!(collecting.stats.connected.load(Ordering::Relaxed));
        collecting.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn exceptions_01_02_and_0b_over_rtu() {
    bounded(async {
        let mut memory = four_slaves();
        memory.unsupported = vec![Area::Input];
        memory.silent_for_unknown_units = false; // a gateway answering 0B for them
        let device = Arc::new(memory);
        let server = RunningServer::start_rtu_over_tcp(Arc::clone(&device))
            .await
            .expect("server");
        let link = rtu_tcp(server.addr);
        let points = vec![
            holding_u16("mapped", 2),
            holding_u16("unmapped", 40),
            point("input", Area::Input, 0, DataType::I16, WordOrder::Abcd),
        ];
        let mut meter = Collecting::start_rtu(rtu_device("m", link.clone(), 1, points), 8);
        let mut away =
            Collecting::start_rtu(rtu_device("away", link, 9, vec![holding_u16("a", 0)]), 8);

        let batch = meter.batch().await;
        let samples = by_point(&batch);
        assert_eq!(samples["mapped"].value, Value::Int(7));
        assert_eq!(
            error(samples["unmapped"]),
            Some("exception 02 illegal data address")
        );
        assert_eq!(
            error(samples["input"]),
            Some("exception 01 illegal function: the device does not support this read")
        );
        let batch = away.batch().await;
        assert_eq!(
            error(&batch[0]),
            Some("exception 0B gateway target device failed to respond")
        );
        assert!(
            away.stats.connected.load(Ordering::Relaxed),
            "an exception is an answer: the slave is not backed off"
        );
        meter.stop().await;
        away.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn retries_repeat_a_timeout_but_never_an_exception() {
    bounded(async {
        let mut memory = four_slaves();
        memory.unsupported = vec![Area::Input];
        let device = Arc::new(memory);
        let server = RunningServer::start_rtu_over_tcp(Arc::clone(&device))
            .await
            .expect("server");
        let link = rtu_tcp(server.addr);

        let mut silent = rtu_device("silent", link.clone(), 7, vec![holding_u16("a", 0)]);
        silent.retries = 2;
        silent.timeout = Duration::from_millis(40);
        silent.poll = Duration::from_secs(10);
        let mut silent = Collecting::start_rtu(silent, 8);
        let batch = silent.batch().await;
        assert_eq!(error(&batch[0]), Some("timeout"));
        assert_eq!(device.requests_for(7), 3, "the request and two retries");
        assert_eq!(silent.stats.read_errors.load(Ordering::Relaxed), 3);

        let input = point("input", Area::Input, 0, DataType::I16, WordOrder::Abcd);
        let mut refusing = rtu_device("refusing", link, 2, vec![input]);
        refusing.retries = 2;
        refusing.poll = Duration::from_secs(10);
        let mut refusing = Collecting::start_rtu(refusing, 8);
        let batch = refusing.batch().await;
        assert!(error(&batch[0]).is_some_and(|e| e.starts_with("exception 01")));
        assert_eq!(device.requests_for(2), 1, "an exception is not retried");
        silent.stop().await;
        refusing.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_rtu_answer_of_the_wrong_quantity_is_bad_and_recycles_the_link() {
    bounded(async {
        // Reads of holding registers (8-byte RTU requests) are answered with one register,
        // whatever was asked: a well-formed frame with a valid CRC, of the wrong size.
        let server =
            ScriptedServer::start(8, |request| with_crc(&[request[0], 0x03, 2, 0x00, 0x2A])).await;
        let points = vec![holding_u16("a", 0), holding_u16("b", 1)];
        let mut collecting =
            Collecting::start_rtu(rtu_device("liar", rtu_tcp(server.addr), 1, points), 8);
        for _ in 0..2 {
            let batch = collecting.batch().await;
            for sample in &batch {
                assert_eq!(
                    error(sample),
                    Some("malformed answer: 1 registers for a request of 2; connection recycled"),
                    "{batch:?}"
                );
            }
        }
        assert!(
            server.connections.load(Ordering::SeqCst) >= 2,
            "the link was reopened"
        );
        assert!(collecting.stats.reconnects.load(Ordering::Relaxed) >= 2);
        collecting.stop().await;
    })
    .await;
}

/// A pseudo-terminal pair made by socat; killed on drop.
pub(crate) struct PtyPair {
    child: Child,
    dir: tempfile::TempDir,
}

impl PtyPair {
    /// Starts socat, or returns `None` (after saying why) when it is not installed and
    /// `FIELDLINK_REQUIRE_SOCAT` is not `1`; with it set, a missing socat fails the test.
    pub(crate) fn start() -> Option<PtyPair> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("master"), dir.path().join("slave"));
        let spawned = Command::new("socat")
            .arg("-d")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let required = std::env::var("FIELDLINK_REQUIRE_SOCAT").is_ok_and(|v| v == "1");
                assert!(
                    !required,
                    "socat is required (FIELDLINK_REQUIRE_SOCAT=1) but cannot be run: {e}; install it with `apt-get install -y socat`"
                );
                eprintln!("SKIPPED: socat not found ({e}); install it to test the serial path");
                return None;
            }
        };
        let pair = PtyPair { child, dir };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !(a.exists() && b.exists()) {
            assert!(
                std::time::Instant::now() < deadline,
                "socat made no pty pair"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(pair)
    }

    pub(crate) fn path(&self, end: &str) -> String {
        self.dir.path().join(end).display().to_string()
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_serial_path_through_a_pty_pair_reads_two_slaves() {
    let Some(pty) = PtyPair::start() else {
        return;
    };
    bounded(async {
        let device = Arc::new(four_slaves());
        let server = RunningServer::start_rtu_serial(Arc::clone(&device), &pty.path("slave"))
            .expect("serial server on the pty");
        let line = BusLink::Serial(SerialLine {
            path: pty.path("master"),
            baud: 9600,
            parity: Parity::Even,
            data_bits: DataBits::Eight,
            stop_bits: StopBits::One,
        });
        let mut meters: Vec<Collecting> = [1, 4]
            .into_iter()
            .map(|unit| {
                let mut rtu = rtu_device(&format!("meter-{unit}"), line.clone(), unit, points());
                rtu.poll = Duration::from_millis(150);
                Collecting::start_rtu(rtu, 64)
            })
            .collect();
        for meter in &mut meters {
            for _ in 0..3 {
                assert_known_values(&meter.batch().await);
            }
        }
        assert!(device.requests_for(1) >= 9 && device.requests_for(4) >= 9);
        for meter in meters {
            meter.stop().await;
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_slave_is_probed_at_a_growing_interval_and_reported_every_poll() {
    // Paused time: two minutes pass in an instant and the counts are exact.
    let mut memory = four_slaves();
    memory.units = vec![1];
    let device = Arc::new(memory);
    let server = RunningServer::start_rtu_over_tcp(Arc::clone(&device))
        .await
        .expect("server");
    let mut rtu = rtu_device("dead", rtu_tcp(server.addr), 9, vec![holding_u16("a", 0)]);
    rtu.poll = Duration::from_secs(1);
    rtu.timeout = Duration::from_millis(100);
    let mut collecting = Collecting::start_rtu(rtu, 256);

    let started = tokio::time::Instant::now();
    for _ in 0..120 {
        let batch = collecting.batch().await;
        assert_eq!(batch.len(), 1, "one bad sample per point per poll");
        assert_eq!(error(&batch[0]), Some("timeout"));
    }
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_secs(118)..=Duration::from_secs(121)).contains(&elapsed),
        "120 batches took {elapsed:?}: one per poll period"
    );
    // Probes at 0 s, then after 1-2, 2-4, 4-8, then every 5-10 s (the cap, so a slave that
    // comes back is read within 10 s): 12 to 28 in two minutes, where polling every tick
    // would ask 120 times.
    let probes = device.requests_for(9);
    assert!(
        (12..=28).contains(&probes),
        "{probes} probes in two minutes"
    );
    assert_eq!(
        collecting.stats.read_errors.load(Ordering::Relaxed),
        u64::try_from(probes).expect("small")
    );
    assert!(!collecting.stats.connected.load(Ordering::Relaxed));
    collecting.stop().await;
    server.stop().await;
}
