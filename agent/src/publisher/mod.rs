//! The MQTT publisher: the single task that sends outbox batches to the broker and deletes
//! each one only after its PUBACK.
//!
//! rumqttc's own retransmit queue lives in memory and is cleared when the broker answers
//! with no session, and `publish()` does not return the packet id. So the outbox is the
//! source of truth: every connection starts a fresh rumqttc client with a clean session,
//! each publish request is matched to the packet id rumqttc reports when it writes it
//! (`Outgoing::Publish`), each PUBACK to that id, and after any reconnect everything not
//! acknowledged is sent again from the outbox.
//!
//! What a PUBACK does depends on `[publish] delete_on`. With `puback` it deletes the batch.
//! With `platform_ack` it only marks the batch sent (it leaves the in-flight window); the
//! publisher subscribes to the gateway's retained `ack` topic on every connect and applies
//! each ack to the outbox, which deletes what the platform stored. Sent batches that an ack
//! lists as missing, or that no ack covers within `ack_timeout`, are sent again by the
//! *resend* lane: oldest first, behind live data, within the backlog's share of the window
//! (see the `plan` module).
//!
//! The retained `status` goes out at every connect (the birth), again whenever a device's
//! health changes and at least every `[status] refresh` (see the `refresh` module), and as
//! `offline` at a clean stop; the broker publishes the `offline` will for an unclean one.

mod delivered;
mod outage;
mod plan;
mod refresh;
pub mod tls;

use crate::config::{DeleteOn, PlatformConfig};
use crate::outbox::{SharedOutbox, StoreError, oldest_awaiting_ack_age};
use crate::telemetry::{DeviceTelemetry, Telemetry};
use delivered::Delivered;
use fieldlink_outbox::{PlatformAck, Record};
use fieldlink_wire::{Ack, Backoff, ConfigMessage, ConfigState, Meta, Status, Topics};
use outage::OutageLog;
use plan::SendPlan;
use refresh::{Marks, StatusRefresh};
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, Transport,
};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use tls::TlsSetupError;

/// How long a CONNECT may take before the attempt is abandoned.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A broker that acknowledges nothing for this long is treated as a lost connection.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the final offline status and DISCONNECT may take.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);
/// A batch the broker took less than this long ago is not sent again when an ack lists it
/// as missing: live first sends newer batches before older ones, so the platform may store
/// a newer one and publish its ack while an older one is still on its way through the
/// broker. The timeout still covers it if it was lost. (At most `ack_timeout`.)
const MISSING_GRACE: Duration = Duration::from_secs(5);
/// While the platform publishes no ack at all (down, or a platform that publishes none),
/// the timeout after which sent batches go out again doubles with each round of resends
/// that no ack answered, up to 2^this times `ack_timeout` (16×), so that a silent platform
/// does not get the whole outbox again every `ack_timeout`. Any ack sets it back.
const SILENT_DOUBLINGS: u32 = 4;

/// What the publisher is handed.
pub struct PublisherContext {
    /// The gateway id: MQTT client id and topic level.
    pub gateway: String,
    /// The broker and credentials.
    pub platform: PlatformConfig,
    /// Batches in flight at once.
    pub max_inflight: u16,
    /// The backlog's share of the in-flight window while live data flows.
    pub backlog_share: f64,
    /// How long to keep publishing once `finish` fires.
    pub shutdown_timeout: Duration,
    /// When a sent batch leaves the outbox: at its PUBACK, or once the platform's ack
    /// covers it.
    pub delete_on: DeleteOn,
    /// With `DeleteOn::PlatformAck`: how long a sent batch may await an ack before it is
    /// sent again.
    pub ack_timeout: Duration,
    /// Where batches come from.
    pub outbox: SharedOutbox,
    /// The newest appended `seq`; changes wake the publisher.
    pub appended_rx: watch::Receiver<u64>,
    /// Fires when nothing more will be appended: publish what is left, then exit.
    pub finish: CancellationToken,
    /// The `online` status published (retained) on every connect, when a device's health
    /// changes and every `status_refresh`, each time with the outbox's counts and the
    /// devices' health filled in. Its `resumed_after_crash` goes into this run's `offline`
    /// statuses too: the will and the one said at the end.
    pub birth: Status,
    /// The longest time between two statuses (`[status] refresh`).
    pub status_refresh: Duration,
    /// The catalogue, published (retained) on every connect and whenever it changes.
    pub meta_rx: watch::Receiver<Meta>,
    /// Where the payloads received on the gateway's `config` topic go (the newest wins).
    pub configs_tx: watch::Sender<Option<Vec<u8>>>,
    /// The config state each status reports; a change causes a status.
    pub config_state_rx: watch::Receiver<ConfigState>,
    /// The agent's counters.
    pub telemetry: Arc<Telemetry>,
}

