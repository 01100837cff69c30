//! The counting subscriber: a real MQTT client on `fieldlink/v1/+/data` that counts the
//! batches and samples delivered, cheaply enough to keep up with a million samples a second
//! on a shared core: it does not build `Sample`s, it finds each sample's `"ts":` key in the
//! JSON (zstd and packed payloads decoded to it first) and reads the number after it.
//!
//! Optionally it keeps a log of every batch (arrival time, `seq`, samples) and
//! a latency histogram (arrival time minus `ts`) of the samples stamped at or after a
//! given instant, for the backlog scenario.
//!
//! Started with [`Subscriber::start_acking`], it plays the platform's side of the
//! end-to-end acknowledgement for agents with `delete_on = "platform_ack"`: it keeps each
//! gateway's received numbers and publishes the gateway's retained `ack` at most every
//! [`ACK_PERIOD`], as the platform does after its commits; a number received twice is a
//! resend, counted with its bytes.

use fieldlink_wire::topic::DATA_FILTER;
use fieldlink_wire::{Ack, Topics, payload_json};
use memchr::memmem;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Latencies are counted in 1 ms buckets up to this many ms; longer ones in the last.
const LATENCY_BUCKETS_MS: usize = 600_000;
/// How often an acking subscriber publishes the acks of the gateways that sent batches
/// since the last ones (the platform's ingest: every 250 ms at most).
pub const ACK_PERIOD: Duration = Duration::from_millis(250);

/// One batch as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// When it arrived, ms since the epoch.
    pub at_ms: i64,
    /// Its `seq`.
    pub seq: u64,
    /// Its samples.
    pub samples: u64,
}

/// What the subscriber has counted.
#[derive(Default)]
pub struct Tally {
    /// Batches received.
    pub batches: AtomicU64,
    /// Samples in them.
    pub samples: AtomicU64,
    /// Payload bytes as received (compressed if the agent compresses).
    pub payload_bytes: AtomicU64,
    /// Payloads that were not a readable batch.
    pub undecodable: AtomicU64,
    /// Log every batch (see [`Subscriber::arrivals`]).
    log: AtomicBool,
    arrivals: Mutex<Vec<Arrival>>,
    /// Samples stamped at or after this (ms since the epoch) go into the latency histogram.
    latency_from_ms: AtomicI64,
    latency: Mutex<Vec<u64>>,
    /// Each gateway's received numbers, and whether it needs an ack (only when acking).
    received: Option<Mutex<HashMap<String, Received>>>,
    /// Batches received again: resends (only when acking).
    pub resent_batches: AtomicU64,
    /// Payload bytes of the resends.
    pub resent_bytes: AtomicU64,
    /// Acks published (only when acking).
    pub acks: AtomicU64,
    /// Payload bytes of the acks.
    pub ack_bytes: AtomicU64,
}

/// One gateway's numbers, as an acking subscriber has received them.
#[derive(Default)]
struct Received {
    seqs: BTreeSet<u64>,
    changed: bool,
}

