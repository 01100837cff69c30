//! End-to-end acknowledgement against a real broker (the in-process one): the publisher with
//! `delete_on = "platform_ack"` deletes a batch only when the platform's ack covers it, sends
//! again what an ack lists as missing or what no ack covered within `ack_timeout`, and keeps
//! the outbox within its cap while no ack ever comes. A client of the broker plays the
//! platform: it records the batches it receives and publishes the retained acks.

use crate::faults::{Agent, loopback, write_config};
use fieldlink::config::DeleteOn;
use fieldlink::outbox::SharedOutbox;
use fieldlink::publisher::{self, PublisherContext};
use fieldlink::telemetry::Telemetry;
use fieldlink_broker::Broker;
use fieldlink_outbox::{MIN_MAX_BYTES, Outbox, OutboxOptions};
use fieldlink_testkit::{CountingDevice, counting_config, loss_report};
use fieldlink_wire::{Ack, GatewayState, Status, Topics};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A client of the broker playing the platform: counts each batch it receives, by `seq`,
/// stores it unless told to drop what arrives (as a broker's overflowing queue would), and
/// publishes acks.
struct Platform {
    client: AsyncClient,
    topics: Topics,
    received: Arc<Mutex<BTreeMap<u64, u32>>>,
    stored: Arc<Mutex<BTreeMap<u64, Vec<u8>>>>,
    dropping: Arc<AtomicBool>,
    /// Batches that arrived while dropping.
    dropped: Arc<AtomicU64>,
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
        let stored = Arc::new(Mutex::new(BTreeMap::new()));
        let dropping = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let (subscribed_tx, mut subscribed_rx) = watch::channel(false);
        let task = {
            let (received, stored, dropping, dropped) = (
                received.clone(),
                stored.clone(),
                dropping.clone(),
                dropped.clone(),
            );
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
                            if dropping.load(Ordering::SeqCst) {
                                dropped.fetch_add(1, Ordering::SeqCst);
                            } else {
                                stored
                                    .lock()
                                    .expect("stored")
                                    .insert(seq, p.payload.to_vec());
                            }
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
            stored,
            dropping,
            dropped,
            task,
        }
    }

    /// The ack of what is stored, as the platform computes it.
    fn ack_of_store(&self) -> Ack {
        Ack::of_stored(self.stored.lock().expect("stored").keys().copied())
    }

    /// The counting device's values in the stored batches.
    fn stored_values(&self) -> Vec<u64> {
        let stored = self.stored.lock().expect("stored");
        let mut values = Vec::new();
        for payload in stored.values() {
            let batch = fieldlink_wire::decode_batch(payload).expect("a valid batch");
            for sample in batch.samples {
                if let fieldlink_wire::Value::Int(v) = sample.value {
                    values.push(v as u64);
                }
            }
        }
        values
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
            status_refresh: Duration::from_secs(60),
            meta_rx,
            configs_tx: watch::channel(None).0,
            config_state_rx: watch::channel(Default::default()).1,
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

/// kill -9 while batches are sent (the broker took them) but not acknowledged, and the
/// platform never stored them (as when a broker's queue for the ingest overflows): after
/// the restart they go out again, and the platform ends up with every sample but those
/// read in the last flush interval before the kill (which were never durable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_batches_await_the_platform_ack_loses_nothing_at_the_platform() {
    const POLL_MS: u64 = 10;
    // flush_interval 200 ms + batch_max_delay 100 ms, and slack for a loaded machine.
    const WINDOW_MS: u64 = 200 + 100 + 400;
    let gw = "gw-kill-ack";
    let broker = Broker::start(loopback()).expect("broker");
    let device = CountingDevice::start(loopback()).await;
    let platform = Platform::start(broker.addr(), gw).await;
    platform.dropping.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = counting_config(gw, device.addr(), broker.addr(), &format!("{POLL_MS}ms")).replace(
        "[publish]\n",
        "[publish]\ndelete_on = \"platform_ack\"\nack_timeout = \"60s\"\n",
    );
    let config = write_config(dir.path(), &toml);
    let agent = Agent::start(&config);
    assert!(
        platform
            .wait_for(Duration::from_secs(15), |r| r.len() >= 20)
            .await,
        "no batches reach the platform"
    );
    agent.signal("KILL");
    let status = tokio::task::spawn_blocking(move || agent.wait(Duration::from_secs(10)))
        .await
        .expect("join");
    assert!(!status.success());
    let killed_at = device.served();
    let dropped = platform.received().len();
    assert!(platform.stored.lock().expect("stored").is_empty());

    platform.dropping.store(false, Ordering::SeqCst);
    let agent = Agent::start(&config);
    // The platform acks what it stores, as after each commit, until it holds everything read
    // up to well after the kill.
    let mut caught_up = false;
    for _ in 0..150 {
        platform.ack(&platform.ack_of_store()).await;
        if platform
            .stored_values()
            .iter()
            .any(|&v| v > killed_at + 100)
        {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(caught_up, "the restarted agent delivered nothing new");
    agent.signal("TERM");
    let status = tokio::task::spawn_blocking(move || agent.wait(Duration::from_secs(30)))
        .await
        .expect("join");
    assert!(status.success(), "fieldlink exited with {status}");
    let served = device.stop().await;
    // What the stopped agent sent last is stored once it arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        let values = platform.stored_values();
        if values.iter().any(|&v| v + 1 >= served) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let values = platform.stored_values();
    let (missing, _) = loss_report(&values, served);
    let window = WINDOW_MS / POLL_MS;
    let unexplained: Vec<u64> = missing
        .iter()
        .copied()
        .filter(|&v| !(v <= killed_at && v + window > killed_at))
        .collect();
    eprintln!(
        "kill -9 with {dropped} batches sent and dropped by the platform: {served} reads answered, \
         {} stored, {} missing (all within {WINDOW_MS} ms before the kill: {})",
        values.len(),
        missing.len(),
        unexplained.is_empty()
    );
    assert!(
        unexplained.is_empty(),
        "samples lost at the platform outside the last flush interval before the kill: {:?}",
        &unexplained[..unexplained.len().min(20)]
    );
}

/// `[publish] delete_on` and `ack_timeout` are checked like every key: a wrong value is an
/// error naming the file, line and column.
#[test]
fn delete_on_and_ack_timeout_are_validated_with_their_position() {
    let parse = |publish: &str| {
        fieldlink::config::parse(
            &format!("[gateway]\nid = \"gw\"\n[publish]\n{publish}\n"),
            "test.toml",
        )
    };
    let config = parse("").expect("defaults");
    assert_eq!(config.publish.delete_on, None, "decided at start");
    assert_eq!(config.publish.ack_timeout, Duration::from_secs(60));
    let config = parse("delete_on = \"puback\"\nack_timeout = \"5m\"").expect("valid");
    assert_eq!(config.publish.delete_on, Some(DeleteOn::Puback));
    assert_eq!(config.publish.ack_timeout, Duration::from_secs(300));
    let errors = parse("delete_on = \"platform\"\nack_timeout = \"0s\"")
        .expect_err("invalid")
        .to_string();
    assert!(
        errors.contains("test.toml:4:13")
            && errors.contains("`delete_on` must be one of \"platform_ack\", \"puback\""),
        "{errors}"
    );
    assert!(
        errors.contains("test.toml:5:15") && errors.contains("`ack_timeout` must be longer than 0"),
        "{errors}"
    );
}

/// The platform stores and acks nothing for 4 s while the broker takes every batch (its
/// queue for the ingest overflowing), then comes back: everything ends stored and deleted
/// from the outbox, and the resends stay proportionate to what was lost, with no storm:
/// about one resend per batch lost, not the outbox every timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_platform_outage_what_it_missed_is_sent_again_about_once_without_a_storm() {
    let gw = "gw-outage";
    let broker = Broker::start(loopback()).expect("broker");
    let platform = Platform::start(broker.addr(), gw).await;
    let gateway = Gateway::start(broker.addr(), gw, Duration::from_secs(1), 64 << 20);
    let mut appended = 0;
    // 50 batches a second; the platform acks every 200 ms while it is up.
    for (secs, up) in [(2, true), (4, false), (4, true)] {
        platform.dropping.store(!up, Ordering::SeqCst);
        for tick in 0..secs * 50 {
            appended = gateway.append(gw, 200).await;
            if up && tick % 10 == 0 {
                platform.ack(&platform.ack_of_store()).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut drained = false;
    for _ in 0..100 {
        platform.ack(&platform.ack_of_store()).await;
        if gateway.stored().await.is_empty() {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stored: Vec<u64> = platform
        .stored
        .lock()
        .expect("stored")
        .keys()
        .copied()
        .collect();
    assert_eq!(stored, (1..=appended).collect::<Vec<_>>(), "all stored");
    assert!(drained, "the outbox empties: {:?}", gateway.stored().await);
    let received = platform.received();
    let sends: u64 = received.values().map(|&n| u64::from(n)).sum();
    let resent = sends - received.len() as u64;
    let dropped = platform.dropped.load(Ordering::SeqCst);
    let mqtt = &gateway.telemetry.mqtt;
    eprintln!(
        "platform outage 4 s of 10, ack_timeout 1 s: {appended} batches, {sends} sends, \
         {resent} resent ({} after missing, {} after timeout), {dropped} dropped by the \
         platform, {} acks",
        mqtt.resent_missing.load(Ordering::Relaxed),
        mqtt.resent_timeout.load(Ordering::Relaxed),
        mqtt.platform_acks.load(Ordering::Relaxed),
    );
    // What the outage dropped goes out again; resends during the outage (timeouts,
    // doubling while silent) add a little; never a multiple of the whole outbox.
    assert!(
        resent <= 2 * dropped,
        "{resent} resends for {dropped} batches dropped"
    );
    gateway.stop().await;
}