/// The publisher's modes.
///
/// `Connecting` → `Live` on CONNACK; `Live` → `Connecting` (after a backoff) when the
/// connection fails or the broker stops acknowledging; either → `Draining` when `finish`
/// fires; `Draining` ends when the outbox is empty or the shutdown deadline passes, with an
/// `offline` status and a DISCONNECT if connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Collecting goes on; publish as it comes.
    Live,
    /// Nothing more will be appended; exit when empty or at the deadline.
    Draining {
        /// When to give up and leave the rest in the outbox.
        deadline: Instant,
    },
}

/// How a session ended.
enum SessionEnd {
    /// The connection failed or was lost; reconnect after a backoff.
    Lost(String),
    /// Draining is over.
    Done,
}

/// A publish request waiting for, or holding, a packet id.
#[derive(Debug, Clone, Copy)]
enum InFlight {
    /// A batch from the outbox.
    Batch {
        /// Its `seq`.
        seq: u64,
        /// Its sample count.
        samples: u32,
        /// True if it belongs to the backlog.
        backlog: bool,
        /// When it was handed to rumqttc.
        sent_at: Instant,
    },
    /// The retained status. One at a time: a newer one waits for its PUBACK, so that
    /// statuses never pile up in front of a slow broker (the newest goes out then).
    Status,
    /// The retained meta.
    Meta,
}

/// Publish requests handed to rumqttc and not yet acknowledged.
#[derive(Debug, Default)]
struct Window {
    /// Requested, in order, not yet written (rumqttc writes them in request order).
    awaiting_pkid: VecDeque<InFlight>,
    /// Written, by packet id, awaiting PUBACK.
    by_pkid: HashMap<u16, InFlight>,
    /// Backlog batches among the above.
    backlog: usize,
    /// Statuses among the above.
    statuses: usize,
    /// When the last PUBACK (or the session's start) happened.
    last_progress: Option<Instant>,
}

impl Window {
    fn len(&self) -> usize {
        self.awaiting_pkid.len() + self.by_pkid.len()
    }

    fn push(&mut self, entry: InFlight) {
        match entry {
            InFlight::Batch { backlog: true, .. } => self.backlog += 1,
            InFlight::Status => self.statuses += 1,
            InFlight::Batch { .. } | InFlight::Meta => {}
        }
        if self.len() == 0 {
            self.last_progress = Some(Instant::now());
        }
        self.awaiting_pkid.push_back(entry);
    }

    fn written(&mut self, pkid: u16) {
        if let Some(entry) = self.awaiting_pkid.pop_front() {
            self.by_pkid.insert(pkid, entry);
        }
    }

    fn acked(&mut self, pkid: u16) -> Option<InFlight> {
        let entry = self.by_pkid.remove(&pkid)?;
        match entry {
            InFlight::Batch { backlog: true, .. } => self.backlog -= 1,
            InFlight::Status => self.statuses -= 1,
            InFlight::Batch { .. } | InFlight::Meta => {}
        }
        self.last_progress = Some(Instant::now());
        Some(entry)
    }

    /// The seqs of the batches in flight.
    fn seqs(&self) -> Vec<u64> {
        self.awaiting_pkid
            .iter()
            .chain(self.by_pkid.values())
            .filter_map(|e| match e {
                InFlight::Batch { seq, .. } => Some(*seq),
                InFlight::Status | InFlight::Meta => None,
            })
            .collect()
    }

    fn batches(&self) -> usize {
        self.awaiting_pkid
            .iter()
            .chain(self.by_pkid.values())
            .filter(|e| matches!(e, InFlight::Batch { .. }))
            .count()
    }