/// A running counting subscriber.
pub struct Subscriber {
    tally: Arc<Tally>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
    acker: Option<JoinHandle<()>>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Subscriber {
    /// Connects to `broker`, subscribes at QoS 1, and returns once the subscription is
    /// acknowledged. With `log`, every batch's arrival is kept.
    pub async fn start(broker: SocketAddr, log: bool) -> anyhow::Result<Subscriber> {
        Self::start_with(broker, log, false).await
    }

    /// The same, publishing each gateway's `ack` of what it received (see the module).
    pub async fn start_acking(broker: SocketAddr) -> anyhow::Result<Subscriber> {
        Self::start_with(broker, false, true).await
    }

    async fn start_with(broker: SocketAddr, log: bool, acking: bool) -> anyhow::Result<Subscriber> {
        let id = format!("bench-subscriber-{}", std::process::id());
        let mut options = MqttOptions::new(id, broker.ip().to_string(), broker.port());
        options
            .set_max_packet_size(64 << 20, 1 << 20)
            .set_keep_alive(Duration::from_secs(60))
            .set_clean_session(true);
        let (client, mut events) = AsyncClient::new(options, 64);
        let tally = Arc::new(Tally {
            log: AtomicBool::new(log),
            latency_from_ms: AtomicI64::new(i64::MAX),
            received: acking.then(Mutex::default),
            ..Tally::default()
        });
        let stop = CancellationToken::new();
        let acker =
            acking.then(|| tokio::spawn(publish_acks(client.clone(), tally.clone(), stop.clone())));
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        let task = {
            let (tally, stop) = (tally.clone(), stop.clone());
            tokio::spawn(async move {
                let mut subscribed_tx = Some(subscribed_tx);
                let ts_key = memmem::Finder::new(b"\"ts\":");
                loop {
                    let event = tokio::select! {
                        () = stop.cancelled() => return,
                        e = events.poll() => e,
                    };
                    match event {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            let _ = client.subscribe(DATA_FILTER, QoS::AtLeastOnce).await;
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            if let Some(tx) = subscribed_tx.take() {
                                let _ = tx.send(());
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            tally.count(&p.topic, &p.payload, &ts_key);
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
        };
        tokio::time::timeout(Duration::from_secs(10), subscribed_rx)
            .await
            .map_err(|_| anyhow::anyhow!("the subscriber could not subscribe at {broker}"))??;
        Ok(Subscriber {
            tally,
            stop,
            task: Some(task),
            acker,
        })
    }

    /// The counters.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Samples received so far.
    pub fn samples(&self) -> u64 {
        self.tally.samples.load(Ordering::Relaxed)
    }

    /// The batches logged so far (only with `log`).
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.tally
            .arrivals
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// From now on, samples stamped at or after `from_ms` go into the latency histogram.
    pub fn measure_latency_from(&self, from_ms: i64) {
        if let Ok(mut h) = self.tally.latency.lock()
            && h.is_empty()
        {
            h.resize(LATENCY_BUCKETS_MS + 1, 0);
        }
        self.tally.latency_from_ms.store(from_ms, Ordering::Relaxed);
    }

    /// Stops adding to the latency histogram.
    pub fn stop_latency(&self) {
        self.tally
            .latency_from_ms
            .store(i64::MAX, Ordering::Relaxed);
    }

    /// The latency (ms) at percentile `p` of the histogram, and the samples in it.
    pub fn latency_percentile(&self, p: f64) -> (f64, u64) {
        let Ok(h) = self.tally.latency.lock() else {
            return (f64::NAN, 0);
        };
        let total: u64 = h.iter().sum();
        if total == 0 {
            return (f64::NAN, 0);
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (ms, &n) in h.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return (ms as f64, total);
            }
        }
        (LATENCY_BUCKETS_MS as f64, total)
    }

    /// Disconnects.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(acker) = self.acker.take() {
            let _ = acker.await;
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Tally {
    fn count(&self, topic: &str, payload: &[u8], ts_key: &memmem::Finder<'_>) {
        let Ok(json) = payload_json(payload) else {
            self.undecodable.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let latency_from = self.latency_from_ms.load(Ordering::Relaxed);
        let log = self.log.load(Ordering::Relaxed);
        let now = now_ms();
        let mut samples = 0u64;
        let mut latency = (latency_from != i64::MAX)
            .then(|| self.latency.lock().ok())
            .flatten();
        for at in ts_key.find_iter(&json) {
            samples += 1;
            let Some(h) = latency.as_deref_mut() else {
                continue;
            };
            let ts = leading_integer(&json[at + 5..]);
            if ts >= latency_from {
                let ms = usize::try_from(now - ts).unwrap_or(0);
                h[ms.min(LATENCY_BUCKETS_MS)] += 1;
            }
        }
        drop(latency);
        if samples == 0 {
            self.undecodable.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.samples.fetch_add(samples, Ordering::Relaxed);
        self.payload_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let seq = || {
            memmem::find(&json, b"\"seq\":").map_or(0, |at| {
                u64::try_from(leading_integer(&json[at + 6..])).unwrap_or(0)
            })
        };
        if let Some(received) = &self.received
            && let Some((gateway, _)) = fieldlink_wire::topic::parse(topic)
            && let Ok(mut received) = received.lock()
        {
            let gateway = received.entry(gateway.to_owned()).or_default();
            if gateway.seqs.insert(seq()) {
                gateway.changed = true;
            } else {
                self.resent_batches.fetch_add(1, Ordering::Relaxed);
                self.resent_bytes
                    .fetch_add(payload.len() as u64, Ordering::Relaxed);
            }
        }
        if log {
            let seq = seq();
            if let Ok(mut arrivals) = self.arrivals.lock() {
                arrivals.push(Arrival {
                    at_ms: now,
                    seq,
                    samples,
                });
            }
        }
    }
}

/// The non-negative integer at the start of `text` (after optional spaces).
fn leading_integer(text: &[u8]) -> i64 {
    text.iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| b.is_ascii_digit())
        .fold(0i64, |n, b| {
            n.saturating_mul(10).saturating_add(i64::from(b - b'0'))
        })
}

/// Every [`ACK_PERIOD`] until `stop`: the retained `ack` of each gateway that sent batches
/// since the last one, of what it received.
async fn publish_acks(client: AsyncClient, tally: Arc<Tally>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(ACK_PERIOD);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let acks: Vec<(String, Vec<u8>)> = match tally.received.as_ref().map(Mutex::lock) {
            Some(Ok(mut received)) => received
                .iter_mut()
                .filter_map(|(gateway, r)| {
                    if !std::mem::take(&mut r.changed) {
                        return None;
                    }
                    let ack = Ack::of_stored(r.seqs.iter().copied());
                    Some((Topics::new(gateway).ack, serde_json::to_vec(&ack).ok()?))
                })
                .collect(),
            _ => return,
        };
        for (topic, payload) in acks {
            let bytes = payload.len() as u64;
            if client
                .publish(topic, QoS::AtLeastOnce, true, payload)
                .await
                .is_ok()
            {
                tally.acks.fetch_add(1, Ordering::Relaxed);
                tally.ack_bytes.fetch_add(bytes, Ordering::Relaxed);
            }
        }
    }
}
