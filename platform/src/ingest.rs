//! The MQTT ingest: reads the gateways' topics from the broker and stores them.
//!
//! Two MQTT connections:
//! - **data**: a persistent session (clean session off, fixed client id) subscribed to
//!   `fieldlink/v1/+/data` at QoS 1 with manual acknowledgements. The broker queues
//!   batches while the platform is down. Received batches go, in arrival order, to one
//!   writer task that decodes a group of them (up to [`GROUP_MAX`]) and stores the group
//!   in one transaction; only after it commits are their PUBACKs sent. A batch that fails
//!   to store is not acknowledged, so the broker delivers it again; a batch stored twice
//!   is dropped by its `(gateway, seq)`.
//! - **state**: a clean session subscribed to `+/status` and `+/meta` at QoS 0. Both
//!   are retained, so every (re)connect delivers the current state of every gateway;
//!   QoS 0 because rumqttd hands a QoS 1 subscription at most 100 retained messages. It
//!   also publishes the gateways' acks: after a group of batches commits, each gateway the
//!   group touched (stored or duplicate batches) is due an ack; every [`ACK_INTERVAL`] the
//!   due acks are read from the database ([`Store::acks`]: the same on every instance,
//!   never going back) and published retained at QoS 1 on `fieldlink/v1/{gateway}/ack`, so
//!   a gateway gets at most a few a second however many batches it sends; the ack of a
//!   gateway with a gap detected in the last 10 minutes goes out again every
//!   [`GAP_ACK_INTERVAL`], so one whose resends were lost too learns it at once. It publishes the
//!   configurations saved through the API the same way: on the same tick, the newest
//!   version of each gateway not yet published goes out retained at QoS 1 on
//!   `fieldlink/v1/{gateway}/config` and is marked published; at every (re)connect the
//!   newest version of every gateway goes out again, since a broker restarted without
//!   persistence has lost its retained messages (a gateway takes the version it runs
//!   again as no news). Any instance may publish: they all publish the database's newest.
//!
//! Payloads are of any version the contract has (decoded by `fieldlink_wire`, which caps
//! the decompressed size and the samples): JSON, one zstd frame holding it, or packed (a
//! zstd frame with the shipped dictionary holding the batch as columns). Rejected (and
//! acknowledged, so never delivered again), each counted in [`IngestStats`] and logged:
//! payloads that do not decode (bad JSON, bad or oversized zstd frames, damaged packed
//! content, a payload version or dictionary newer than this build), batches whose
//! `gateway` is not their topic's, batches from gateways that are not enrolled.
//!
//! A sample dated more than [`FUTURE_MARGIN_MS`] ahead of the platform's clock when its
//! batch is stored (a gateway whose clock is wrong, say year 3000) is not stored: it would
//! stay its point's latest value until its date, and skew charts and daily counts. The rest
//! of its batch is stored as usual. Such samples are counted (`future_ts`) and logged, once
//! per gateway, with a WARN that names the gateway.

use crate::clock::now_ms;
use crate::config::MqttUrl;
use crate::store::{BatchOutcome, IncomingBatch, Store};
use fieldlink_wire::topic::{self, DATA_FILTER, META_FILTER, STATUS_FILTER, TopicKind};
use fieldlink_wire::{Backoff, ConfigMessage, Framing, Meta, Status, Topics, decode_batch};
use rumqttc::{
    AsyncClient, Event, MqttOptions, Outgoing, Packet, Publish, QoS, TlsConfiguration, Transport,
};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The most batches stored in one transaction.
pub const GROUP_MAX: usize = 100;
/// How long shutdown waits for the batches in hand to be stored and acknowledged.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Received publishes waiting for the writer; above any broker's in-flight window
/// (rumqttd 100, mosquitto 20 by default, EMQX 32).
const QUEUE: usize = 4096;
/// The largest payload accepted (the embedded broker's limit).
const MAX_PAYLOAD: usize = fieldlink_broker::MAX_PAYLOAD_SIZE;
/// How often acknowledgements that did not fit the client's request queue are retried.
const ACK_RETRY: Duration = Duration::from_millis(5);
/// How far ahead of the platform's clock a sample's time may be. NTP-less gateways drift
/// by seconds to minutes; a sample further ahead has a wrong clock behind it, and is not
/// stored (see the module's note).
pub const FUTURE_MARGIN_MS: i64 = 10 * 60 * 1000;
/// How often due acks are published: at most this often per gateway.
pub const ACK_INTERVAL: Duration = Duration::from_millis(250);
/// How often the acks of gateways with recent gaps go out again, unasked.
pub const GAP_ACK_INTERVAL: Duration = Duration::from_secs(5);
/// A gap older than this no longer gets its ack repeated: by then it is a batch the
/// gateway no longer has (evicted) or will resend after its own `ack_timeout`.
const GAP_ACK_WINDOW_MS: i64 = 10 * 60 * 1000;
/// Gateways whose acks are repeated per [`GAP_ACK_INTERVAL`], at most.
const GAP_ACK_LIMIT: u32 = 10_000;
/// Gateways named in "unknown gateway" warnings before they are no longer logged.
const WARN_ONCE_LIMIT: usize = 10_000;

