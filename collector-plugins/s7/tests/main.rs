//! The S7 collector against the simulated PLC of `fieldlink-simulator` on loopback (an
//! S7comm server written independently of this crate), and against hand-written servers
//! for refused connections and malformed answers. python-snap7's server is the
//! third-party peer, in the workspace's interop tests (tests/e2e/snap7.rs).

use fieldlink_collector_api::testing::{Collecting, bounded, by_point, error};
use fieldlink_s7::connection::{ConnectionType, Tsaps};
use fieldlink_s7::{S7Collector, S7Device, S7Point, S7Type};
use fieldlink_simulator::modbus_device::Source;
use fieldlink_simulator::s7_device::{self, S7Area, S7Kind, S7Mapping, S7Memory, S7Options};
use fieldlink_wire::Value;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn mapping(name: &str, area: S7Area, byte: u32, kind: S7Kind, value: Value) -> S7Mapping {
    S7Mapping {
        name: name.into(),
        area,
        byte,
        kind,
        source: Source::Constant(value),
    }
}

/// DB1 (40 bytes), DB2 (4 bytes), flags, inputs and outputs with known values.
fn memory() -> S7Memory {
    let mappings = [
        mapping("speed", S7Area::Db(1), 0, S7Kind::I16, Value::Int(-1450)),
        mapping(
            "temperature",
            S7Area::Db(1),
            2,
            S7Kind::F32,
            Value::Float(123.456),
        ),
        mapping(
            "running",
            S7Area::Db(1),
            6,
            S7Kind::Bit(1),
            Value::Bool(true),
        ),
        mapping("status", S7Area::Db(1), 8, S7Kind::U16, Value::Int(0x8004)),
        mapping("count", S7Area::Db(1), 10, S7Kind::U32, Value::Int(70_000)),
        mapping(
            "energy",
            S7Area::Db(1),
            14,
            S7Kind::F64,
            Value::Float(-9876.54321),
        ),
        mapping(
            "recipe",
            S7Area::Db(1),
            22,
            S7Kind::String(10),
            Value::Text("AX-7".into()),
        ),
        mapping("level", S7Area::Db(2), 0, S7Kind::I32, Value::Int(-5)),
        mapping(
            "flag",
            S7Area::Merker,
            10,
            S7Kind::Bit(0),
            Value::Bool(true),
        ),
        mapping("mw", S7Area::Merker, 12, S7Kind::U16, Value::Int(321)),
        mapping(
            "sensor",
            S7Area::Input,
            0,
            S7Kind::Bit(3),
            Value::Bool(true),
        ),
        mapping("analog", S7Area::Input, 64, S7Kind::I16, Value::Int(27648)),
        mapping(
            "valve",
            S7Area::Output,
            0,
            S7Kind::Bit(1),
            Value::Bool(true),
        ),
        mapping("setpoint", S7Area::Output, 2, S7Kind::U8, Value::Int(200)),
    ];
    let mut memory = S7Memory::new()
        .area(S7Area::Db(1), 40)
        .area(S7Area::Db(2), 4)
        .area(S7Area::Merker, 64)
        .area(S7Area::Input, 128)
        .area(S7Area::Output, 16);
    for m in mappings {
        memory.insert(m).expect("valid mapping");
    }
    memory
}

fn point(name: &str, address: &str, data_type: S7Type) -> S7Point {
    S7Point {
        name: name.into(),
        address: address.parse().expect("address"),
        data_type,
        bit: None,
        scale: 1.0,
        offset: 0.0,
    }
}

