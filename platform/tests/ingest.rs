//! The ingest end to end: contract-shaped batches published by a real MQTT client through
//! the in-process broker, stored, deduplicated (also across a restart), rejected when
//! they lie about their gateway or come from strangers.

use crate::support::{TestPlatform, batch, bounded, code, config, connect, publish_batches};
use fieldlink_platform::{BrokerConfig, MqttUrl};
use fieldlink_wire::{
    Compression, DeviceMeta, Framing, Meta, PointMeta, Quality, Sample, Status, Topics, Value,
    encode_batch_with,
};
use serde_json::{Value as Json, json};
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(20);

/// Registers an enterprise and enrolls `n` gateways; their (id, password).
async fn enrolled(p: &TestPlatform, serial: u32, n: u32) -> Vec<(String, String)> {
    let c = code(serial);
    p.register(&c, "electrical-equipment", "东西湖区", true)
        .await;
    let token = p.token(&c, n).await;
    let mut gateways = Vec::new();
    for i in 0..n {
        gateways.push(p.enroll(&token, &format!("gw{i}")).await);
    }
    gateways
}

#[tokio::test]
async fn batches_status_and_meta_are_stored() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let gateways = enrolled(&p, 21, 1).await;
        let (id, password) = &gateways[0];
        let topics = Topics::new(id);
        let mut gw = connect(&p.mqtt, id, Some((id, password))).await.unwrap();
        let status = Status {
            state: fieldlink_wire::GatewayState::Online,
            version: Some("0.1.0".into()),
            started_at: Some(1_764_201_000_000),
            backlog_batches: Some(4),
            evicted_batches: Some(0),
            awaiting_ack_batches: Some(3),
            ..Status::offline()
        };
        gw.publish(&topics.status, serde_json::to_vec(&status).unwrap(), true)
            .await;
        let meta = Meta {
            devices: vec![DeviceMeta {
                name: "press-1".into(),
                protocol: "modbus-tcp".into(),
                points: vec![PointMeta {
                    name: "temperature".into(),
                    data_type: "f32".into(),
                    unit: Some("°C".into()),
                    role: None,
                }],
            }],
        };
        gw.publish(&topics.meta, serde_json::to_vec(&meta).unwrap(), true)
            .await;
        let device: Arc<str> = "press-1".into();
        let samples = vec![
            Sample::good(device.clone(), "temperature".into(), 1_764_201_600_000, Value::Float(21.5)),
            Sample::good(device.clone(), "temperature".into(), 1_764_201_601_000, Value::Float(21.7)),
            Sample::good(device.clone(), "door_open".into(), 1_764_201_600_000, Value::Bool(false)),
            Sample::good(device.clone(), "count".into(), 1_764_201_600_000, Value::UInt(u64::MAX)),
            Sample::bad(device.clone(), "pressure".into(), 1_764_201_600_000, "timeout"),
        ];
        let b = fieldlink_wire::Batch {
            gateway: id.clone(),
            seq: 1,
            samples,
        };
        gw.publish_batch(id, &b).await;
        gw.disconnect().await;
        p.wait_ingest(WAIT, |s| {
            s["batches_stored"] == 1 && s["status_updates"] == 1 && s["meta_updates"] == 1
        })
        .await;

        let g = p.get(&format!("/api/v1/gateways/{id}")).await;
        assert_eq!(g["samples"], 5, "{g}");
        assert_eq!(g["batches"], 1);
        assert_eq!(g["last_seq"], 1);
        assert_eq!(g["online"], true);
        assert_eq!(g["agent_version"], "0.1.0");
        assert_eq!(g["backlog_batches"], 4);
        assert_eq!(g["awaiting_ack_batches"], 3);
        assert_eq!(g["meta"]["devices"][0]["points"][0]["unit"], "°C");

        let latest = p.latest(id).await;
        assert_eq!(
            latest,
            json!([
                {"device": "press-1", "point": "count", "ts": 1_764_201_600_000i64, "value": u64::MAX, "quality": "good"},
                {"device": "press-1", "point": "door_open", "ts": 1_764_201_600_000i64, "value": false, "quality": "good"},
                {"device": "press-1", "point": "pressure", "ts": 1_764_201_600_000i64, "value": null, "quality": "bad", "error": "timeout"},
                {"device": "press-1", "point": "temperature", "ts": 1_764_201_601_000i64, "value": 21.7, "quality": "good"},
            ])
        );
        let c = code(21);
        let e = p.get(&format!("/api/v1/enterprises/{c}")).await;
        assert_eq!(e["on_cloud"], true);
        assert_eq!(e["active"], true);
        let stats = p.get("/api/v1/stats/onboarding").await;
        assert_eq!(stats["total"]["on_cloud"], 1);
        assert_eq!(stats["in_program"]["active"], 1);
        p.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_same_batch_delivered_twice_is_stored_once() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let gateways = enrolled(&p, 22, 1).await;
        let (id, password) = &gateways[0];
        let b = batch(id, 7, 50);
        publish_batches(&p.mqtt, id, Some(password), &[b.clone(), b.clone()]).await;
        // And once more on a new connection, as after a reconnect.
        publish_batches(&p.mqtt, id, Some(password), &[b]).await;
        let stats = p
            .wait_ingest(WAIT, |s| {
                s["batches_stored"].as_u64().unwrap() + s["duplicates"].as_u64().unwrap() == 3
            })
            .await;
        assert_eq!(stats["batches_stored"], 1, "{stats}");
        assert_eq!(stats["duplicates"], 2, "{stats}");
        let g = p.get(&format!("/api/v1/gateways/{id}")).await;
        assert_eq!(g["samples"], 50);
        assert_eq!(g["batches"], 1);
        p.stop().await;
    })
    .await;
}