/// Where and how the ingest connects.
#[derive(Debug, Clone)]
pub struct IngestContext {
    /// The broker.
    pub broker: MqttUrl,
    /// TLS for an `mqtts://` broker (see [`crate::tls`]); `None` for plain MQTT.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Username, if the broker wants one.
    pub username: Option<String>,
    /// Password, if the broker wants one.
    pub password: Option<String>,
    /// The data session's client id (the state session appends `-state`).
    pub client_id: String,
    /// An MQTT shared-subscription group (`$share/GROUP/...`) for several ingest instances.
    pub share_group: Option<String>,
    /// Where batches go.
    pub store: Store,
    /// Counters, shared with the API.
    pub counters: Arc<IngestCounters>,
    /// The time zone of the daily counts, minutes east of UTC.
    pub utc_offset_minutes: i32,
    /// Stops the ingest (after storing and acknowledging what it holds).
    pub shutdown: CancellationToken,
    /// Notified after each group stored (the alarm delivery wakes on it).
    pub stored: Arc<tokio::sync::Notify>,
}

/// Live counters of the ingest.
#[derive(Debug, Default)]
pub struct IngestCounters {
    batches_received: AtomicU64,
    batches_stored: AtomicU64,
    samples_stored: AtomicU64,
    duplicates: AtomicU64,
    gateway_mismatch: AtomicU64,
    unknown_gateway: AtomicU64,
    undecodable: AtomicU64,
    compressed: AtomicU64,
    packed: AtomicU64,
    gaps: AtomicU64,
    missing_batches: AtomicU64,
    late_batches: AtomicU64,
    future_ts: AtomicU64,
    crash_windows: AtomicU64,
    acks_published: AtomicU64,
    configs_published: AtomicU64,
    stale_gaps: AtomicU64,
    store_errors: AtomicU64,
    status_updates: AtomicU64,
    meta_updates: AtomicU64,
    state_rejected: AtomicU64,
    data_connected: AtomicU64,
    state_connected: AtomicU64,
}

