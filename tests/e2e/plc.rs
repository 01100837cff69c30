//! The plugin protocols end to end: the agent reads the simulator's S7 and MELSEC PLCs
//! (TCP) and two DL/T 645 meters on a pty line (socat), and publishes through the
//! in-process broker; the values, the catalogue's types and units (a meter's from the
//! standard's table), and report by exception (deadband, heartbeat) hold as for Modbus.

use crate::rtu::PtyPair;
use fieldlink_broker::Broker;
use fieldlink_simulator::dlt645_meter::{self, Faults, Meter, MeterValue};
use fieldlink_simulator::mc_device::{self, McKind, McMapping, McMemory};
use fieldlink_simulator::modbus_device::Source;
use fieldlink_simulator::s7_device::{self, S7Area, S7Kind, S7Mapping, S7Memory, S7Options};
use fieldlink_tests::{Recorder, agent_config, wait_until};
use fieldlink_wire::{Meta, Quality, Sample, Value, decode_batch};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn constant(v: Value) -> Source {
    Source::Constant(v)
}

async fn s7_plc(stop: &CancellationToken) -> SocketAddr {
    let memory = S7Memory::new()
        .area(S7Area::Db(1), 16)
        .with(S7Mapping {
            name: "speed".into(),
            area: S7Area::Db(1),
            byte: 0,
            kind: S7Kind::I16,
            source: constant(Value::Int(1450)),
        })
        .and_then(|m| {
            m.with(S7Mapping {
                name: "running".into(),
                area: S7Area::Db(1),
                byte: 2,
                kind: S7Kind::Bit(0),
                source: constant(Value::Bool(true)),
            })
        })
        .expect("memory");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(s7_device::serve(
        listener,
        memory,
        S7Options::default(),
        stop.clone(),
    ));
    addr
}

async fn mc_plc(stop: &CancellationToken) -> SocketAddr {
    let memory = McMemory::new()
        .device(0xA8, false, 1024)
        .with(McMapping {
            name: "strokes".into(),
            code: 0xA8,
            number: 100,
            kind: McKind::U32,
            source: constant(Value::Int(70_000)),
        })
        .expect("memory");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(mc_device::serve(listener, memory, stop.clone()));
    addr
}

fn meter(address: &str, energy: f64) -> Meter {
    let value = |bytes, decimals, v: f64| MeterValue {
        bytes,
        decimals,
        signed: false,
        source: constant(Value::Float(v)),
    };
    Meter {
        address: address.to_owned(),
        values: [
            (0x0001_0000, value(4, 2, energy)),
            (0x0201_0100, value(2, 1, 230.1)),
        ]
        .into_iter()
        .collect(),
    }
}

#[tokio::test]
async fn the_agent_reads_s7_mc_and_dlt645_devices_end_to_end() {
    let Some(pty) = PtyPair::start() else {
        return;
    };
    let stop = CancellationToken::new();
    let (s7, mc) = (s7_plc(&stop).await, mc_plc(&stop).await);
    let meters_end = tokio_serial::SerialStream::open(&tokio_serial::new(
        pty.path("device").display().to_string(),
        9600,
    ))
    .expect("the meters' end");
    tokio::spawn(dlt645_meter::serve(
        meters_end,
        vec![meter("000000000001", 1234.56), meter("000000000002", 99.5)],
        Arc::new(Faults::default()),
        stop.clone(),
    ));

    let broker = Broker::start(SocketAddr::from(([127, 0, 0, 1], 0))).expect("broker");
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-plc/#").await;
    let state = tempfile::tempdir().expect("tempdir");
    let line = pty.path("agent").display().to_string();
    let toml = format!(
        r#"[gateway]
id = "gw-plc"

[platform]
mqtt = "mqtt://{broker}"

[publish]
batch_max_delay = "50ms"

[buffer]
flush_interval = "100ms"

[[device]]
name = "s7"
protocol = "s7"
address = "{s7}"
poll = "100ms"

[[device.point]]
name = "speed"
address = "DB1.DBW0"
type = "i16"
deadband = 5
heartbeat = "1s"

[[device.point]]
name = "running"
address = "DB1.DBX2.0"

[[device]]
name = "mc"
protocol = "mc"
address = "{mc}"
poll = "100ms"

[[device.point]]
name = "strokes"
address = "D100"
type = "u32"

[[device]]
name = "meter-1"
protocol = "dlt645"
serial = "{line}"
baud = 9600
meter = "000000000001"
poll = "200ms"

[[device.point]]
name = "energy"
address = "00010000"

[[device.point]]
name = "voltage"
address = "02010100"

[[device]]
name = "meter-2"
protocol = "dlt645"
serial = "{line}"
baud = 9600
meter = "000000000002"
poll = "200ms"

[[device.point]]
name = "energy"
address = "00010000"
"#,
        broker = broker.addr()
    );
    let agent = tokio::spawn(fieldlink::run(
        agent_config(&toml, state.path()),
        stop.clone(),
    ));
    let samples = || -> Vec<Sample> {
        recorder
            .on("/data")
            .iter()
            .flat_map(|m| decode_batch(&m.payload).expect("batch").samples)
            .collect()
    };
    let of = |samples: &[Sample], device: &str, point: &str| -> Vec<Sample> {
        samples
            .iter()
            .filter(|s| &*s.device == device && &*s.point == point)
            .cloned()
            .collect()
    };
    // Long enough for two heartbeats of the unchanging S7 speed.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    wait_until(Duration::from_secs(10), || {
        let s = samples();
        !of(&s, "meter-2", "energy").is_empty() && !of(&s, "mc", "strokes").is_empty()
    })
    .await;
    stop.cancel();
    agent.await.expect("agent task").expect("agent run");
    let s = samples();
    let expect = |device: &str, point: &str, value: Value| {
        let got = of(&s, device, point);
        assert!(!got.is_empty(), "{device}/{point} never published");
        for sample in &got {
            assert_eq!(
                sample.quality,
                Quality::Good,
                "{device}/{point}: {sample:?}"
            );
            assert_eq!(sample.value, value, "{device}/{point}");
        }
        got.len()
    };
    let speeds = expect("s7", "speed", Value::Int(1450));
    expect("s7", "running", Value::Bool(true));
    expect("mc", "strokes", Value::Int(70_000));
    expect("meter-1", "energy", Value::Float(1234.56));
    expect("meter-1", "voltage", Value::Float(230.1));
    expect("meter-2", "energy", Value::Float(99.5));
    // A constant speed with a deadband: the first sample, then one per heartbeat, not one
    // per 100 ms poll.
    assert!(
        (2..=4).contains(&speeds),
        "{speeds} speed samples in about 2.6 s"
    );

    let meta = recorder.on("/meta");
    let meta: Meta = serde_json::from_slice(&meta.last().expect("meta").payload).expect("meta");
    let meter = meta
        .devices
        .iter()
        .find(|d| d.name == "meter-1")
        .expect("meter-1");
    assert_eq!(meter.protocol, "dlt645");
    let energy = meter
        .points
        .iter()
        .find(|p| p.name == "energy")
        .expect("energy");
    assert_eq!(energy.unit.as_deref(), Some("kWh"));
    recorder.stop().await;
}