    fn stalled(&self) -> Option<Instant> {
        (self.len() > 0)
            .then(|| self.last_progress.map(|t| t + ACK_TIMEOUT))
            .flatten()
    }
}

/// Marks the publisher dead in the telemetry if its task ends other than by draining
/// (a panic), so `/healthz` and the watchdog see it.
struct AliveGuard {
    telemetry: Arc<Telemetry>,
    finished: bool,
}

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.telemetry
            .mqtt
            .connected
            .store(false, Ordering::Relaxed);
        if !self.finished {
            self.telemetry
                .publisher_alive
                .store(false, Ordering::Relaxed);
        }
    }
}

/// Runs the publisher until draining ends.
pub async fn run(mut cx: PublisherContext) {
    let mut guard = AliveGuard {
        telemetry: cx.telemetry.clone(),
        finished: false,
    };
    publish(&mut cx).await;
    guard.finished = true;
}

async fn publish(cx: &mut PublisherContext) {
    let topics = Topics::new(&cx.gateway);
    let mut backoff = Backoff::reconnect();
    let mut mode = Mode::Live;
    let mut outage_log = OutageLog::new(cx.platform.mqtt.to_string(), outage::SUMMARY_INTERVAL);
    let mut acks = AckClock::new();
    loop {
        mode = next_mode(cx, mode);
        if let Mode::Draining { deadline } = mode
            && Instant::now() >= deadline
        {
            return;
        }
        let end = session(
            cx,
            &topics,
            &mut mode,
            &mut backoff,
            &mut outage_log,
            &mut acks,
        )
        .await;
        cx.telemetry.mqtt.connected.store(false, Ordering::Relaxed);
        cx.telemetry.mqtt.in_flight.store(0, Ordering::Relaxed);
        match end {
            SessionEnd::Done => return,
            SessionEnd::Lost(why) => {
                cx.telemetry.mqtt.reconnects.fetch_add(1, Ordering::Relaxed);
                Telemetry::set_error(&cx.telemetry.mqtt.last_error, Some(why.clone()));
                let delay = backoff.next_delay();
                outage_log.failed(&why, delay);
                let wake = match mode {
                    Mode::Draining { deadline } => deadline.min(Instant::now() + delay),
                    Mode::Live => Instant::now() + delay,
                };
                let mut beat = tokio::time::interval(Duration::from_secs(1));
                loop {
                    Telemetry::beat(&cx.telemetry.publisher_beat_ms);
                    tokio::select! {
                        () = tokio::time::sleep_until(wake) => break,
                        () = cx.finish.cancelled(), if mode == Mode::Live => break,
                        _ = beat.tick() => {}
                    }
                }
            }
        }
    }
}

fn next_mode(cx: &PublisherContext, mode: Mode) -> Mode {
    match mode {
        Mode::Live if cx.finish.is_cancelled() => Mode::Draining {
            deadline: Instant::now() + cx.shutdown_timeout,
        },
        other => other,
    }
}

fn mqtt_options(cx: &PublisherContext, topics: &Topics) -> Result<MqttOptions, TlsSetupError> {
    let platform = &cx.platform;
    let mut options = MqttOptions::new(
        cx.gateway.clone(),
        platform.mqtt.host.clone(),
        platform.mqtt.port,
    );
    options
        .set_clean_session(true)
        .set_keep_alive(platform.keep_alive)
        .set_inflight(cx.max_inflight.saturating_add(4))
        // Incoming: room for a config message over its limit, so that one is refused and
        // logged rather than taking the connection down with it.
        .set_max_packet_size(4 * ConfigMessage::MAX_BYTES, 64 << 20)
        .set_request_channel_capacity(usize::from(cx.max_inflight) + 8)
        .set_last_will(LastWill::new(
            &topics.status,
            json(&offline(&cx.birth)),
            QoS::AtLeastOnce,
            true,
        ));
    if let Some(password) = &platform.password {
        let username = platform
            .username
            .clone()
            .unwrap_or_else(|| cx.gateway.clone());
        options.set_credentials(username, password.clone());
    } else if let Some(username) = &platform.username {
        options.set_credentials(username.clone(), String::new());
    }
    if platform.mqtt.tls {
        options.set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls::client_config(platform)?),
        ));
    }
    Ok(options)
}