/// A snapshot of [`IngestCounters`] since the platform started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IngestStats {
    /// Data messages received.
    pub batches_received: u64,
    /// Batches stored.
    pub batches_stored: u64,
    /// Samples stored.
    pub samples_stored: u64,
    /// Batches dropped as already stored.
    pub duplicates: u64,
    /// Batches rejected because their `gateway` is not their topic's.
    pub gateway_mismatch: u64,
    /// Batches rejected because their gateway is not enrolled.
    pub unknown_gateway: u64,
    /// Payloads rejected as not a batch.
    pub undecodable: u64,
    /// Batches received compressed (and decoded): zstd-framed JSON or packed.
    pub compressed: u64,
    /// Of those, batches received packed (payload version 2).
    pub packed: u64,
    /// Gaps detected (a `seq` jump). Most are filled soon after: by the gateway's backlog
    /// (sent live-first), or, with a shared subscription, by a batch another instance
    /// stored a moment later. `stale_gaps` counts what stays missing.
    pub gaps: u64,
    /// Batches missing in those gaps when detected.
    pub missing_batches: u64,
    /// Late batches that filled (part of) an open gap.
    pub late_batches: u64,
    /// Samples not stored because their time was more than [`FUTURE_MARGIN_MS`] ahead of
    /// the platform's clock (a gateway with a wrong clock).
    pub future_ts: u64,
    /// Crash windows recorded by this instance: sequence numbers an agent skipped after an
    /// unclean stop (its status's `resumed_after_crash`), not counted as missing.
    pub crash_windows: u64,
    /// Acks published to gateways (`fieldlink/v1/{gateway}/ack`) by this instance.
    pub acks_published: u64,
    /// Configs published to gateways (`fieldlink/v1/{gateway}/config`) by this instance,
    /// the same version again after each reconnect included.
    pub configs_published: u64,
    /// Missing ranges still open the grace period after their gap was detected, reported
    /// (logged) by this instance; each range is reported by one instance only. A gap that
    /// late batches split counts once per remaining range.
    pub stale_gaps: u64,
    /// Failed store transactions (retried).
    pub store_errors: u64,
    /// Statuses recorded.
    pub status_updates: u64,
    /// Catalogues recorded.
    pub meta_updates: u64,
    /// Statuses and catalogues rejected (not decodable or gateway not enrolled).
    pub state_rejected: u64,
    /// True while the data session is connected.
    pub data_connected: bool,
    /// True while the state session is connected.
    pub state_connected: bool,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl IngestCounters {
    /// Counts gaps reported as stale.
    pub(crate) fn count_stale_gaps(&self, gaps: u64) {
        add(&self.stale_gaps, gaps);
    }

    /// The counters now.
    pub fn snapshot(&self) -> IngestStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        IngestStats {
            batches_received: get(&self.batches_received),
            batches_stored: get(&self.batches_stored),
            samples_stored: get(&self.samples_stored),
            duplicates: get(&self.duplicates),
            gateway_mismatch: get(&self.gateway_mismatch),
            unknown_gateway: get(&self.unknown_gateway),
            undecodable: get(&self.undecodable),
            compressed: get(&self.compressed),
            packed: get(&self.packed),
            gaps: get(&self.gaps),
            missing_batches: get(&self.missing_batches),
            late_batches: get(&self.late_batches),
            future_ts: get(&self.future_ts),
            crash_windows: get(&self.crash_windows),
            acks_published: get(&self.acks_published),
            configs_published: get(&self.configs_published),
            stale_gaps: get(&self.stale_gaps),
            store_errors: get(&self.store_errors),
            status_updates: get(&self.status_updates),
            meta_updates: get(&self.meta_updates),
            state_rejected: get(&self.state_rejected),
            data_connected: get(&self.data_connected) > 0,
            state_connected: get(&self.state_connected) > 0,
        }
    }
}

/// Runs both sessions until `shutdown` fires and the data in hand is stored.
pub async fn run(cx: IngestContext) {
    let acks = Arc::new(DueAcks::default());
    tokio::join!(data_session(&cx, &acks), state_session(&cx, &acks));
}

/// The gateways due an ack: the writer adds those of each committed group, the state
/// session takes them every [`ACK_INTERVAL`]. Bounded by the number of gateways.
#[derive(Debug, Default)]
struct DueAcks {
    gateways: std::sync::Mutex<HashSet<String>>,
}

impl DueAcks {
    /// Makes `gateways` due an ack.
    fn add<'b>(&self, gateways: impl Iterator<Item = &'b str>) {
        let mut due = self.lock();
        for gateway in gateways {
            if !due.contains(gateway) {
                due.insert(gateway.to_owned());
            }
        }
    }

    /// Takes every due gateway.
    fn take(&self) -> Vec<String> {
        self.lock().drain().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.gateways
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn options(cx: &IngestContext, client_id: String) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, cx.broker.host.clone(), cx.broker.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(MAX_PAYLOAD + 70 * 1024, 1 << 20)
        .set_request_channel_capacity(QUEUE);
    if let Some(tls) = &cx.tls {
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.clone(),
        )));
    }
    match (&cx.username, &cx.password) {
        (Some(user), password) => {
            options.set_credentials(user.clone(), password.clone().unwrap_or_default());
        }
        (None, Some(password)) => {
            options.set_credentials(String::new(), password.clone());
        }
        (None, None) => {}
    }
    options
}