fn points() -> Vec<S7Point> {
    let mut status_bit = point("status_bit2", "DB1.DBW8", S7Type::U16);
    status_bit.bit = Some(2);
    let mut scaled = point("analog", "IW64", S7Type::I16);
    scaled.scale = 100.0 / 27648.0;
    vec![
        point("speed", "DB1.DBW0", S7Type::I16),
        point("temperature", "DB1.DBD2", S7Type::F32),
        point("running", "DB1.DBX6.1", S7Type::Bool),
        status_bit,
        point("count", "DB1.DBD10", S7Type::U32),
        point("energy", "DB1.DBB14", S7Type::F64),
        point("recipe", "DB1.DBB22", S7Type::String { len: 10 }),
        point("level", "DB2.DBD0", S7Type::I32),
        point("flag", "M10.0", S7Type::Bool),
        point("mw", "MW12", S7Type::U16),
        point("sensor", "I0.3", S7Type::Bool),
        scaled,
        point("valve", "Q0.1", S7Type::Bool),
        point("setpoint", "QB2", S7Type::U8),
        point("v_memory", "VW8", S7Type::U16),
    ]
}

fn device(addr: SocketAddr, points: Vec<S7Point>) -> S7Device {
    S7Device {
        name: "plc-1".into(),
        address: addr.to_string(),
        tsaps: Tsaps::rack_slot(0, 1, ConnectionType::Pg),
        poll: Duration::from_millis(100),
        timeout: Duration::from_millis(500),
        retries: 0,
        max_gap: 16,
        pdu_size: 960,
        points,
    }
}

struct Plc {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Plc {
    async fn start(options: S7Options) -> Plc {
        Plc::start_on(
            TcpListener::bind("127.0.0.1:0").await.expect("bind"),
            memory(),
            options,
        )
    }