/// The `offline` status of the run that published `birth`. It keeps the run's
/// `resumed_after_crash`: it replaces the retained birth, and a platform that connects only
/// after this run stopped must still learn of the crash window.
fn offline(birth: &Status) -> Status {
    Status {
        resumed_after_crash: birth.resumed_after_crash,
        ..Status::offline()
    }
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Connects, then publishes until the connection is lost or draining ends.
async fn session(
    cx: &mut PublisherContext,
    topics: &Topics,
    mode: &mut Mode,
    backoff: &mut Backoff,
    outage_log: &mut OutageLog,
    acks: &mut AckClock,
) -> SessionEnd {
    let options = match mqtt_options(cx, topics) {
        Ok(o) => o,
        Err(e) => return SessionEnd::Lost(e.to_string()),
    };
    let (client, mut events) = AsyncClient::new(options, usize::from(cx.max_inflight) + 8);
    if let Err(why) = connect(&mut events, *mode).await {
        return SessionEnd::Lost(why);
    }
    outage_log.connected(&cx.gateway);
    cx.telemetry.mqtt.connected.store(true, Ordering::Relaxed);
    Telemetry::set_error(&cx.telemetry.mqtt.last_error, None);

    let stats = cx.outbox.stats();
    cx.telemetry
        .mqtt
        .backlog_at_connect
        .store(stats.batches, Ordering::Relaxed);
    cx.telemetry
        .mqtt
        .connected_at_ms
        .store(fieldlink_collector_api::clock::now_ms(), Ordering::Relaxed);
    let mut window = Window::default();
    let mut refresh = StatusRefresh::new(cx.status_refresh);
    publish_status(cx, &client, &topics.status, &mut window, &mut refresh);
    let meta = json(&*cx.meta_rx.borrow_and_update());
    if client
        .try_publish(topics.meta.as_str(), QoS::AtLeastOnce, true, meta)
        .is_ok()
    {
        window.push(InFlight::Meta);
    }
    let platform_ack = cx.delete_on == DeleteOn::PlatformAck;
    // Subscribed on every connect: the session is clean, and the retained ack and config
    // come with the subscription.
    if platform_ack && let Err(e) = client.try_subscribe(topics.ack.as_str(), QoS::AtLeastOnce) {
        return SessionEnd::Lost(format!("cannot subscribe to {}: {e}", topics.ack));
    }
    if let Err(e) = client.try_subscribe(topics.config.as_str(), QoS::AtLeastOnce) {
        return SessionEnd::Lost(format!("cannot subscribe to {}: {e}", topics.config));
    }
    let mut plan = SendPlan::at_connect(&stats, usize::from(cx.max_inflight), cx.backlog_share);
    if plan.has_backlog() {
        tracing::info!(
            backlog = plan.backlog_end - plan.backlog_next,
            "draining the backlog behind live data"
        );
    }
    let window_size = usize::from(cx.max_inflight) + 2;
    let mut delivered = Delivered::new(platform_ack);
    let mut appender_alive = true;
    let mut beat = tokio::time::interval(Duration::from_secs(1));
    // Ticks stay a second apart after a stall: they pace the statuses that changes cause.
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        Telemetry::beat(&cx.telemetry.publisher_beat_ms);
        *mode = next_mode(cx, *mode);
        if let Err(e) = fill(
            cx,
            &client,
            &topics.data,
            &mut plan,
            &mut window,
            window_size,
            &mut delivered,
        )
        .await
        {
            return SessionEnd::Lost(format!("outbox: {e}"));
        }
        if let Mode::Draining { deadline } = *mode {
            // The outbox's own count, not its stats snapshot: the batcher has stopped and
            // every ack has returned, so this is the truth, and a count that were one too
            // high would hold the agent until the deadline.
            // Batches sent and awaiting the platform's ack stay in the outbox for the next
            // run (sent again then; the platform drops duplicates): draining does not wait
            // for acks.
            let empty = window.len() == 0
                && match cx.outbox.unsent_batches().await {
                    Ok(left) => left == 0,
                    Err(e) => return SessionEnd::Lost(format!("outbox: {e}")),
                };
            if empty || Instant::now() >= deadline {
                goodbye(&client, &mut events, &topics.status, &offline(&cx.birth)).await;
                return SessionEnd::Done;
            }
        }
        cx.telemetry
            .mqtt
            .in_flight
            .store(window.batches() as u64, Ordering::Relaxed);
        let deadline = match *mode {
            Mode::Draining { deadline } => Some(deadline),
            Mode::Live => None,
        };
        let stalled = window.stalled();
        let expiry = if platform_ack {
            acks.expiry(cx, &cx.outbox.stats())
        } else {
            None
        };
        tokio::select! {
            event = events.poll() => match event {
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => window.written(pkid),
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    // The broker takes messages: the backoff starts over. Not at CONNACK,
                    // or a broker that accepts and then drops every connection (a client
                    // id in use twice, an overloaded broker) would be reconnected to at
                    // the first step's rate forever.
                    backoff.reset();
                    if let Some(InFlight::Batch { seq, samples, sent_at, .. }) = window.acked(ack.pkid) {
                        // Marked sent or deleted by the next `fill`, at the top of the loop.
                        delivered.push(seq, Instant::now().into_std());
                        let mqtt = &cx.telemetry.mqtt;
                        mqtt.publish_seconds.observe(sent_at.elapsed().as_secs_f64());
                        mqtt.published_batches.fetch_add(1, Ordering::Relaxed);
                        mqtt.published_samples.fetch_add(u64::from(samples), Ordering::Relaxed);
                        mqtt.last_ack_ms.store(fieldlink_collector_api::clock::now_ms(), Ordering::Relaxed);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(message))) if platform_ack && message.topic == topics.ack => {
                    acks.heard();
                    match serde_json::from_slice::<Ack>(&message.payload) {
                        Ok(ack) => match apply_ack(cx, ack).await {
                            Ok(returned) => plan.resend(&returned),
                            Err(e) => return SessionEnd::Lost(format!("outbox: {e}")),
                        },
                        Err(e) => tracing::warn!(topic = %message.topic, error = %e, "ignoring an ack that does not parse"),
                    }
                }
                Ok(Event::Incoming(Packet::Publish(message))) if message.topic == topics.config => {
                    cx.configs_tx.send_replace(Some(message.payload.to_vec()));
                }
                Ok(_) => {}
                Err(e) => return SessionEnd::Lost(e.to_string()),
            },
            () = sleep_until(expiry) => {
                // Marked at or before the expiry: `expire_sent` takes those before `before`.
                let before = Instant::now()
                    .checked_sub(acks.timeout(cx))
                    .map(|at| (at + Duration::from_nanos(1)).into_std());
                let returned = match cx.outbox.run(move |o| Ok(before.map(|b| o.expire_sent(b)).unwrap_or_default())).await {
                    Ok(returned) => returned,
                    Err(e) => return SessionEnd::Lost(format!("outbox: {e}")),
                };
                if !returned.is_empty() {
                    acks.resending(cx);
                    tracing::info!(batches = returned.len(), first_seq = returned[0], "no ack from the platform in time; sending these batches again");
                    cx.telemetry.mqtt.resent_timeout.fetch_add(returned.len() as u64, Ordering::Relaxed);
                }
                plan.resend(&returned);
            }
            changed = cx.appended_rx.changed(), if appender_alive => {
                // An error means the batcher is gone; `finish` follows.
                appender_alive = changed.is_ok();
            }
            () = cx.finish.cancelled(), if *mode == Mode::Live => {}
            Ok(()) = cx.meta_rx.changed() => {
                let meta = json(&*cx.meta_rx.borrow_and_update());
                if client.try_publish(topics.meta.as_str(), QoS::AtLeastOnce, true, meta).is_ok() {
                    window.push(InFlight::Meta);
                }
            }
            Ok(()) = cx.config_state_rx.changed() => {
                cx.config_state_rx.borrow_and_update();
                publish_status(cx, &client, &topics.status, &mut window, &mut refresh);
            }
            () = sleep_until(deadline) => {}
            () = sleep_until(stalled) => return SessionEnd::Lost(format!("no PUBACK for {ACK_TIMEOUT:?}")),
            () = tokio::time::sleep_until(refresh.due_at()) => {
                publish_status(cx, &client, &topics.status, &mut window, &mut refresh);
            }
            _ = beat.tick() => {
                // Once a second, not per event: the health check reads every device, and
                // changes cause at most a status a second.
                if refresh.changed(&cx.telemetry.devices()) {
                    publish_status(cx, &client, &topics.status, &mut window, &mut refresh);
                }
            }
        }
    }
}