#[tokio::test]
async fn lying_strange_and_unreadable_batches_are_rejected() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let gateways = enrolled(&p, 23, 2).await;
        let ((a, a_password), (b, _)) = (&gateways[0], &gateways[1]);
        let mut gw = connect(&p.mqtt, a, Some((a, a_password))).await.unwrap();
        // A's connection publishes on A's topic a batch claiming to be B's.
        gw.publish_batch(a, &batch(b, 1, 10)).await;
        // ... and on B's topic a batch claiming to be A's.
        gw.publish_batch(b, &batch(a, 1, 10)).await;
        // A broken zstd frame and garbage.
        let data = Topics::new(a).data;
        gw.publish(&data, vec![0x28, 0xB5, 0x2F, 0xFD, 0, 0, 0], false)
            .await;
        gw.publish(&data, b"{\"gateway\":".to_vec(), false).await;
        // A packed payload cut short, and one of a payload version this build does not know.
        let packed = encode_batch_with(&batch(a, 2, 10), Compression::Packed { level: 3 });
        gw.publish(&data, packed[..packed.len() - 3].to_vec(), false)
            .await;
        gw.publish(&data, vec![0x9F, b'F', b'L', 3, 0], false).await;
        // A gateway nobody enrolled (possible on the in-process broker, which has no ACL).
        let stranger = "91420100000000000X-ghost";
        gw.publish_batch(stranger, &batch(stranger, 1, 10)).await;
        gw.disconnect().await;
        let stats = p
            .wait_ingest(WAIT, |s| {
                s["gateway_mismatch"] == 2 && s["undecodable"] == 4 && s["unknown_gateway"] == 1
            })
            .await;
        assert_eq!(stats["batches_stored"], 0, "{stats}");
        for id in [a, b] {
            let g = p.get(&format!("/api/v1/gateways/{id}")).await;
            assert_eq!(g["batches"], 0, "{g}");
        }
        p.stop().await;
    })
    .await;
}