/// The backoff between reconnects, and between attempts to store a group: the MQTT link's
/// reconnect policy (250 ms doubling to 30 s), without jitter: the ingest is alone on its
/// connection, so there is no crowd to spread out.
fn ingest_backoff() -> Backoff {
    Backoff::reconnect().without_jitter()
}

/// The data session's modes: `Running` until `shutdown`, then `Draining` until the
/// writer has stored and acknowledged what it was handed (or the deadline passes), then
/// `Disconnecting` until the DISCONNECT is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataMode {
    Running,
    Draining,
    Disconnecting,
}

async fn data_session(cx: &IngestContext, acks: &Arc<DueAcks>) {
    let mut options = options(cx, cx.client_id.clone());
    // Persistent session: the broker keeps the subscription and queues QoS 1 batches
    // while the platform is away; acknowledgements wait for the database.
    options.set_clean_session(false).set_manual_acks(true);
    let filter = match &cx.share_group {
        Some(group) => format!("$share/{group}/{DATA_FILTER}"),
        None => DATA_FILTER.to_owned(),
    };
    let (client, mut events) = AsyncClient::new(options, QUEUE);
    let (publish_tx, publish_rx) = mpsc::channel(QUEUE);
    let writer_stop = CancellationToken::new();
    let mut writer = tokio::spawn(writer(
        client.clone(),
        publish_rx,
        cx.clone(),
        acks.clone(),
        writer_stop.clone(),
    ));
    let mut publish_tx = Some(publish_tx);
    let mut writer_done = false;
    let mut mode = DataMode::Running;
    let mut deadline = None;
    let mut backoff = ingest_backoff();
    loop {
        tokio::select! {
            () = cx.shutdown.cancelled(), if mode == DataMode::Running => {
                // Batches received from now on are left unacknowledged: the broker
                // delivers them again to the next session.
                publish_tx = None;
                mode = DataMode::Draining;
                deadline = Some(Instant::now() + DRAIN_TIMEOUT);
            }
            _ = &mut writer, if mode == DataMode::Draining => {
                writer_done = true;
                mode = DataMode::Disconnecting;
                if client.try_disconnect().is_err() {
                    break;
                }
            }
            () = sleep_until(deadline) => {
                tracing::warn!("ingest shutdown deadline passed; unacknowledged batches will be delivered again");
                writer_stop.cancel();
                break;
            }
            event = events.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    backoff.reset();
                    cx.counters.data_connected.store(1, Ordering::Relaxed);
                    tracing::info!(broker = %cx.broker, session_present = ack.session_present, "ingest connected (data)");
                    if let Err(e) = client.try_subscribe(filter.as_str(), QoS::AtLeastOnce) {
                        tracing::error!(error = %e, "cannot subscribe to the data topics");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    add(&cx.counters.batches_received, 1);
                    if let Some(tx) = &publish_tx
                        && tx.send(publish).await.is_err()
                    {
                        tracing::error!("the ingest writer stopped");
                        break;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    tracing::debug!(?ack, "subscribed to the data topics");
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                Ok(_) => {}
                Err(e) => {
                    cx.counters.data_connected.store(0, Ordering::Relaxed);
                    if mode != DataMode::Running {
                        break;
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(broker = %cx.broker, error = %e, retry_in = ?delay, "ingest connection (data) lost");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = cx.shutdown.cancelled() => {}
                    }
                }
            }
        }
    }
    cx.counters.data_connected.store(0, Ordering::Relaxed);
    writer_stop.cancel();
    drop(publish_tx);
    if !writer_done {
        let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    }
    tracing::info!("ingest stopped (data)");
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The gateways already named in a once-per-gateway warning, by warning.
#[derive(Default)]
struct Warned {
    unknown_gateway: HashSet<String>,
    future_ts: HashSet<String>,
}

impl Warned {
    /// True the first time `gateway` is seen in `set` (and while the set is not full).
    fn first(set: &mut HashSet<String>, gateway: &str) -> bool {
        set.len() < WARN_ONCE_LIMIT && !set.contains(gateway) && set.insert(gateway.to_owned())
    }
}

/// What a received data message turned out to be.
enum Decoded {
    /// A batch to store, and how many of its samples were dropped as dated in the future.
    Batch(IncomingBatch, usize),
    Rejected,
}

/// Stores groups of batches and acknowledges them after the commit.
///
/// The acknowledgements go through the MQTT client's request queue, which only the data
/// session's event loop empties, and that loop may itself be waiting for room in this
/// writer's queue: so the writer never waits for the request queue. Acknowledgements
/// that do not fit wait in `unacked` and are retried every [`ACK_RETRY`] (and before
/// every group), while the writer keeps taking batches.
async fn writer(
    client: AsyncClient,
    mut publish_rx: mpsc::Receiver<Publish>,
    cx: IngestContext,
    acks: Arc<DueAcks>,
    stop: CancellationToken,
) {
    let mut warned = Warned::default();
    let mut unacked: VecDeque<Publish> = VecDeque::new();
    loop {
        let first = tokio::select! {
            first = publish_rx.recv() => first,
            () = tokio::time::sleep(ACK_RETRY), if !unacked.is_empty() => {
                ack_what_fits(&client, &mut unacked);
                continue;
            }
        };
        let Some(first) = first else { break };
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match publish_rx.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        if !store_group(group, &cx, &acks, &stop, &mut warned, &mut unacked).await {
            return;
        }
        ack_what_fits(&client, &mut unacked);
    }
    // The data session keeps polling while it drains, so the rest goes out now.
    for publish in unacked {
        if let Err(e) = client.ack(&publish).await {
            tracing::warn!(error = %e, "cannot acknowledge a batch; the broker will deliver it again");
        }
    }
}

/// Queues the acknowledgements that fit in the client's request queue, oldest first.
fn ack_what_fits(client: &AsyncClient, unacked: &mut VecDeque<Publish>) {
    while let Some(publish) = unacked.front() {
        match client.try_ack(publish) {
            Ok(()) => {
                unacked.pop_front();
            }
            Err(rumqttc::ClientError::TryRequest(_)) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot acknowledge a batch; the broker will deliver it again");
                unacked.pop_front();
            }
        }
    }
}

/// Decodes and stores one group, then queues its acknowledgements in `unacked` and makes
/// its gateways due an ack; false if stopped before it was stored.
async fn store_group(
    group: Vec<Publish>,
    cx: &IngestContext,
    acks: &DueAcks,
    stop: &CancellationToken,
    warned: &mut Warned,
    unacked: &mut VecDeque<Publish>,
) -> bool {
    let counters = cx.counters.clone();
    let horizon = now_ms().saturating_add(FUTURE_MARGIN_MS);
    let decoded = tokio::task::spawn_blocking(move || {
        let decoded: Vec<Decoded> = group
            .iter()
            .map(|p| decode(p, &counters, horizon))
            .collect();
        (group, decoded)
    })
    .await;
    let Ok((group, decoded)) = decoded else {
        tracing::error!("decoding a group of batches panicked");
        return false;
    };
    let batches: Arc<[IncomingBatch]> = decoded
        .into_iter()
        .filter_map(|d| match d {
            Decoded::Batch(b, future) => {
                if future > 0 && Warned::first(&mut warned.future_ts, &b.gateway) {
                    tracing::warn!(gateway = %b.gateway, samples = future, margin_s = FUTURE_MARGIN_MS / 1000,
                        "samples dated in the future are not stored (the gateway's clock is wrong: set up NTP); counted in future_ts, logged once per gateway");
                }
                Some(b)
            }
            Decoded::Rejected => None,
        })
        .collect();
    if !batches.is_empty() {
        let mut delay = ingest_backoff();
        loop {
            let now = now_ms();
            match cx
                .store
                .ingest(batches.clone(), now, cx.utc_offset_minutes)
                .await
            {
                Ok(outcomes) => {
                    // The group may have raised or cleared alarms: the delivery looks now
                    // rather than at its next poll.
                    cx.stored.notify_one();
                    record(&cx.counters, &batches, &outcomes, warned);
                    acks.add(
                        batches
                            .iter()
                            .zip(&outcomes)
                            .filter(|(_, o)| !matches!(o, BatchOutcome::UnknownGateway))
                            .map(|(b, _)| b.gateway.as_str()),
                    );
                    break;
                }
                Err(e) => {
                    add(&cx.counters.store_errors, 1);
                    let wait = delay.next_delay();
                    tracing::error!(error = %e, retry_in = ?wait, batches = batches.len(), "cannot store batches; they stay unacknowledged");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = stop.cancelled() => return false,
                    }
                }
            }
        }
    }
    unacked.extend(group);
    true
}

