//! Alarms end to end through the platform: a gateway publishing over the in-process broker,
//! rules and a webhook channel made through the API, and a real HTTP receiver in this test
//! that records what arrives, answers 500 or hangs when told to. Each raise and clear
//! arrives once, in DESIGN.md's JSON; a platform restart while a notification is pending
//! loses nothing; a receiver that hangs never holds up the ingest.

use crate::support::{TestPlatform, bounded, code, config, connect};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use fieldlink_platform::MqttUrl;
use fieldlink_platform::api::Created;
use fieldlink_platform::store::alarms::{AlarmEvent, EventState};
use fieldlink_testkit::PlatformClient;
use fieldlink_wire::{
    Batch, DeviceHealth, DeviceMeta, GatewayState, Meta, PointMeta, Sample, Status, Topics, Value,
};
use serde_json::{Value as Json, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the receiver answers.
const ANSWER_OK: u8 = 0;
const ANSWER_500: u8 = 1;
const ANSWER_HANG: u8 = 2;

/// One request the receiver took: its `X-Fieldlink-Delivery` and its JSON body.
type Request = (Option<String>, Json);

/// What the receiver got, and how it answers (the UI's tests send to it too).
#[derive(Clone, Default)]
pub(crate) struct Received {
    requests: Arc<Mutex<Vec<Request>>>,
    answer: Arc<AtomicU8>,
}

impl Received {
    pub(crate) fn bodies(&self) -> Vec<Json> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Waits (bounded by `limit`) until `done` holds for the bodies received.
    pub(crate) async fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&[Json]) -> bool,
    ) -> Vec<Json> {
        let deadline = Instant::now() + limit;
        loop {
            let bodies = self.bodies();
            if done(&bodies) {
                return bodies;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {limit:?}; received {bodies:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn hook(State(received): State<Received>, headers: HeaderMap, body: String) -> StatusCode {
    let delivery = headers
        .get("x-fieldlink-delivery")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match received.answer.load(Ordering::SeqCst) {
        ANSWER_500 => StatusCode::INTERNAL_SERVER_ERROR,
        ANSWER_HANG => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            StatusCode::OK
        }
        _ => {
            let json = serde_json::from_str(&body).unwrap_or(Json::Null);
            received.requests.lock().unwrap().push((delivery, json));
            StatusCode::OK
        }
    }
}

/// The receiver on 127.0.0.1; its URL.
pub(crate) async fn receiver(received: &Received) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(received.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), task)
}

/// The gateway's side: publishes its catalogue and status, and batches of temperatures.
struct Press {
    gateway: String,
    password: String,
    seq: u64,
}

impl Press {
    async fn publish(
        &mut self,
        mqtt: &MqttUrl,
        status: Option<&Status>,
        temperatures: &[(i64, f64)],
    ) {
        let topics = Topics::new(&self.gateway);
        let mut client = connect(mqtt, &self.gateway, Some((&self.gateway, &self.password)))
            .await
            .unwrap();
        if let Some(status) = status {
            client
                .publish(&topics.status, serde_json::to_vec(status).unwrap(), true)
                .await;
        }
        if !temperatures.is_empty() {
            self.seq += 1;
            let samples = temperatures
                .iter()
                .map(|&(ts, v)| {
                    Sample::good("press-1".into(), "temperature".into(), ts, Value::Float(v))
                })
                .collect();
            let batch = Batch {
                gateway: self.gateway.clone(),
                seq: self.seq,
                samples,
            };
            client.publish_batch(&self.gateway, &batch).await;
        }
        client.disconnect().await;
    }
}

fn online(press_connected: bool) -> Status {
    Status {
        state: GatewayState::Online,
        devices: vec![DeviceHealth {
            name: "press-1".into(),
            protocol: "modbus-tcp".into(),
            connected: press_connected,
            last_good_ms: Some(fieldlink_platform::clock::now_ms() - 60_000),
            errors: 0,
            last_error: None,
        }],
        ..Status::offline()
    }
}

/// A platform whose alarm channels may reach this test's receiver, an enterprise with one
/// gateway that published its catalogue, and the enterprise's client of the API.
async fn site(dir: &std::path::Path) -> (TestPlatform, Press, PlatformClient, String) {
    let mut cfg = config(dir);
    cfg.allow_private_webhooks = true;
    let p = TestPlatform::start_with(cfg).await;
    let c = code(901);
    p.register(&c, "auto-parts", "洪山区", false).await;
    let (gateway, password) = p.enroll(&p.token(&c, 1).await, "line-1").await;
    let mut press = Press {
        gateway,
        password,
        seq: 0,
    };
    let topics = Topics::new(&press.gateway);
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
    let mut client = connect(
        &p.mqtt,
        &press.gateway,
        Some((&press.gateway, &press.password)),
    )
    .await
    .unwrap();
    client
        .publish(&topics.meta, serde_json::to_vec(&meta).unwrap(), true)
        .await;
    client.disconnect().await;
    press.publish(&p.mqtt, Some(&online(true)), &[]).await;
    let owner = p.client.enterprise_client(&c).await.unwrap();
    // The catalogue is stored before a rule can name its points.
    let deadline = Instant::now() + Duration::from_secs(10);
    while p
        .client
        .gateway(&press.gateway)
        .await
        .unwrap()
        .meta
        .is_none()
    {
        assert!(Instant::now() < deadline, "no catalogue stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (p, press, owner, c)
}

async fn create(owner: &PlatformClient, path: &str, body: Json) -> i64 {
    let (status, answer) = owner.post_json(path, &body).await.unwrap();
    assert_eq!(status, reqwest::StatusCode::CREATED, "{path}: {answer}");
    serde_json::from_value::<Created>(answer).unwrap().id
}

async fn events(owner: &PlatformClient, code: &str) -> Vec<AlarmEvent> {
    let answer = owner
        .get_json(&format!("/api/v1/enterprises/{code}/alarms?state=all"))
        .await
        .unwrap();
    serde_json::from_value(answer).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raises_and_clears_reach_the_webhook_once_within_seconds() {
    bounded(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let (mut p, mut press, owner, c) = site(dir.path()).await;
        let received = Received::default();
        let (url, server) = receiver(&received).await;
        let channel = create(&owner, &format!("/api/v1/enterprises/{c}/channels"),
            json!({"name": "值班群", "kind": "webhook", "url": url})).await;
        let gateway = press.gateway.clone();
        let rule = |name: &str, kind: &str, extra: Json| {
            let mut body = json!({"name": name, "gateway": gateway, "kind": kind,
                                  "severity": "critical", "channels": [channel]});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            body
        };
        let rules = format!("/api/v1/enterprises/{c}/alarm-rules");
        create(&owner, &rules, rule("炉温过高", "high",
            json!({"device": "press-1", "point": "temperature", "threshold": 100, "hysteresis": 5}))).await;
        // Unknown gateway, device or point: 400 with the reason.
        for (extra, reason) in [
            (json!({"gateway": "no-such-gateway", "device": "press-1", "point": "temperature", "threshold": 1}), "unknown gateway"),
            (json!({"device": "press-9", "point": "temperature", "threshold": 1}), "unknown device"),
            (json!({"device": "press-1", "point": "pressure", "threshold": 1}), "unknown point"),
        ] {
            let (status, answer) = owner.post_json(&rules, &rule("x", "high", extra)).await.unwrap();
            assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{answer}");
            assert!(answer["detail"].as_str().unwrap().contains(reason), "{answer}");
        }

        // 90, then 120: raised; measured from the batch's publication.
        let now = fieldlink_platform::clock::now_ms();
        let published = Instant::now();
        press.publish(&p.mqtt, None, &[(now - 1000, 90.0), (now, 120.0)]).await;
        let bodies = received.wait_for(Duration::from_secs(5), "the raise within 5 s", |b| !b.is_empty()).await;
        eprintln!("sample published to webhook received: {:?}", published.elapsed());
        let raised = &bodies[0];
        let keys: Vec<&str> = raised.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = ["enterprise", "rule", "severity", "state", "gateway", "device", "point", "value", "ts", "message"];
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected, "DESIGN.md's shape: {raised}");
        assert_eq!((raised["state"].as_str(), raised["value"].as_f64(), raised["ts"].as_i64()), (Some("raised"), Some(120.0), Some(now)));
        assert_eq!(raised["severity"], "critical");
        assert!(raised["message"].as_str().unwrap().contains("炉温过高"), "{raised}");

        // Acknowledged, then cleared below 95.
        let event = events(&owner, &c).await[0].clone();
        assert_eq!(event.state, EventState::Active);
        let (status, acked) = owner.post_json(&format!("/api/v1/alarms/{}/ack", event.id), &json!({})).await.unwrap();
        assert_eq!(status, reqwest::StatusCode::OK, "{acked}");
        assert_eq!(acked["state"], "acknowledged");
        press.publish(&p.mqtt, None, &[(now + 1000, 97.0), (now + 2000, 94.0)]).await;
        let bodies = received.wait_for(Duration::from_secs(5), "the clear", |b| b.len() >= 2).await;
        assert_eq!((bodies[1]["state"].as_str(), bodies[1]["value"].as_f64()), (Some("cleared"), Some(94.0)));
        assert_eq!(events(&owner, &c).await[0].state, EventState::Cleared);

        // The clock's kinds: the device down in the status, then the gateway offline.
        create(&owner, &rules, rule("冲压机断线", "device_down", json!({"device": "press-1", "for_seconds": 1}))).await;
        create(&owner, &rules, rule("网关离线", "gateway_offline", json!({"for_seconds": 1}))).await;
        press.publish(&p.mqtt, Some(&online(false)), &[]).await;
        let bodies = received.wait_for(Duration::from_secs(8), "device down", |b| b.iter().any(|n| n["rule"] == "冲压机断线")).await;
        let down = bodies.iter().find(|n| n["rule"] == "冲压机断线").unwrap();
        assert_eq!(down["state"], "raised");
        press.publish(&p.mqtt, Some(&Status::offline()), &[]).await;
        received.wait_for(Duration::from_secs(8), "gateway offline", |b| b.iter().any(|n| n["rule"] == "网关离线")).await;
        press.publish(&p.mqtt, Some(&online(true)), &[(now + 3000, 50.0)]).await;
        received
            .wait_for(Duration::from_secs(8), "both cleared", |b| {
                ["冲压机断线", "网关离线"].iter().all(|r| b.iter().any(|n| n["rule"] == *r && n["state"] == "cleared"))
            })
            .await;

        // Once each: no raise or clear twice, whatever the retries and ticks.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let requests = received.requests.lock().unwrap().clone();
        let mut deliveries: Vec<String> = requests.iter().map(|(d, _)| d.clone().expect("X-Fieldlink-Delivery")).collect();
        let count = deliveries.len();
        deliveries.sort();
        deliveries.dedup();
        assert_eq!(deliveries.len(), count, "a notification delivered twice: {requests:#?}");
        assert_eq!(count, 6, "{requests:#?}");
        server.abort();
        p.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_notification_survives_a_restart_and_a_hanging_receiver_never_holds_up_the_ingest()
 {
    bounded(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let (mut p, mut press, owner, c) = site(dir.path()).await;
        let received = Received::default();
        let (url, server) = receiver(&received).await;
        let channel = create(&owner, &format!("/api/v1/enterprises/{c}/channels"),
            json!({"name": "值班群", "kind": "webhook", "url": url})).await;
        create(&owner, &format!("/api/v1/enterprises/{c}/alarm-rules"),
            json!({"name": "炉温过高", "gateway": press.gateway, "device": "press-1", "point": "temperature",
                   "kind": "high", "threshold": 100, "severity": "warning", "channels": [channel]})).await;

        // The receiver fails: the raise stays queued across a restart of the platform.
        received.answer.store(ANSWER_500, Ordering::SeqCst);
        let now = fieldlink_platform::clock::now_ms();
        press.publish(&p.mqtt, None, &[(now, 150.0)]).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while events(&owner, &c).await.is_empty() {
            assert!(Instant::now() < deadline, "no event raised");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        p.stop_for_restart().await;
        received.answer.store(ANSWER_OK, Ordering::SeqCst);
        let mut cfg = config(dir.path());
        cfg.allow_private_webhooks = true;
        p = TestPlatform::start_with(cfg).await;
        let bodies = received.wait_for(Duration::from_secs(20), "the raise after the restart", |b| !b.is_empty()).await;
        assert_eq!(bodies[0]["state"], "raised");

        // The receiver hangs: the clear's send waits, the ingest does not.
        received.answer.store(ANSWER_HANG, Ordering::SeqCst);
        press.publish(&p.mqtt, None, &[(now + 1000, 50.0)]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        for i in 0..20 {
            press.publish(&p.mqtt, None, &[(now + 2000 + i * 100, 60.0)]).await;
        }
        let owner = p.client.enterprise_client(&c).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stored = p.client.gateway(&press.gateway).await.unwrap().gateway.batches;
            if stored == press.seq {
                break;
            }
            assert!(Instant::now() < deadline, "the ingest stalled behind a hanging receiver: {stored} of {}", press.seq);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(received.bodies().len(), 1, "the clear is still on its way");
        assert_eq!(events(&owner, &c).await[0].state, EventState::Cleared);
        server.abort();
        p.stop().await;
    })
    .await;
}