/// The platform decodes every payload version the contract has: JSON and zstd-framed
/// JSON (version 1), packed (version 2); each stores the same samples.
#[tokio::test]
async fn batches_of_every_payload_version_are_stored_alike() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let gateways = enrolled(&p, 26, 1).await;
        let (id, password) = &gateways[0];
        let mut gw = connect(&p.mqtt, id, Some((id, password))).await.unwrap();
        let framings = [
            ("json", Compression::None, Framing::Json),
            ("zstd", Compression::Zstd { level: 3 }, Framing::Zstd),
            ("packed", Compression::Packed { level: 3 }, Framing::Packed),
        ];
        for (seq, (name, compression, framing)) in (1..).zip(framings) {
            let device: Arc<str> = name.into();
            let ts = 1_764_201_600_000;
            let samples = vec![
                Sample::good(device.clone(), "count".into(), ts, Value::UInt(u64::MAX)),
                Sample::good(device.clone(), "door_open".into(), ts, Value::Bool(true)),
                Sample::bad(device.clone(), "pressure".into(), ts, "timeout"),
                Sample::good(device.clone(), "temperature".into(), ts, Value::Float(21.7)),
                Sample {
                    quality: Quality::Uncertain,
                    ..Sample::good(device.clone(), "TT1201.PV".into(), ts, Value::Int(-7))
                },
                Sample::good(device, "温度".into(), ts, Value::Text("AX-7".into())),
            ];
            let batch = fieldlink_wire::Batch {
                gateway: id.clone(),
                seq,
                samples,
            };
            let payload = encode_batch_with(&batch, compression);
            assert_eq!(Framing::of(&payload), framing);
            gw.publish(&Topics::new(id).data, payload, false).await;
        }
        gw.disconnect().await;
        let stats = p.wait_ingest(WAIT, |s| s["batches_stored"] == 3).await;
        assert_eq!(stats["samples_stored"], 18, "{stats}");
        assert_eq!(stats["compressed"], 2, "{stats}");
        assert_eq!(stats["packed"], 1, "{stats}");
        assert_eq!(stats["undecodable"], 0, "{stats}");
        let latest = p.latest(id).await;
        let of = |device: &str| -> Vec<Json> {
            latest
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["device"] == device)
                .map(|s| {
                    let mut s = s.clone();
                    s["device"] = json!("any");
                    s
                })
                .collect()
        };
        assert_eq!(of("json").len(), 6, "{latest}");
        assert_eq!(of("zstd"), of("json"));
        assert_eq!(of("packed"), of("json"));
        p.stop().await;
    })
    .await;
}

#[tokio::test]
async fn gaps_are_recorded_filled_by_late_batches_and_reported_once_when_stale() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.gap_grace = Duration::from_millis(300);
        let mut p = TestPlatform::start_with(config).await;
        let gateways = enrolled(&p, 24, 1).await;
        let (id, password) = &gateways[0];
        // Live first: 1, 2, then 6 (3..5 still in the gateway's backlog), then 3.
        let batches: Vec<_> = [1, 2, 6, 3].iter().map(|&s| batch(id, s, 5)).collect();
        publish_batches(&p.mqtt, id, Some(password), &batches).await;
        p.wait_ingest(WAIT, |s| s["batches_stored"] == 4).await;
        let g = p.get(&format!("/api/v1/gateways/{id}")).await;
        assert_eq!(g["gaps"], json!([{"first_seq": 4, "last_seq": 5}]), "{g}");
        assert_eq!(g["missing_batches"], 2);
        assert_eq!(g["last_seq"], 6);
        let stats = p.ingest_stats().await;
        assert_eq!(stats["gaps"], 1);
        assert_eq!(stats["missing_batches"], 3);
        assert_eq!(stats["late_batches"], 1);
        assert_eq!(stats["open_gaps"], json!({"gaps": 1, "missing_batches": 2}));
        // 4..5 stay missing past the grace period: reported once, however long it stays.
        p.wait_ingest(WAIT, |s| s["stale_gaps"] == 1).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(p.ingest_stats().await["stale_gaps"], 1);
        // The backlog arrives after all; nothing is open any more.
        let late: Vec<_> = [4, 5].iter().map(|&s| batch(id, s, 5)).collect();
        publish_batches(&p.mqtt, id, Some(password), &late).await;
        p.wait_ingest(WAIT, |s| s["batches_stored"] == 6).await;
        let stats = p.ingest_stats().await;
        assert_eq!(stats["late_batches"], 3);
        assert_eq!(stats["open_gaps"], json!({"gaps": 0, "missing_batches": 0}));
        p.stop().await;
    })
    .await;
}

#[tokio::test]
async fn dedup_survives_a_restart_and_the_broker_queues_while_the_platform_is_down() {
    bounded(Duration::from_secs(90), async {
        let dir = tempfile::tempdir().unwrap();
        let mut first = TestPlatform::start(dir.path()).await;
        let gateways = enrolled(&first, 25, 1).await;
        let (id, password) = gateways[0].clone();
        let broker = first.mqtt.clone();
        publish_batches(&broker, &id, Some(&password), &[batch(&id, 1, 20)]).await;
        first.wait_ingest(WAIT, |s| s["batches_stored"] == 1).await;
        first.stop_for_restart().await;

        // While no platform runs: a re-send of batch 1 and a new batch 2 are queued by
        // the broker for the ingest's persistent session.
        publish_batches(
            &broker,
            &id,
            Some(&password),
            &[batch(&id, 1, 20), batch(&id, 2, 20)],
        )
        .await;

        // The same data directory, the first platform's broker (which cannot be stopped).
        let mut config = config(dir.path());
        config.broker = BrokerConfig::External {
            url: MqttUrl::parse(&first.mqtt_url).unwrap(),
            ca_file: None,
            username: None,
            password: None,
        };
        let mut second = TestPlatform::start_with(config).await;
        let stats = second
            .wait_ingest(WAIT, |s| s["batches_stored"] == 1 && s["duplicates"] == 1)
            .await;
        assert_eq!(stats["unknown_gateway"], 0, "{stats}");
        // Once more while running.
        publish_batches(&broker, &id, Some(&password), &[batch(&id, 2, 20)]).await;
        second.wait_ingest(WAIT, |s| s["duplicates"] == 2).await;
        let g = second.get(&format!("/api/v1/gateways/{id}")).await;
        assert_eq!(g["batches"], 2, "{g}");
        assert_eq!(g["samples"], 40);
        second.stop().await;
    })
    .await;
}

