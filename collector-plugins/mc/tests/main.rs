//! The MC collector against the simulated MELSEC PLC of `fieldlink-simulator` on loopback
//! (a 3E binary server written independently of this crate), and against hand-written
//! servers for malformed and late answers.

use fieldlink_collector_api::testing::{Collecting, bounded, by_point, error};
use fieldlink_collector_api::{DataType, WordOrder};
use fieldlink_mc::frame::Route;
use fieldlink_mc::{Device, Family, McCollector, McDevice, McPoint};
use fieldlink_simulator::mc_device::{self, McKind, McMapping, McMemory};
use fieldlink_simulator::modbus_device::Source;
use fieldlink_wire::Value;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const D: u8 = 0xA8;
const W: u8 = 0xB4;
const M: u8 = 0x90;
const X: u8 = 0x9C;

fn mapping(name: &str, code: u8, number: u32, kind: McKind, value: Value) -> McMapping {
    McMapping {
        name: name.into(),
        code,
        number,
        kind,
        source: Source::Constant(value),
    }
}

fn memory() -> McMemory {
    let mut memory = McMemory::new()
        .device(D, false, 12_288)
        .device(W, false, 0x2000)
        .device(M, true, 8192)
        .device(X, true, 0x2000);
    for m in [
        mapping("speed", D, 100, McKind::I16, Value::Int(-1450)),
        mapping("count", D, 101, McKind::U32, Value::Int(70_000)),
        mapping("temperature", D, 103, McKind::F32, Value::Float(123.456)),
        mapping("status", D, 105, McKind::U16, Value::Int(0x0201)),
        mapping(
            "recipe",
            D,
            110,
            McKind::String(4),
            Value::Text("AX-7".into()),
        ),
        mapping("link", W, 0x1F, McKind::U16, Value::Int(4321)),
        mapping("m0", M, 0, McKind::Bit, Value::Bool(true)),
        mapping("m17", M, 17, McKind::Bit, Value::Bool(true)),
        mapping("x1f", X, 0x1F, McKind::Bit, Value::Bool(true)),
    ] {
        memory.insert(m).expect("mapping");
    }
    memory
}

fn point(name: &str, device: &str, data_type: DataType) -> McPoint {
    McPoint {
        name: name.into(),
        device: Device::parse(device, Family::Q).expect("device"),
        data_type,
        order: WordOrder::Cdab,
        bit: None,
        scale: 1.0,
        offset: 0.0,
    }
}

fn points() -> Vec<McPoint> {
    let mut status_bit = point("status_bit9", "D105", DataType::U16);
    status_bit.bit = Some(9);
    let mut scaled = point("speed_rpm", "D100", DataType::I16);
    scaled.scale = 0.1;
    vec![
        point("speed", "D100", DataType::I16),
        scaled,
        point("count", "D101", DataType::U32),
        point("temperature", "D103", DataType::F32),
        status_bit,
        point("recipe", "D110", DataType::String { len: 4 }),
        point("link", "W1F", DataType::U16),
        point("m0", "M0", DataType::Bool),
        point("m1", "M1", DataType::Bool),
        point("m17", "M17", DataType::Bool),
        point("x1f", "X1F", DataType::Bool),
    ]
}

fn device(addr: SocketAddr, points: Vec<McPoint>) -> McDevice {
    McDevice {
        name: "fx-1".into(),
        address: addr.to_string(),
        route: Route::default(),
        poll: Duration::from_millis(100),
        timeout: Duration::from_millis(400),
        retries: 0,
        max_gap: 16,
        max_words: 960,
        points,
    }
}

struct Plc {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Plc {
    fn start_on(listener: TcpListener, memory: McMemory) -> Plc {
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let task = tokio::spawn(mc_device::serve(listener, memory, stop.clone()));
        Plc { addr, stop, task }
    }