/// Decodes one data message; samples dated after `horizon` are dropped and counted.
fn decode(publish: &Publish, counters: &IngestCounters, horizon: i64) -> Decoded {
    let topic = publish.topic.as_str();
    let Some((gateway, TopicKind::Data)) = topic::parse(topic) else {
        add(&counters.undecodable, 1);
        tracing::warn!(%topic, "message on an unexpected topic dropped");
        return Decoded::Rejected;
    };
    match decode_batch(&publish.payload) {
        Ok(batch) if batch.gateway != gateway => {
            add(&counters.gateway_mismatch, 1);
            tracing::warn!(topic_gateway = %gateway, batch_gateway = %batch.gateway, seq = batch.seq,
                "batch rejected: its gateway is not its topic's");
            Decoded::Rejected
        }
        Ok(batch) if i64::try_from(batch.seq).is_err() => {
            add(&counters.undecodable, 1);
            tracing::warn!(%gateway, seq = batch.seq, "batch rejected: seq out of range");
            Decoded::Rejected
        }
        Ok(mut batch) => {
            match Framing::of(&publish.payload) {
                Framing::Zstd => add(&counters.compressed, 1),
                Framing::Packed => {
                    add(&counters.compressed, 1);
                    add(&counters.packed, 1);
                }
                Framing::Json | Framing::Unknown(_) => {}
            }
            let received = batch.samples.len();
            batch.samples.retain(|s| s.ts <= horizon);
            let future = received - batch.samples.len();
            add(&counters.future_ts, future as u64);
            Decoded::Batch(
                IncomingBatch {
                    gateway: batch.gateway,
                    seq: batch.seq,
                    samples: batch.samples,
                },
                future,
            )
        }
        Err(e) => {
            add(&counters.undecodable, 1);
            tracing::warn!(%gateway, error = %e, "undecodable batch dropped");
            Decoded::Rejected
        }
    }
}