/// Publishes the retained status as it is now: the birth's fields, the outbox's counts and
/// every device's health. While the last one awaits its PUBACK, or if rumqttc's request
/// channel is full, it is tried again shortly.
fn publish_status(
    cx: &PublisherContext,
    client: &AsyncClient,
    topic: &str,
    window: &mut Window,
    refresh: &mut StatusRefresh,
) {
    if window.statuses > 0 {
        refresh.not_taken();
        return;
    }
    let devices = cx.telemetry.devices();
    let marks = Marks::of(&devices);
    let status = current_status(cx, &devices);
    if client
        .try_publish(topic, QoS::AtLeastOnce, true, json(&status))
        .is_ok()
    {
        window.push(InFlight::Status);
        refresh.published(marks);
    } else {
        refresh.not_taken();
    }
}

/// The `online` status of this run as it is now.
fn current_status(cx: &PublisherContext, devices: &[Arc<DeviceTelemetry>]) -> Status {
    let outbox = cx.outbox.stats();
    Status {
        backlog_batches: Some(outbox.batches),
        evicted_batches: Some(outbox.evicted_batches),
        awaiting_ack_batches: Some(outbox.awaiting_ack_batches),
        oldest_awaiting_ack_age_s: oldest_awaiting_ack_age(&outbox).map(|age| age.as_secs()),
        devices: devices.iter().map(|d| d.health()).collect(),
        config: Some(cx.config_state_rx.borrow().clone()),
        ..cx.birth.clone()
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How long sent batches may await the platform's ack: `ack_timeout`, doubled for each
/// round of resends that no ack answered (see [`SILENT_DOUBLINGS`]).
#[derive(Debug)]
struct AckClock {
    /// Doublings of `ack_timeout` now in force.
    doublings: u32,
    /// True once an ack arrived since the last round of resends.
    heard: bool,
    /// When the last round that counted as unanswered began.
    round_at: Instant,
}

impl AckClock {
    fn new() -> Self {
        AckClock {
            doublings: 0,
            heard: false,
            round_at: Instant::now(),
        }
    }

    /// An ack arrived: the platform is there, back to `ack_timeout`.
    fn heard(&mut self) {
        self.doublings = 0;
        self.heard = true;
    }

    /// Sent batches timed out and go out again. Counts as unanswered if no ack arrived since
    /// the last round, and a whole timeout passed since it (batches expire one after the
    /// other; one silence doubles the timeout once per timeout, not once per batch).
    fn resending(&mut self, cx: &PublisherContext) {
        if !self.heard && self.round_at.elapsed() >= self.timeout(cx) {
            self.doublings = (self.doublings + 1).min(SILENT_DOUBLINGS);
            self.round_at = Instant::now();
        }
        self.heard = false;
    }

    fn timeout(&self, cx: &PublisherContext) -> Duration {
        cx.ack_timeout * 2u32.pow(self.doublings)
    }

    /// When the batch awaiting an ack the longest times out.
    fn expiry(
        &self,
        cx: &PublisherContext,
        stats: &fieldlink_outbox::OutboxStats,
    ) -> Option<Instant> {
        Some(Instant::from_std(stats.oldest_awaiting_ack_since?) + self.timeout(cx))
    }
}

/// Applies the platform's ack to the outbox; returns the sent batches it lists as missing,
/// now pending again.
async fn apply_ack(cx: &PublisherContext, ack: Ack) -> Result<Vec<u64>, StoreError> {
    let stored_max = stored_max(&ack);
    let before = Instant::now()
        .checked_sub(MISSING_GRACE.min(cx.ack_timeout))
        .unwrap_or_else(Instant::now)
        .into_std();
    let outcome = cx
        .outbox
        .run(move |o| {
            o.apply_ack(
                &PlatformAck {
                    stored_through: ack.stored_through,
                    missing: &ack.missing,
                    stored_max,
                },
                before,
            )
        })
        .await?;
    let mqtt = &cx.telemetry.mqtt;
    mqtt.platform_acks.fetch_add(1, Ordering::Relaxed);
    mqtt.acknowledged_batches
        .fetch_add(outcome.deleted_batches, Ordering::Relaxed);
    if !outcome.returned.is_empty() {
        tracing::info!(
            batches = outcome.returned.len(),
            first_seq = outcome.returned[0],
            "the platform's ack lists sent batches as missing; sending them again"
        );
        mqtt.resent_missing
            .fetch_add(outcome.returned.len() as u64, Ordering::Relaxed);
    }
    Ok(outcome.returned)
}

/// The ack's `stored_max` as the outbox takes it: past the last listed range of a list of
/// missing ranges cut short, nothing is known (see `Ack::state`).
fn stored_max(ack: &Ack) -> Option<u64> {
    let listed_through = (ack.missing.len() >= Ack::MAX_MISSING)
        .then(|| ack.missing.last().map(|&(_, last)| last))
        .flatten();
    match (ack.stored_max, listed_through) {
        (Some(max), Some(listed)) => Some(max.min(listed)),
        (max, _) => max,
    }
}

/// Drives the event loop until CONNACK.
async fn connect(events: &mut EventLoop, mode: Mode) -> Result<(), String> {
    let limit = match mode {
        Mode::Draining { deadline } => deadline.min(Instant::now() + CONNECT_TIMEOUT),
        Mode::Live => Instant::now() + CONNECT_TIMEOUT,
    };
    loop {
        match tokio::time::timeout_at(limit, events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("connect timed out".to_owned()),
        }
    }
}

/// Applies the batches the broker took, then hands rumqttc as many outbox batches as the
/// window allows: live ones first. The first outbox call applies `delivered`.
async fn fill(
    cx: &PublisherContext,
    client: &AsyncClient,
    topic: &str,
    plan: &mut SendPlan,
    window: &mut Window,
    window_size: usize,
    delivered: &mut Delivered,
) -> Result<(), StoreError> {
    let result = fill_window(cx, client, topic, plan, window, window_size, delivered).await;
    if result.is_ok() && !delivered.is_empty() {
        let done = delivered.take();
        cx.outbox.run(move |o| done.apply(o)).await?;
    }
    result
}

async fn fill_window(
    cx: &PublisherContext,
    client: &AsyncClient,
    topic: &str,
    plan: &mut SendPlan,
    window: &mut Window,
    window_size: usize,
    delivered: &mut Delivered,
) -> Result<(), StoreError> {
    let newest = (*cx.appended_rx.borrow()).max(plan.newest_at_connect);
    let free = window_size.saturating_sub(window.len());
    if free > 0 && plan.live_next <= newest {
        let from = plan.live_next;
        let done = delivered.take();
        let records = cx
            .outbox
            .run(move |o| {
                done.apply(o)?;
                o.unsent(from, u64::MAX, free)
            })
            .await?;
        for record in records {
            let seq = record.seq;
            if !send(client, topic, record, false, window) {
                return Ok(());
            }
            plan.live_next = seq + 1;
        }
    }
    // Batches to send again go first within the backlog's share: they are the oldest data.
    while let Some((from, below)) = plan.resend_range() {
        let free = window_size
            .saturating_sub(window.len())
            .min(plan.backlog_slots.saturating_sub(window.backlog));
        if free == 0 {
            return Ok(());
        }
        let in_flight = window.seqs();
        let want = free + in_flight.len();
        let done = delivered.take();
        let records = cx
            .outbox
            .run(move |o| {
                done.apply(o)?;
                o.unsent(from, below, want)
            })
            .await?;
        let exhausted = records.len() < want;
        for record in records {
            let seq = record.seq;
            if in_flight.contains(&seq) {
                continue;
            }
            if window.backlog >= plan.backlog_slots || window.len() >= window_size {
                return Ok(());
            }
            if !send(client, topic, record, true, window) {
                return Ok(());
            }
            cx.telemetry
                .mqtt
                .resent_batches
                .fetch_add(1, Ordering::Relaxed);
            plan.resent_through(seq);
        }
        if !exhausted {
            break;
        }
        plan.resent_through(below.saturating_sub(1));
    }
    let free = window_size
        .saturating_sub(window.len())
        .min(plan.backlog_slots.saturating_sub(window.backlog));
    if free > 0 && plan.has_backlog() {
        let from = plan.backlog_next;
        let end = plan.backlog_end;
        let done = delivered.take();
        let records = cx
            .outbox
            .run(move |o| {
                done.apply(o)?;
                o.unsent(from, end, free)
            })
            .await?;
        let exhausted = records.len() < free;
        for record in records {
            let seq = record.seq;
            if seq >= plan.backlog_end {
                plan.backlog_next = plan.backlog_end;
                return Ok(());
            }
            if !send(client, topic, record, true, window) {
                return Ok(());
            }
            plan.backlog_next = seq + 1;
        }
        if exhausted {
            plan.backlog_next = plan.backlog_end;
        }
    }
    Ok(())
}

/// Queues one batch with rumqttc; false if its request channel is full.
fn send(
    client: &AsyncClient,
    topic: &str,
    record: Record,
    backlog: bool,
    window: &mut Window,
) -> bool {
    let (seq, samples) = (record.seq, record.samples);
    match client.try_publish(topic, QoS::AtLeastOnce, false, record.payload) {
        Ok(()) => {
            window.push(InFlight::Batch {
                seq,
                samples,
                backlog,
                sent_at: Instant::now(),
            });
            true
        }
        Err(_) => false,
    }
}

/// Publishes the retained `offline` status and disconnects cleanly.
async fn goodbye(
    client: &AsyncClient,
    events: &mut EventLoop,
    status_topic: &str,
    offline: &Status,
) {
    let _ = client.try_publish(status_topic, QoS::AtLeastOnce, true, json(offline));
    let _ = client.try_disconnect();
    let limit = Instant::now() + GOODBYE_TIMEOUT;
    while let Ok(Ok(event)) = tokio::time::timeout_at(limit, events.poll()).await {
        if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_outbox::{Outbox, OutboxOptions};
    use fieldlink_wire::AckState;

    /// The outbox, given an ack as the publisher hands it over, deletes exactly what
    /// `Ack::state` calls stored and sends again exactly the sent batches it calls missing,
    /// a list of missing ranges cut short included.
    #[test]
    fn the_outbox_reads_an_ack_as_the_wire_defines_it() {
        let cut_short: Vec<(u64, u64)> = (0..Ack::MAX_MISSING as u64)
            .map(|i| (20 + 3 * i, 20 + 3 * i))
            .collect();
        let acks = [
            Ack {
                stored_through: 5,
                missing: vec![(7, 9), (15, 15)],
                stored_max: Some(30),
            },
            Ack {
                stored_through: 0,
                missing: vec![(3, 4)],
                stored_max: None,
            },
            Ack {
                stored_through: 10,
                missing: cut_short,
                stored_max: Some(400),
            },
        ];
        for ack in acks {
            let dir = tempfile::tempdir().expect("tempdir");
            let (outbox, _) = Outbox::open(OutboxOptions::new(dir.path().join("o.redb"), 64 << 20))
                .expect("outbox");
            let t0 = std::time::Instant::now();
            for _ in 1..=500 {
                let seq = outbox.append(1, |_| vec![0; 10]).expect("append");
                outbox.mark_sent(seq, t0).expect("mark");
            }
            let outcome = outbox
                .apply_ack(
                    &PlatformAck {
                        stored_through: ack.stored_through,
                        missing: &ack.missing,
                        stored_max: stored_max(&ack),
                    },
                    t0 + Duration::from_secs(1),
                )
                .expect("apply");
            let left: Vec<u64> = outbox
                .oldest(0, usize::MAX)
                .expect("read")
                .iter()
                .map(|r| r.seq)
                .collect();
            for seq in 1..=500 {
                let state = ack.state(seq);
                assert_eq!(
                    !left.contains(&seq),
                    state == AckState::Stored,
                    "seq {seq}: {state:?}"
                );
                assert_eq!(
                    outcome.returned.contains(&seq),
                    state == AckState::Missing,
                    "seq {seq}: {state:?}"
                );
            }
        }
    }
}
