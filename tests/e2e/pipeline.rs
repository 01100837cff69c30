//! A Modbus TCP device read by the agent, batches delivered through a real broker in
//! exactly the contract's shape.

use fieldlink_broker::Broker;
use fieldlink_collector_api::{Area, DataType, WordOrder};
use fieldlink_simulator::modbus_device::{self, Mapping, RegisterMap, Source};
use fieldlink_tests::{Recorder, agent_config};
use fieldlink_wire::{Value, decode_batch};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A device whose registers hold known constants in several types and orders.
pub fn known_device() -> RegisterMap {
    let constant = |v: Value| Source::Constant(v);
    let with_order = |mut m: Mapping, order| {
        m.order = order;
        m
    };
    let mappings = [
        Mapping::new(
            "temperature",
            Area::Holding,
            0,
            DataType::F32,
            constant(Value::Float(21.5)),
        ),
        with_order(
            Mapping::new(
                "flow",
                Area::Holding,
                2,
                DataType::F32,
                constant(Value::Float(-3.25)),
            ),
            WordOrder::Cdab,
        ),
        Mapping::new(
            "speed",
            Area::Holding,
            4,
            DataType::U16,
            constant(Value::Int(1450)),
        ),
        with_order(
            Mapping::new(
                "count",
                Area::Holding,
                6,
                DataType::U32,
                constant(Value::Int(70000)),
            ),
            WordOrder::Dcba,
        ),
        Mapping::new(
            "recipe",
            Area::Holding,
            10,
            DataType::String { len: 4 },
            constant(Value::Text("AX-7".into())),
        ),
        Mapping::new(
            "current",
            Area::Input,
            0,
            DataType::I16,
            constant(Value::Int(-153)),
        ),
        Mapping::new(
            "door_open",
            Area::Coil,
            0,
            DataType::Bool,
            constant(Value::Bool(true)),
        ),
        Mapping::new(
            "alarm",
            Area::Discrete,
            0,
            DataType::Bool,
            constant(Value::Bool(false)),
        ),
    ];
    let mut map = RegisterMap::new();
    for m in mappings {
        map.insert(m).expect("valid test mapping");
    }
    map
}

/// The agent's view of [`known_device`], plus a point at an unmapped address.
pub fn known_device_config(gateway: &str, device: SocketAddr, broker: SocketAddr) -> String {
    format!(
        r#"
[gateway]
id = "{gateway}"

[platform]
mqtt = "mqtt://{broker}"

[publish]
batch_max_samples = 9
batch_max_delay = "50ms"

[buffer]
flush_interval = "100ms"

[[device]]
name = "press-1"
protocol = "modbus-tcp"
address = "{device}"
poll = "100ms"
timeout = "300ms"
max_gap = 0

[[device.point]]
name = "temperature"
address = 0
type = "f32"
unit = "°C"

[[device.point]]
name = "flow"
address = 2
type = "f32"
order = "CDAB"

[[device.point]]
name = "speed"
address = 4
type = "u16"
scale = 0.5

[[device.point]]
name = "count"
address = 6
type = "u32"
order = "DCBA"

[[device.point]]
name = "recipe"
address = 10
type = "string"
length = 4

[[device.point]]
name = "current"
area = "input"
address = 0
type = "i16"
scale = 0.1

[[device.point]]
name = "door_open"
area = "coil"
address = 0

[[device.point]]
name = "alarm"
area = "discrete"
address = 0

[[device.point]]
name = "missing"
area = "input"
address = 500
"#
    )
}

/// Serves `map` on a loopback port until `stop` fires.
pub async fn serve_device(
    map: RegisterMap,
    stop: CancellationToken,
) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind device");
    let addr = listener.local_addr().expect("device address");
    (
        addr,
        tokio::spawn(modbus_device::serve(listener, map, stop)),
    )
}