fn record(
    counters: &IngestCounters,
    batches: &[IncomingBatch],
    outcomes: &[BatchOutcome],
    warned: &mut Warned,
) {
    for (batch, outcome) in batches.iter().zip(outcomes) {
        match outcome {
            BatchOutcome::Stored {
                samples,
                gap,
                filled,
            } => {
                add(&counters.batches_stored, 1);
                add(&counters.samples_stored, *samples);
                if let Some(gap) = gap {
                    add(&counters.gaps, 1);
                    add(&counters.missing_batches, gap.missing_batches());
                    // Usually filled within moments; crate::gap_watch warns of those that stay.
                    tracing::debug!(gateway = %batch.gateway, first_missing = gap.first_seq,
                        last_missing = gap.last_seq, "gap in batch sequence");
                }
                if *filled {
                    add(&counters.late_batches, 1);
                }
            }
            BatchOutcome::Duplicate => {
                add(&counters.duplicates, 1);
                tracing::debug!(gateway = %batch.gateway, seq = batch.seq, "duplicate batch dropped");
            }
            BatchOutcome::UnknownGateway => {
                add(&counters.unknown_gateway, 1);
                if Warned::first(&mut warned.unknown_gateway, &batch.gateway) {
                    tracing::warn!(gateway = %batch.gateway, "batches from a gateway that is not enrolled are dropped");
                }
            }
        }
    }
}