    fn start_on(listener: TcpListener, memory: S7Memory, options: S7Options) -> Plc {
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let task = tokio::spawn(s7_device::serve(listener, memory, options, stop.clone()));
        Plc { addr, stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

fn assert_values(batch: &[fieldlink_wire::Sample]) {
    let s = by_point(batch);
    assert_eq!(s.len(), 15, "one sample per point");
    let expected = [
        ("speed", Value::Int(-1450)),
        ("temperature", Value::Float(123.456)),
        ("running", Value::Bool(true)),
        ("status_bit2", Value::Bool(true)),
        ("count", Value::Int(70_000)),
        ("energy", Value::Float(-9876.54321)),
        ("recipe", Value::Text("AX-7".into())),
        ("level", Value::Int(-5)),
        ("flag", Value::Bool(true)),
        ("mw", Value::Int(321)),
        ("sensor", Value::Bool(true)),
        ("analog", Value::Float(100.0)),
        ("valve", Value::Bool(true)),
        ("setpoint", Value::Int(200)),
        ("v_memory", Value::Int(0x8004)),
    ];
    for (name, value) in expected {
        assert_eq!(s[name].value, value, "{name}: {:?}", s[name]);
        assert_eq!(error(s[name]), None, "{name}");
    }
}

#[tokio::test]
async fn every_area_and_type_is_read_with_the_granted_pdu() {
    bounded(async {
        for pdu_size in [240, 480, 960] {
            let plc = Plc::start(S7Options {
                pdu_size,
                remote_tsap: Some(0x0101),
            })
            .await;
            let mut collecting =
                Collecting::run(Box::new(S7Collector::new(device(plc.addr, points()))), 16);
            for _ in 0..3 {
                assert_values(&collecting.batch().await);
            }
            assert!(collecting.stats.connected.load(Ordering::Relaxed));
            assert_eq!(collecting.stats.read_errors.load(Ordering::Relaxed), 0);
            collecting.stop().await;
            plc.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn many_points_are_split_into_requests_that_fit_a_small_pdu() {
    bounded(async {
        // 400 words in DB5 every 10 bytes: 400 ranges, 20 requests of at most 19 items with
        // a 240-byte PDU (the planner's unit tests check the arithmetic; here the PLC
        // accepts every request and every value arrives).
        let mut memory = S7Memory::new().area(S7Area::Db(5), 4000);
        let mut points = Vec::new();
        for i in 0..400u32 {
            let value = Value::Int(i64::from(i));
            memory
                .insert(mapping(
                    &format!("w{i}"),
                    S7Area::Db(5),
                    i * 10,
                    S7Kind::U16,
                    value,
                ))
                .expect("mapping");
            points.push(point(
                &format!("w{i}"),
                &format!("DB5.DBW{}", i * 10),
                S7Type::U16,
            ));
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let plc = Plc::start_on(
            listener,
            memory,
            S7Options {
                pdu_size: 240,
                remote_tsap: None,
            },
        );
        let mut d = device(plc.addr, points);
        d.max_gap = 0;
        let mut collecting = Collecting::run(Box::new(S7Collector::new(d)), 16);
        let batch = collecting.batch().await;
        let s = by_point(&batch);
        for i in 0..400 {
            assert_eq!(s[format!("w{i}").as_str()].value, Value::Int(i), "w{i}");
        }
        collecting.stop().await;
        plc.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_missing_block_or_a_read_past_its_end_spoils_only_its_points() {
    bounded(async {
        let plc = Plc::start(S7Options::default()).await;
        let mut ps = points();
        ps.push(point("nowhere", "DB9.DBW0", S7Type::U16));
        ps.push(point("past_end", "DB2.DBW4", S7Type::U16));
        let mut collecting = Collecting::run(Box::new(S7Collector::new(device(plc.addr, ps))), 16);
        let batch = collecting.batch().await;
        let s = by_point(&batch);
        assert_eq!(
            error(s["nowhere"]),
            Some("PLC item error 0A: object does not exist (no such data block?)")
        );
        assert_eq!(
            error(s["past_end"]),
            Some("PLC item error 05: address out of range (is the data block that long?)")
        );
        assert_eq!(s["speed"].value, Value::Int(-1450));
        assert!(collecting.stats.connected.load(Ordering::Relaxed));
        collecting.stop().await;
        plc.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_wrong_slot_is_refused_and_reported_on_every_point() {
    bounded(async {
        let plc = Plc::start(S7Options {
            pdu_size: 480,
            remote_tsap: Some(0x0102),
        })
        .await;
        let mut collecting =
            Collecting::run(Box::new(S7Collector::new(device(plc.addr, points()))), 16);
        let batch = collecting.batch().await;
        assert_eq!(batch.len(), 15);
        for sample in &batch {
            let e = error(sample).expect("bad");
            assert!(e.starts_with("the PLC refused the connection"), "{e}");
            assert!(e.contains("check rack and slot"), "{e}");
        }
        collecting.stop().await;
        plc.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_plc_that_comes_back_is_read_again_within_the_backoff() {
    bounded(async {
        // Reserve a port, then leave it closed: the PLC is off.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let mut collecting =
            Collecting::run(Box::new(S7Collector::new(device(addr, points()))), 256);
        let batch = collecting.batch().await;
        assert!(
            batch
                .iter()
                .all(|s| error(s).is_some_and(|e| e.starts_with("connect failed"))),
            "{batch:?}"
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let listener = TcpListener::bind(addr).await.expect("the port again");
        let plc = Plc::start_on(listener, memory(), S7Options::default());
        let batch = collecting
            .batch_where(Duration::from_secs(12), |b| {
                b.iter().all(|s| error(s).is_none())
            })
            .await;
        assert_values(&batch);
        assert!(collecting.stats.reconnects.load(Ordering::Relaxed) >= 1);
        collecting.stop().await;
        plc.stop().await;
    })
    .await;
}

/// How a scripted PLC answers a job PDU.
type Answer = fn(&[u8]) -> Vec<u8>;

/// A PLC that completes the handshake, then answers every job with `answer(job)`.
async fn scripted(answer: Answer) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut jobs = 0;
                loop {
                    let mut header = [0u8; 4];
                    if stream.read_exact(&mut header).await.is_err() {
                        return;
                    }
                    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
                    let mut packet = vec![0u8; len.saturating_sub(4)];
                    if stream.read_exact(&mut packet).await.is_err() {
                        return;
                    }
                    let reply = match (packet.get(1), jobs) {
                        (Some(0xE0), _) => vec![3, 0, 0, 11, 6, 0xD0, 0, 1, 0, 2, 0],
                        (_, 0) => {
                            jobs += 1;
                            let r = [packet[7], packet[8]];
                            vec![
                                3, 0, 0, 27, 2, 0xF0, 0x80, 0x32, 3, 0, 0, r[0], r[1], 0, 8, 0, 0,
                                0, 0, 0xF0, 0, 0, 1, 0, 1, 0, 240,
                            ]
                        }
                        _ => answer(&packet[3..]),
                    };
                    if stream.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn malformed_answers_become_bad_samples_and_a_new_connection() {
    bounded(async {
        let answers: [Answer; 4] = [
            // Not TPKT at all.
            |_| b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
            // An S7 ack whose data length runs past the packet.
            |job| {
                vec![
                    3, 0, 0, 21, 2, 0xF0, 0x80, 0x32, 3, 0, 0, job[4], job[5], 0, 2, 0x01, 0, 0, 0,
                    4, 1,
                ]
            },
            // One item announced, two present in the count.
            |job| {
                vec![
                    3, 0, 0, 25, 2, 0xF0, 0x80, 0x32, 3, 0, 0, job[4], job[5], 0, 2, 0, 4, 0, 0, 4,
                    2, 0xFF, 4, 0, 0,
                ]
            },
            // A header error: the PLC refuses the job (PUT/GET not allowed).
            |job| {
                vec![
                    3, 0, 0, 19, 2, 0xF0, 0x80, 0x32, 2, 0, 0, job[4], job[5], 0, 0, 0, 0, 0x81,
                    0x04,
                ]
            },
        ];
        let expected = [
            "malformed answer: bad TPKT header",
            "malformed answer: S7 PDU lengths do not add up",
            "malformed answer: the answer has 2 items for 1 asked",
            "PLC error 8104: function not supported, or PUT/GET access not allowed",
        ];
        for (answer, expected) in answers.into_iter().zip(expected) {
            let (addr, server) = scripted(answer).await;
            let mut d = device(addr, vec![point("speed", "DB1.DBW0", S7Type::I16)]);
            d.timeout = Duration::from_millis(300);
            let mut collecting = Collecting::run(Box::new(S7Collector::new(d)), 16);
            let batch = collecting
                .batch_where(Duration::from_secs(5), |b| {
                    error(&b[0]).is_some_and(|e| e != "not connected")
                })
                .await;
            let e = error(&batch[0]).expect("bad").to_owned();
            assert!(e.starts_with(expected), "{e}");
            // Still polling, one bad sample per poll, no panic.
            let next = collecting.batch().await;
            assert_eq!(next.len(), 1);
            collecting.stop().await;
            server.abort();
        }
    })
    .await;
}

#[tokio::test]
async fn probe_s7_shows_the_simulators_bytes_as_every_type() {
    bounded(async {
        let plc = Plc::start(S7Options::default()).await;
        let request = fieldlink_collector_api::plugin::ProbeRequest {
            target: format!("tcp://{}", plc.addr),
            address: Some("DB1.DBW0".to_owned()),
            count: Some(8),
            timeout: Duration::from_secs(1),
            settings: Default::default(),
        };
        let table = fieldlink_s7::probe::probe(request.clone())
            .await
            .expect("probe");
        println!("{table}");
        let row = |tokens: &[&str]| {
            table.lines().any(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                words.len() >= tokens.len() && words[..tokens.len()] == *tokens
            })
        };
        assert!(row(&["DB1.DBW0", "64086", "-1450"]), "{table}");
        assert!(table.contains("123.456"), "{table}");
        let flag = fieldlink_collector_api::plugin::ProbeRequest {
            address: Some("M10.0".to_owned()),
            count: Some(1),
            ..request
        };
        let table = fieldlink_s7::probe::probe(flag).await.expect("probe M10.0");
        println!("{table}");
        assert!(table.contains("M10.0 = true"), "{table}");
        plc.stop().await;
    })
    .await;
}
