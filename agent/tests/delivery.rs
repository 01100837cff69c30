//! End-to-end acknowledgement against a real broker (the in-process one): the publisher with
//! `delete_on = "platform_ack"` deletes a batch only when the platform's ack covers it, sends
//! again what an ack lists as missing or what no ack covered within `ack_timeout`, and keeps
//! the outbox within its cap while no ack ever comes. A client of the broker plays the
//! platform: it records the batches it receives and publishes the retained acks.

use crate::faults::loopback;
use fieldlink::config::DeleteOn;
use fieldlink::outbox::SharedOutbox;
use fieldlink::publisher::{self, PublisherContext};
use fieldlink::telemetry::Telemetry;
use fieldlink_broker::Broker;
use fieldlink_outbox::{MIN_MAX_BYTES, Outbox, OutboxOptions};
use fieldlink_wire::{Ack, GatewayState, Status, Topics};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A client of the broker playing the platform: counts each batch it receives, by `seq`,
/// and publishes acks.
struct Platform {
    client: AsyncClient,
    topics: Topics,
    received: Arc<Mutex<BTreeMap<u64, u32>>>,
    task: JoinHandle<()>,
}

impl Platform {
    async fn start(broker: SocketAddr, gateway: &str) -> Self {
        let mut options = MqttOptions::new(
            format!("platform-{gateway}"),
            broker.ip().to_string(),
            broker.port(),
        );
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = AsyncClient::new(options, 64);
        let topics = Topics::new(gateway);
        client
            .subscribe(topics.data.as_str(), QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        let received = Arc::new(Mutex::new(BTreeMap::new()));
        let (subscribed_tx, mut subscribed_rx) = watch::channel(false);
        let task = {
            let received = received.clone();
            tokio::spawn(async move {
                loop {
                    match events.poll().await {
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            let _ = subscribed_tx.send(true);
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let batch: serde_json::Value =
                                serde_json::from_slice(&p.payload).expect("a batch");
                            let seq = batch["seq"].as_u64().expect("seq");
                            *received.lock().expect("received").entry(seq).or_default() += 1;
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            })
        };
        tokio::time::timeout(Duration::from_secs(10), subscribed_rx.wait_for(|s| *s))
            .await
            .expect("SUBACK within 10 s")
            .expect("platform task");
        Platform {
            client,
            topics,
            received,
            task,
        }
    }

    /// Publishes `ack`, retained, as the platform does after a commit.
    async fn ack(&self, ack: &Ack) {
        let payload = serde_json::to_vec(ack).expect("ack JSON");
        self.client
            .publish(self.topics.ack.as_str(), QoS::AtLeastOnce, true, payload)
            .await
            .expect("publish the ack");
    }

    /// How many times each `seq` arrived.
    fn received(&self) -> BTreeMap<u64, u32> {
        self.received.lock().expect("received").clone()
    }

    /// Waits (bounded) until `done` holds for what arrived.
    async fn wait_for(&self, limit: Duration, done: impl Fn(&BTreeMap<u64, u32>) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if done(&self.received()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        done(&self.received())
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A publisher running against `broker` on its own outbox.
struct Gateway {
    outbox: SharedOutbox,
    telemetry: Arc<Telemetry>,
    appended_tx: watch::Sender<u64>,
    finish: CancellationToken,
    task: Option<JoinHandle<()>>,
    _state: tempfile::TempDir,
}

impl Gateway {
    fn start(broker: SocketAddr, gateway: &str, ack_timeout: Duration, cap: u64) -> Self {
        let state = tempfile::tempdir().expect("tempdir");
        let (outbox, _) = Outbox::open(OutboxOptions::new(state.path().join("outbox.redb"), cap))
            .expect("outbox");
        let outbox = SharedOutbox::new(outbox);
        let toml = format!(
            "[gateway]\nid = \"{gateway}\"\n[platform]\nmqtt = \"mqtt://{broker}\"\n\
             [publish]\nmax_inflight = 8\ndelete_on = \"platform_ack\"\n"
        );
        let config = fieldlink::config::parse(&toml, "test.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.publish.delete_on, Some(DeleteOn::PlatformAck));
        let telemetry = Arc::new(Telemetry::new(gateway.to_owned(), outbox.clone(), cap));
        let (appended_tx, appended_rx) = watch::channel(0);
        let (_meta_tx, meta_rx) = watch::channel(fieldlink::meta(&[]));
        let finish = CancellationToken::new();
        let task = tokio::spawn(publisher::run(PublisherContext {
            gateway: gateway.to_owned(),
            platform: config.platform,
            max_inflight: 8,
            backlog_share: 0.5,
            shutdown_timeout: Duration::from_secs(5),
            delete_on: DeleteOn::PlatformAck,
            ack_timeout,
            outbox: outbox.clone(),
            appended_rx,
            finish: finish.clone(),
            birth: Status {
                state: GatewayState::Online,
                ..Status::offline()
            },
            meta_rx,
            telemetry: telemetry.clone(),
        }));
        Gateway {
            outbox,
            telemetry,
            appended_tx,
            finish,
            task: Some(task),
            _state: state,
        }
    }

    /// Appends one batch of `len` payload bytes, as the batcher does.
    async fn append(&self, gateway: &str, len: usize) -> u64 {
        let gateway = gateway.to_owned();
        let seq = self
            .outbox
            .run(move |o| {
                o.append(1, |seq| {
                    let pad = "x".repeat(len);
                    format!(r#"{{"gateway":"{gateway}","seq":{seq},"samples":[],"pad":"{pad}"}}"#)
                        .into_bytes()
                })
            })
            .await
            .expect("append");
        self.appended_tx.send_replace(seq);
        seq
    }

    /// The seqs in the outbox, whatever their state.
    async fn stored(&self) -> Vec<u64> {
        let records = self
            .outbox
            .run(|o| o.oldest(0, usize::MAX))
            .await
            .expect("read");
        records.into_iter().map(|r| r.seq).collect()
    }

    /// Waits (bounded) until the outbox holds exactly `seqs`.
    async fn wait_for_stored(&self, limit: Duration, seqs: &[u64]) -> Vec<u64> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let stored = self.stored().await;
            if stored == seqs || tokio::time::Instant::now() >= deadline {
                return stored;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        self.finish.cancel();
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("the publisher stops within 15 s")
            .expect("the publisher does not panic");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Batches stay in the outbox after their PUBACK and leave only as the platform's acks
/// cover them (through `stored_through`, and behind a gap through `stored_max`); a
/// missing range is sent again, once, and nothing the platform stored is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_leave_the_outbox_only_when_the_platform_ack_covers_them_and_missing_ones_are_resent()
 {
    let gw = "gw-ack";
    let broker = Broker::start(loopback()).expect("broker");
    let platform = Platform::start(broker.addr(), gw).await;
    // A long timeout: only the acks decide here.
    let gateway = Gateway::start(broker.addr(), gw, Duration::from_secs(60), 64 << 20);
    for _ in 0..20 {
        gateway.append(gw, 100).await;
    }
    assert!(
        platform
            .wait_for(Duration::from_secs(10), |r| r.len() == 20)
            .await,
        "every batch reaches the platform: {:?}",
        platform.received()
    );
    let all: Vec<u64> = (1..=20).collect();
    // PUBACKed, not acknowledged: nothing is deleted.
    assert_eq!(gateway.stored().await, all);
    let awaiting = || gateway.outbox.stats().awaiting_ack_batches;
    for _ in 0..100 {
        if awaiting() == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(awaiting(), 20, "all 20 sent and awaiting the platform");
    // Status and metrics show them.
    let report = fieldlink::status::report(&gateway.telemetry, &Default::default());
    assert_eq!(report.outbox.awaiting_ack_batches, 20);
    assert!(
        report
            .outbox
            .oldest_awaiting_ack_age_s
            .is_some_and(|age| age < 30.0)
    );
    let mut metrics = String::new();
    prometheus_client::encoding::text::encode(
        &mut metrics,
        &fieldlink::metrics::registry(gateway.telemetry.clone()),
    )
    .expect("metrics");
    assert!(
        metrics.contains("fieldlink_outbox_awaiting_ack_batches 20"),
        "{metrics}"
    );
    assert!(metrics.contains("fieldlink_outbox_oldest_awaiting_ack_seconds "));

    // Stored through 10; 12-13 lost by the broker; 11 and 14-20 stored.
    let ack = Ack {
        stored_through: 10,
        missing: vec![(12, 13)],
        stored_max: Some(20),
    };
    platform.ack(&ack).await;
    assert_eq!(
        gateway
            .wait_for_stored(Duration::from_secs(10), &[12, 13])
            .await,
        vec![12, 13]
    );
    // The missing ones go out again once past the grace for batches still on their way
    // (5 s): the platform repeats its ack, as it does after each commit, until they arrive.
    let mut resent = false;
    for _ in 0..30 {
        platform.ack(&ack).await;
        if platform
            .wait_for(Duration::from_millis(500), |r| r[&12] == 2 && r[&13] == 2)
            .await
        {
            resent = true;
            break;
        }
    }
    assert!(resent, "12 and 13 sent again: {:?}", platform.received());
    platform
        .ack(&Ack {
            stored_through: 20,
            missing: vec![],
            stored_max: None,
        })
        .await;
    assert_eq!(
        gateway.wait_for_stored(Duration::from_secs(10), &[]).await,
        Vec::<u64>::new()
    );
    let received = platform.received();
    let twice: Vec<u64> = received
        .iter()
        .filter(|&(_, &n)| n > 1)
        .map(|(&s, _)| s)
        .collect();
    assert_eq!(twice, vec![12, 13], "only the missing ones went out twice");
    let mqtt = &gateway.telemetry.mqtt;
    assert_eq!(mqtt.resent_missing.load(Ordering::Relaxed), 2);
    assert_eq!(mqtt.acknowledged_batches.load(Ordering::Relaxed), 20);
    let report = fieldlink::status::report(&gateway.telemetry, &Default::default());
    assert_eq!(report.outbox.awaiting_ack_batches, 0);
    assert_eq!(report.outbox.oldest_awaiting_ack_age_s, None);
    assert_eq!(report.mqtt.platform_acknowledged_batches, 20);
    assert_eq!(report.mqtt.resent_batches, 2);
    gateway.stop().await;
}

/// A platform that never acks (an older one): batches go out again after `ack_timeout`,
/// less and less often while the silence lasts, and the outbox stays within its cap,
/// evicting the oldest as in any outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_acks_batches_go_out_again_after_ack_timeout_and_the_outbox_stays_within_its_cap() {
    let gw = "gw-silent";
    let broker = Broker::start(loopback()).expect("broker");
    let platform = Platform::start(broker.addr(), gw).await;
    let cap = MIN_MAX_BYTES;
    let gateway = Gateway::start(broker.addr(), gw, Duration::from_secs(1), cap);
    let started = tokio::time::Instant::now();
    let mut appended = 0u64;
    let mut largest_file = 0;
    // 256 bytes every 10 ms for 6 s: about 150 kB, more than a full 256 KiB store holds
    // (about a fifth of its cap, see the outbox docs), but each batch stays over a second.
    while started.elapsed() < Duration::from_secs(6) {
        appended = gateway.append(gw, 256).await;
        largest_file = largest_file.max(gateway.outbox.stats().file_bytes);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = gateway.outbox.stats();
    assert!(
        largest_file <= cap,
        "the file reached {largest_file} > {cap}"
    );
    assert!(
        stats.evicted_batches > 0,
        "the cap evicts as in any outage: {stats:?}"
    );
    let received = platform.received();
    let sends: u32 = received.values().sum();
    let resent = u64::from(sends) - received.len() as u64;
    let mqtt = &gateway.telemetry.mqtt;
    let timed_out = mqtt.resent_timeout.load(Ordering::Relaxed);
    eprintln!(
        "no acks for 6 s, ack_timeout 1 s: appended {appended}, received {} distinct, \
         {sends} sends ({resent} resent), {timed_out} timed out, {} evicted",
        received.len(),
        stats.evicted_batches
    );
    assert!(timed_out > 0, "sent batches timed out");
    assert!(resent > 0, "and went out again");
    // Every batch goes out once, and again at most about once per timeout (1, 2, 4 s...):
    // the resends stay below three times what was appended.
    assert!(
        u64::from(sends) < 3 * appended,
        "{sends} sends for {appended} batches"
    );
    gateway.stop().await;
}