async fn state_session(cx: &IngestContext, acks: &DueAcks) {
    let mut options = options(cx, format!("{}-state", cx.client_id));
    options.set_clean_session(true);
    let (client, mut events) = AsyncClient::new(options, QUEUE);
    let mut backoff = ingest_backoff();
    let mut stop_deadline = None;
    let mut ack_ticker = tokio::time::interval(ACK_INTERVAL);
    ack_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut configs_due = ConfigsDue::Every(None);
    let mut gap_acks = tokio::time::interval(GAP_ACK_INTERVAL);
    gap_acks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cx.shutdown.cancelled(), if stop_deadline.is_none() => {
                // The acks due now go out before the DISCONNECT; a gateway whose last ack
                // is lost sends its batches again after its ack timeout (duplicates are
                // dropped) and gets the ack then.
                publish_acks(cx, &client, acks).await;
                stop_deadline = Some(Instant::now() + Duration::from_secs(2));
                if client.try_disconnect().is_err() {
                    break;
                }
            }
            _ = ack_ticker.tick(), if stop_deadline.is_none() => {
                publish_acks(cx, &client, acks).await;
                publish_configs(cx, &client, &mut configs_due).await;
            }
            _ = gap_acks.tick(), if stop_deadline.is_none() => {
                // A gateway whose resends into a gap were lost as well stores nothing, so
                // nothing would make its ack due: it is made due here, and the gateway
                // sends the gap's batches again without waiting for its ack timeout.
                let since = now_ms() - GAP_ACK_WINDOW_MS;
                match cx.store.gateways_with_recent_gaps(since, GAP_ACK_LIMIT).await {
                    Ok(gateways) => acks.add(gateways.iter().map(String::as_str)),
                    Err(e) => tracing::warn!(error = %e, "cannot read the gateways with gaps"),
                }
            }
            () = sleep_until(stop_deadline) => break,
            event = events.poll() => match event {
                Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff.reset();
                    cx.counters.state_connected.store(1, Ordering::Relaxed);
                    tracing::info!(broker = %cx.broker, "ingest connected (status and meta)");
                    let filters = [STATUS_FILTER, META_FILTER]
                        .map(|f| rumqttc::SubscribeFilter::new(f.to_owned(), QoS::AtMostOnce));
                    if let Err(e) = client.try_subscribe_many(filters) {
                        tracing::error!(error = %e, "cannot subscribe to the status topics");
                    }
                    configs_due = ConfigsDue::Every(None);
                }
                Ok(Event::Incoming(Packet::Publish(publish))) if stop_deadline.is_none() => {
                    handle_state(cx, &publish).await;
                }
                Ok(_) => {}
                Err(e) => {
                    cx.counters.state_connected.store(0, Ordering::Relaxed);
                    if stop_deadline.is_some() {
                        break;
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(broker = %cx.broker, error = %e, retry_in = ?delay, "ingest connection (status) lost");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = cx.shutdown.cancelled() => {}
                    }
                }
            }
        }
    }
    cx.counters.state_connected.store(0, Ordering::Relaxed);
    tracing::info!("ingest stopped (status and meta)");
}

/// Publishes the acks of the gateways due one, as the database has them; those that do not
/// fit in the client's queue (or whose ack cannot be read now) stay due.
async fn publish_acks(cx: &IngestContext, client: &AsyncClient, acks: &DueAcks) {
    let due = acks.take();
    if due.is_empty() {
        return;
    }
    let current = match cx.store.acks(due.clone()).await {
        Ok(current) => current,
        Err(e) => {
            tracing::warn!(error = %e, gateways = due.len(), "cannot read the gateways' acks; retrying");
            acks.add(due.iter().map(String::as_str));
            return;
        }
    };
    for (gateway, ack) in current {
        let payload = match serde_json::to_vec(&ack) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::error!(%gateway, error = %e, "cannot encode an ack");
                continue;
            }
        };
        let topic = Topics::new(&gateway).ack;
        match client.try_publish(topic, QoS::AtLeastOnce, true, payload) {
            Ok(()) => add(&cx.counters.acks_published, 1),
            Err(_) => acks.add(std::iter::once(gateway.as_str())),
        }
    }
}

/// Which gateways' configs are to be published on the next tick.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ConfigsDue {
    /// The newest of every gateway (after a connect), by gateway id after this one.
    Every(Option<String>),
    /// The newest of the gateways whose newest is not published yet.
    Unpublished,
}

/// Configs published per tick: a city's worth goes out over a few seconds after a
/// reconnect instead of filling the client's queue at once.
const CONFIGS_PER_TICK: u32 = 500;