/// Regression test: a sample dated far in the future (a gateway's clock at year 3000) was
/// stored and stayed its point's latest value until then. Now it is not stored, counted
/// in `future_ts`, and the rest of its batch is stored as usual.
#[tokio::test]
async fn a_sample_from_the_far_future_never_becomes_latest() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let gateways = enrolled(&p, 27, 1).await;
        let (id, password) = &gateways[0];
        let device: Arc<str> = "press-1".into();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let year_3000 = 32_503_680_000_000;
        let within_margin = now + 60_000;
        let b = fieldlink_wire::Batch {
            gateway: id.clone(),
            seq: 1,
            samples: vec![
                Sample::good(device.clone(), "t".into(), now, Value::Float(21.5)),
                Sample::good(device.clone(), "t".into(), year_3000, Value::Float(99.0)),
                Sample::good(device.clone(), "u".into(), within_margin, Value::Int(7)),
            ],
        };
        publish_batches(&p.mqtt, id, Some(password), &[b]).await;
        let stats = p.wait_ingest(WAIT, |s| s["batches_stored"] == 1).await;
        assert_eq!(stats["future_ts"], 1, "{stats}");
        assert_eq!(stats["samples_stored"], 2, "{stats}");

        let latest = p.latest(id).await;
        assert_eq!(
            latest,
            json!([
                {"device": "press-1", "point": "t", "ts": now, "value": 21.5, "quality": "good"},
                {"device": "press-1", "point": "u", "ts": within_margin, "value": 7, "quality": "good"},
            ])
        );
        let g = p.get(&format!("/api/v1/gateways/{id}")).await;
        assert_eq!(g["samples"], 2, "{g}");

        // A later sample of the same point is its latest, as if the future one never came.
        let next = fieldlink_wire::Batch {
            gateway: id.clone(),
            seq: 2,
            samples: vec![Sample::good(device.clone(), "t".into(), now + 1000, Value::Float(22.0))],
        };
        publish_batches(&p.mqtt, id, Some(password), &[next]).await;
        p.wait_ingest(WAIT, |s| s["batches_stored"] == 2).await;
        let latest = p.latest(id).await;
        assert_eq!(latest[0]["value"], 22.0, "{latest}");
        p.stop().await;
    })
    .await;
}

/// The latest ack the recorder got on `topic`, decoded.
fn last_ack(recorder: &fieldlink_testkit::Recorder, topic: &str) -> Option<fieldlink_wire::Ack> {
    let messages = recorder.on(topic);
    let last = messages.last()?;
    serde_json::from_slice(&last.payload).ok()
}

/// Waits (bounded) until the gateway's latest ack is `expected`.
async fn wait_for_ack(
    recorder: &fieldlink_testkit::Recorder,
    topic: &str,
    expected: &fieldlink_wire::Ack,
) {
    let reached = recorder
        .wait_for(WAIT, |messages| {
            messages
                .iter()
                .rev()
                .find(|m| m.topic == topic)
                .and_then(|m| serde_json::from_slice::<fieldlink_wire::Ack>(&m.payload).ok())
                .is_some_and(|ack| &ack == expected)
        })
        .await;
    assert!(
        reached,
        "expected {expected:?}, last ack {:?}",
        last_ack(recorder, topic)
    );
}