#[tokio::test]
async fn batches_status_and_meta_arrive_in_the_exact_contract_shape() {
    let broker = Broker::start(SocketAddr::from(([127, 0, 0, 1], 0))).expect("broker");
    let stop = CancellationToken::new();
    let (device, device_task) = serve_device(known_device(), stop.clone()).await;
    let recorder = Recorder::start(broker.addr(), "fieldlink/v1/gw-e2e/#").await;
    let state = tempfile::tempdir().expect("tempdir");
    let config = agent_config(
        &known_device_config("gw-e2e", device, broker.addr()),
        state.path(),
    );
    let agent = tokio::spawn(fieldlink::run(config, stop.clone()));

    let arrived = recorder
        .wait_for(Duration::from_secs(15), |m| {
            m.iter().filter(|m| m.topic.ends_with("/data")).count() >= 3
        })
        .await;
    // Status and meta are retained: a subscriber arriving later gets them at once (MQTT
    // 3.1.1 sets the retain flag only on delivery to a new subscription).
    let late = Recorder::start(broker.addr(), "fieldlink/v1/gw-e2e/+").await;
    let retained = late
        .wait_for(Duration::from_secs(5), |m| {
            m.iter().filter(|m| m.retain).count() >= 2
        })
        .await;
    late.stop().await;
    stop.cancel();
    agent.await.expect("agent task").expect("agent run");
    device_task.await.expect("device task").expect("device");
    assert!(
        arrived,
        "fewer than 3 batches arrived: {:?}",
        recorder.messages()
    );

    let data = recorder.on("/data");
    for (i, message) in data.iter().enumerate() {
        assert!(!message.retain, "data must not be retained");
        let mut batch: serde_json::Value =
            serde_json::from_slice(&message.payload).expect("batch JSON");
        assert_eq!(
            batch["seq"],
            json!(i as u64 + 1),
            "seq starts at 1 and grows by one"
        );
        let samples = batch["samples"].as_array_mut().expect("samples");
        let ts = samples[0]["ts"].as_i64().expect("ts");
        assert!(
            (ts - fieldlink_collector_api::clock::now_ms()).abs() < 60_000,
            "ts is wall-clock ms"
        );
        for s in samples.iter_mut() {
            s["ts"] = json!(0);
        }
        let expected = json!({
            "gateway": "gw-e2e",
            "seq": i as u64 + 1,
            "samples": [
                {"device": "press-1", "point": "temperature", "ts": 0, "value": 21.5, "quality": "good"},
                {"device": "press-1", "point": "flow", "ts": 0, "value": -3.25, "quality": "good"},
                {"device": "press-1", "point": "speed", "ts": 0, "value": 725.0, "quality": "good"},
                {"device": "press-1", "point": "count", "ts": 0, "value": 70000, "quality": "good"},
                {"device": "press-1", "point": "recipe", "ts": 0, "value": "AX-7", "quality": "good"},
                {"device": "press-1", "point": "current", "ts": 0, "value": -15.3, "quality": "good"},
                {"device": "press-1", "point": "missing", "ts": 0, "value": null, "quality": "bad", "error": "exception 02 illegal data address"},
                {"device": "press-1", "point": "door_open", "ts": 0, "value": true, "quality": "good"},
                {"device": "press-1", "point": "alarm", "ts": 0, "value": false, "quality": "good"},
            ]
        });
        assert_eq!(batch, expected, "batch {i}");
        // The contract's codec reads what the agent wrote.
        decode_batch(&message.payload).expect("decodes with the wire crate");
    }

    assert!(retained, "status and meta were not retained");
    let meta = recorder.on("/meta");
    let meta: serde_json::Value = serde_json::from_slice(&meta[0].payload).expect("meta JSON");
    assert_eq!(meta["devices"][0]["name"], "press-1");
    assert_eq!(meta["devices"][0]["protocol"], "modbus-tcp");
    assert_eq!(
        meta["devices"][0]["points"][0],
        json!({"name": "temperature", "type": "f32", "unit": "°C"})
    );
    assert_eq!(
        meta["devices"][0]["points"][4],
        json!({"name": "recipe", "type": "string"})
    );

    let offline = br#"{"state":"offline"}"#;
    recorder
        .wait_for(Duration::from_secs(5), |m| {
            m.iter()
                .any(|m| m.topic.ends_with("/status") && m.payload == offline)
        })
        .await;
    let status = recorder.on("/status");
    let birth: serde_json::Value = serde_json::from_slice(&status[0].payload).expect("status JSON");
    assert_eq!(birth["state"], "online");
    assert_eq!(birth["version"], env!("CARGO_PKG_VERSION"));
    assert!(birth["started_at"].as_i64().is_some());
    let last: serde_json::Value =
        serde_json::from_slice(&status[status.len() - 1].payload).expect("status JSON");
    assert_eq!(
        last,
        json!({"state": "offline"}),
        "a clean shutdown says offline"
    );
    recorder.stop().await;
    let after = Recorder::start(broker.addr(), "fieldlink/v1/gw-e2e/status").await;
    assert!(
        after
            .wait_for(Duration::from_secs(5), |m| !m.is_empty())
            .await,
        "no retained status after shutdown"
    );
    let retained: serde_json::Value =
        serde_json::from_slice(&after.messages()[0].payload).expect("status JSON");
    assert_eq!(
        retained,
        json!({"state": "offline"}),
        "the retained status after a clean shutdown is offline"
    );
    after.stop().await;
}