/// Publishes the configs due (see [`ConfigsDue`]), at most [`CONFIGS_PER_TICK`]; each one
/// handed to the client is marked published.
async fn publish_configs(cx: &IngestContext, client: &AsyncClient, due: &mut ConfigsDue) {
    let (every, after) = match due {
        ConfigsDue::Every(after) => (true, after.clone()),
        ConfigsDue::Unpublished => (false, None),
    };
    let configs = match cx
        .store
        .configs_to_publish(every, after.as_deref(), CONFIGS_PER_TICK)
        .await
    {
        Ok(configs) => configs,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the configs to publish; retrying");
            return;
        }
    };
    for config in &configs {
        let message = ConfigMessage::new(&config.gateway_id, config.version, config.toml.clone());
        let topic = Topics::new(&config.gateway_id).config;
        if client
            .try_publish(topic, QoS::AtLeastOnce, true, message.to_json())
            .is_err()
        {
            // The client's queue is full: the rest go on the next tick.
            return;
        }
        add(&cx.counters.configs_published, 1);
        if every {
            *due = ConfigsDue::Every(Some(config.gateway_id.clone()));
        }
        if let Err(e) = cx
            .store
            .mark_config_published(&config.gateway_id, config.version, now_ms())
            .await
        {
            tracing::warn!(gateway = %config.gateway_id, error = %e, "cannot mark a config published; it goes out again");
        }
    }
    if configs.len() < CONFIGS_PER_TICK as usize {
        *due = ConfigsDue::Unpublished;
    }
}

/// Records the crash window a status announces (every status of the agent's run after the
/// crash carries it; the first to arrive records it).
async fn record_crash_window(cx: &IngestContext, gateway: &str, window: (u64, u64), now: i64) {
    match cx.store.record_crash_window(gateway, window, now).await {
        Ok(Some(true)) => {
            add(&cx.counters.crash_windows, 1);
            tracing::info!(%gateway, first_seq = window.0, last_seq = window.1,
                "the gateway restarted after an unclean stop; its skipped sequence numbers are a crash window, not missing batches");
        }
        Ok(_) => {}
        Err(e) => tracing::error!(%gateway, error = %e, "cannot record a crash window"),
    }
}

async fn handle_state(cx: &IngestContext, publish: &Publish) {
    if publish.payload.is_empty() {
        return;
    }
    let topic = publish.topic.as_str();
    let Some((gateway, kind)) = topic::parse(topic) else {
        return;
    };
    let now = now_ms();
    let result = match kind {
        TopicKind::Status => match serde_json::from_slice::<Status>(&publish.payload) {
            Ok(status) => {
                let crash_window = status.resumed_after_crash.and_then(|r| r.window());
                let stored = cx
                    .store
                    .update_status(gateway, status, now)
                    .await
                    .map(|known| (known, &cx.counters.status_updates));
                if let (Ok((true, _)), Some(window)) = (&stored, crash_window) {
                    record_crash_window(cx, gateway, window, now).await;
                }
                stored
            }
            Err(e) => {
                add(&cx.counters.state_rejected, 1);
                tracing::warn!(%gateway, error = %e, "undecodable status dropped");
                return;
            }
        },
        TopicKind::Meta => match serde_json::from_slice::<Meta>(&publish.payload)
            .and_then(|m| serde_json::to_value(&m))
        {
            Ok(meta) => cx
                .store
                .update_meta(gateway, meta, now, cx.utc_offset_minutes)
                .await
                .map(|known| (known, &cx.counters.meta_updates)),
            Err(e) => {
                add(&cx.counters.state_rejected, 1);
                tracing::warn!(%gateway, error = %e, "undecodable catalogue dropped");
                return;
            }
        },
        TopicKind::Data | TopicKind::Ack | TopicKind::Config => return,
    };
    match result {
        Ok((true, counter)) => add(counter, 1),
        Ok((false, _)) => {
            add(&cx.counters.state_rejected, 1);
            tracing::debug!(%gateway, "status or catalogue of a gateway that is not enrolled ignored");
        }
        Err(e) => tracing::error!(%gateway, error = %e, "cannot store a status or catalogue"),
    }
}