/// After its batches commit, a gateway gets a retained ack of what the platform stored:
/// a first batch above 1 (the newest of a backlog, sent live-first) leaves 1.. missing, a
/// late batch fills its gap, a crash window counts as stored.
#[tokio::test]
async fn each_gateway_gets_an_ack_of_what_is_stored() {
    use fieldlink_wire::Ack;
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let gateways = enrolled(&p, 28, 1).await;
        let (id, password) = &gateways[0];
        let topic = Topics::new(id).ack;
        let broker = format!("{}:{}", p.mqtt.host, p.mqtt.port).parse().unwrap();
        let recorder = fieldlink_testkit::Recorder::start(broker, &topic).await;

        publish_batches(
            &p.mqtt,
            id,
            Some(password),
            &[batch(id, 3, 5), batch(id, 1, 5)],
        )
        .await;
        let ack = Ack {
            stored_through: 1,
            missing: vec![(2, 2)],
            stored_max: Some(3),
        };
        wait_for_ack(&recorder, &topic, &ack).await;
        assert!(recorder.on(&topic).iter().all(|m| m.topic == topic));

        publish_batches(&p.mqtt, id, Some(password), &[batch(id, 2, 5)]).await;
        let ack = Ack {
            stored_through: 3,
            missing: vec![],
            stored_max: Some(3),
        };
        wait_for_ack(&recorder, &topic, &ack).await;

        // The agent crashed: 4..=9 were reserved, never sent; it resumes at 10.
        let mut gw = connect(&p.mqtt, id, Some((id, password))).await.unwrap();
        let status = Status {
            state: fieldlink_wire::GatewayState::Online,
            resumed_after_crash: Some(fieldlink_wire::ResumedAfterCrash {
                durable_seq: 4,
                resumed_seq: 10,
            }),
            ..Status::offline()
        };
        gw.publish(
            &Topics::new(id).status,
            serde_json::to_vec(&status).unwrap(),
            true,
        )
        .await;
        gw.disconnect().await;
        p.wait_ingest(WAIT, |s| s["crash_windows"] == 1).await;
        publish_batches(&p.mqtt, id, Some(password), &[batch(id, 10, 5)]).await;
        let ack = Ack {
            stored_through: 10,
            missing: vec![],
            stored_max: Some(10),
        };
        wait_for_ack(&recorder, &topic, &ack).await;

        // The ack is retained: a gateway connecting later gets the latest at once.
        let late = fieldlink_testkit::Recorder::start(broker, &topic).await;
        wait_for_ack(&late, &topic, &ack).await;
        let stats = p.ingest_stats().await;
        assert!(stats["acks_published"].as_u64().unwrap() >= 3, "{stats}");
        late.stop().await;
        recorder.stop().await;
        p.stop().await;
    })
    .await;
}

/// A gateway whose resends into a gap were lost too stores nothing, so no commit would make
/// its ack due: the ack of a gateway with a recent gap goes out again unasked, and stops
/// once the gap is filled.
#[tokio::test]
async fn the_ack_of_a_gateway_with_a_gap_goes_out_again_until_the_gap_fills() {
    use fieldlink_platform::ingest::GAP_ACK_INTERVAL;
    use fieldlink_wire::Ack;
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let gateways = enrolled(&p, 29, 1).await;
        let (id, password) = &gateways[0];
        let topic = Topics::new(id).ack;
        let broker = format!("{}:{}", p.mqtt.host, p.mqtt.port).parse().unwrap();
        let recorder = fieldlink_testkit::Recorder::start(broker, &topic).await;
        publish_batches(
            &p.mqtt,
            id,
            Some(password),
            &[batch(id, 1, 5), batch(id, 3, 5)],
        )
        .await;
        let gap = Ack {
            stored_through: 1,
            missing: vec![(2, 2)],
            stored_max: Some(3),
        };
        wait_for_ack(&recorder, &topic, &gap).await;
        let published = recorder.on(&topic).len();
        // Nothing more is stored, yet the same ack comes again.
        let again = recorder
            .wait_for(GAP_ACK_INTERVAL * 3, |m| m.len() > published)
            .await;
        assert!(
            again,
            "the ack of a gateway with an open gap was not published again"
        );
        assert_eq!(last_ack(&recorder, &topic), Some(gap));

        publish_batches(&p.mqtt, id, Some(password), &[batch(id, 2, 5)]).await;
        let filled = Ack {
            stored_through: 3,
            missing: vec![],
            stored_max: Some(3),
        };
        wait_for_ack(&recorder, &topic, &filled).await;
        let settled = recorder.on(&topic).len();
        tokio::time::sleep(GAP_ACK_INTERVAL * 2).await;
        assert_eq!(recorder.on(&topic).len(), settled, "no gap, no repeat");
        recorder.stop().await;
        p.stop().await;
    })
    .await;
}