    async fn start() -> Plc {
        Plc::start_on(
            TcpListener::bind("127.0.0.1:0").await.expect("bind"),
            memory(),
        )
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

fn assert_values(batch: &[fieldlink_wire::Sample]) {
    let s = by_point(batch);
    assert_eq!(s.len(), 11, "one sample per point");
    for (name, value) in [
        ("speed", Value::Int(-1450)),
        ("speed_rpm", Value::Float(-145.0)),
        ("count", Value::Int(70_000)),
        ("temperature", Value::Float(123.456)),
        ("status_bit9", Value::Bool(true)),
        ("recipe", Value::Text("AX-7".into())),
        ("link", Value::Int(4321)),
        ("m0", Value::Bool(true)),
        ("m1", Value::Bool(false)),
        ("m17", Value::Bool(true)),
        ("x1f", Value::Bool(true)),
    ] {
        assert_eq!(error(s[name]), None, "{name}");
        assert_eq!(s[name].value, value, "{name}");
    }
}

#[tokio::test]
async fn word_and_bit_devices_are_read_in_one_batch_read_per_device() {
    bounded(async {
        let plc = Plc::start().await;
        let d = device(plc.addr, points());
        let plan = fieldlink_mc::ReadPlan::new(&d.points, d.max_gap, d.max_words);
        assert_eq!(plan.reads.len(), 4, "D, W, M and X: {plan:?}");
        let mut collecting = Collecting::run(Box::new(McCollector::new(d)), 16);
        for _ in 0..3 {
            assert_values(&collecting.batch().await);
        }
        assert!(collecting.stats.connected.load(Ordering::Relaxed));
        assert_eq!(collecting.stats.read_errors.load(Ordering::Relaxed), 0);
        collecting.stop().await;
        plc.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_end_code_spoils_its_read_only() {
    bounded(async {
        let plc = Plc::start().await;
        let mut ps = points();
        ps.push(point("beyond", "D12287", DataType::U32));
        ps.push(point("no_r", "R0", DataType::U16));
        let mut collecting = Collecting::run(Box::new(McCollector::new(device(plc.addr, ps))), 16);
        let batch = collecting.batch().await;
        let s = by_point(&batch);
        assert_eq!(
            error(s["beyond"]),
            Some("PLC end code C056: the request runs past the device's last number")
        );
        assert_eq!(
            error(s["no_r"]),
            Some("PLC end code C05B: the device cannot be accessed (wrong device for this CPU)")
        );
        assert_eq!(s["speed"].value, Value::Int(-1450));
        collecting.stop().await;
        plc.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_plc_that_comes_back_is_read_again_within_the_backoff() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let mut collecting =
            Collecting::run(Box::new(McCollector::new(device(addr, points()))), 256);
        let batch = collecting.batch().await;
        assert!(
            batch
                .iter()
                .all(|s| error(s).is_some_and(|e| e.starts_with("connect failed")))
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let plc = Plc::start_on(TcpListener::bind(addr).await.expect("rebind"), memory());
        let batch = collecting
            .batch_where(Duration::from_secs(12), |b| {
                b.iter().all(|s| error(s).is_none())
            })
            .await;
        assert_values(&batch);
        collecting.stop().await;
        plc.stop().await;
    })
    .await;
}

/// How a scripted PLC answers a request.
type Answer = fn(&[u8]) -> Vec<u8>;

/// A PLC answering every request with `answer(request)`, after `first_delay` on its first
/// connection.
async fn scripted(
    answer: Answer,
    first_delay: Duration,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut connections = 0;
        while let Ok((mut stream, _)) = listener.accept().await {
            connections += 1;
            let delay = if connections == 1 {
                first_delay
            } else {
                Duration::ZERO
            };
            tokio::spawn(async move {
                loop {
                    let mut request = [0u8; 21];
                    if stream.read_exact(&mut request).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    if stream.write_all(&answer(&request)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, task)
}

/// A well-formed answer of one word, 7.
fn one_word(_: &[u8]) -> Vec<u8> {
    vec![0xD0, 0, 0, 0xFF, 0xFF, 3, 0, 4, 0, 0, 0, 7, 0]
}

#[tokio::test]
async fn malformed_answers_become_bad_samples_and_a_new_connection() {
    bounded(async {
        let cases: [(Answer, &str); 3] = [
            (
                |_| b"HTTP/1.1 400 Bad\r\n\r\n".to_vec(),
                "malformed answer: not a 3E binary answer",
            ),
            // Two words for one asked.
            (
                |_| vec![0xD0, 0, 0, 0xFF, 0xFF, 3, 0, 6, 0, 0, 0, 1, 0, 2, 0],
                "malformed answer: 4 bytes of data for 1 words asked",
            ),
            // A length field of 1: no room for an end code.
            (
                |_| vec![0xD0, 0, 0, 0xFF, 0xFF, 3, 0, 1, 0, 0],
                "malformed answer: impossible answer length 1",
            ),
        ];
        for (answer, expected) in cases {
            let (addr, server) = scripted(answer, Duration::ZERO).await;
            let mut collecting = Collecting::run(
                Box::new(McCollector::new(device(
                    addr,
                    vec![point("d0", "D0", DataType::U16)],
                ))),
                16,
            );
            let batch = collecting.batch().await;
            let e = error(&batch[0]).expect("bad").to_owned();
            assert!(e.starts_with(expected), "{e}");
            let next = collecting.batch().await;
            assert_eq!(next.len(), 1);
            assert!(collecting.stats.reconnects.load(Ordering::Relaxed) >= 1);
            collecting.stop().await;
            server.abort();
        }
    })
    .await;
}

/// Regression guard: the 3E frame has no serial number, so a late answer must not be
/// taken for the next read's; after a timeout the connection is replaced.
#[tokio::test]
async fn a_late_answer_is_never_taken_for_the_next_reads() {
    bounded(async {
        // The first connection answers 600 ms late (the timeout is 400 ms).
        let (addr, server) = scripted(one_word, Duration::from_millis(600)).await;
        let mut collecting = Collecting::run(
            Box::new(McCollector::new(device(
                addr,
                vec![point("d0", "D0", DataType::U16)],
            ))),
            16,
        );
        let batch = collecting.batch().await;
        assert_eq!(error(&batch[0]), Some("timeout"));
        let batch = collecting.batch().await;
        assert_eq!(batch[0].value, Value::Int(7), "{batch:?}");
        collecting.stop().await;
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn probe_mc_shows_the_simulators_words_in_both_orders() {
    bounded(async {
        let plc = Plc::start().await;
        let request = fieldlink_collector_api::plugin::ProbeRequest {
            target: format!("tcp://{}", plc.addr),
            address: Some("D100".to_owned()),
            count: Some(6),
            timeout: Duration::from_secs(1),
            settings: Default::default(),
        };
        let table = fieldlink_mc::probe::probe(request.clone())
            .await
            .expect("probe");
        println!("{table}");
        let row = |tokens: &[&str]| {
            table.lines().any(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                words.len() >= tokens.len() && words[..tokens.len()] == *tokens
            })
        };
        assert!(row(&["D100", "64086", "-1450"]), "{table}");
        // count (70000) is a u32 at D101, low word first.
        assert!(row(&["D101", "CDAB", "70000"]), "{table}");
        assert!(
            row(&["D103", "CDAB"]) && table.contains("123.456"),
            "{table}"
        );

        let bits = fieldlink_collector_api::plugin::ProbeRequest {
            address: Some("M17".to_owned()),
            count: Some(2),
            ..request.clone()
        };
        let table = fieldlink_mc::probe::probe(bits).await.expect("probe M17");
        println!("{table}");
        assert!(table.contains("M17 = true"), "{table}");

        let error = fieldlink_mc::probe::probe(fieldlink_collector_api::plugin::ProbeRequest {
            address: Some("R0".to_owned()),
            ..request
        })
        .await
        .expect_err("no R in the simulator");
        println!("R0: error: {error}");
        assert!(error.to_string().contains("C05B"), "{error}");
        plc.stop().await;
    })
    .await;
}
