//! The OPC UA collector: one device, one session at a time, subscriptions or polling.
//!
//! The link is a small state machine, driven by one task per device:
//! - `Down` → connect attempt (one at a time, never two in flight) → `Up` or `Down`;
//! - `Up`: namespaces are read and every point's NodeId resolved, then either one
//!   subscription with a monitored item per point is created, or the points are read on
//!   the poll schedule; `Up` → `Down` when the session is lost (transport closed,
//!   keep-alives failed, the subscription died, or three poll cycles failed);
//! - each entry into `Down`, and each failed attempt, publishes one `bad` sample per point
//!   ("disconnected: ..."); attempts are spaced by a capped, jittered backoff (500 ms
//!   doubling to 30 s), which restarts from the bottom only after a session stayed up for
//!   [`STABLE_AFTER`].

use crate::device::{Deadband, Mode, OpcuaDevice, ServerTrust};
use crate::pki;
use crate::session::{self, ConnectError, Connection, LinkState};
use crate::value::{Unmappable, status_name, to_sample};
use fieldlink_collector_api::{
    Backoff, BoxFuture, Collector, CollectorContext, DeviceStats, FailureLog, clock,
};
use fieldlink_wire::Sample;
use opcua::client::{MonitoredItemMap, OnSubscriptionNotificationCore};
use opcua::types::{
    DataChangeFilter, DataChangeNotification, DataChangeTrigger, DataValue, DeadbandType,
    ExtensionObject, MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters, NodeId,
    NotificationMessage, ReadValueId, StatusChangeNotification, StatusCode, TimestampsToReturn,
};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{self, Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

/// The first reconnect delay.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// The longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A session that lasted this long was healthy: the next outage starts the backoff over.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Monitored items created per CreateMonitoredItems request (servers cap the operations
/// per call; 1000 is within every common limit).
const ITEMS_PER_CALL: usize = 1000;
/// Nodes read per Read request, for the same reason.
const NODES_PER_READ: usize = 1000;
/// Notifications per publish response: without a limit, the initial values of 10,000
/// items make a response larger than the client's 320 KiB message limit, and the server
/// answers BadResponseTooLarge to every publish. 1000 numeric notifications are about
/// 30 KB; the server sends the rest in further responses straight away.
const NOTIFICATIONS_PER_PUBLISH: u32 = 1000;
/// Consecutive poll cycles without a single successful read after which the session is
/// rebuilt.
const FAILED_CYCLES_BEFORE_RECONNECT: u32 = 3;
/// How often a long-lived session checks whether the application certificate is due.
const CERTIFICATE_CHECK: Duration = Duration::from_secs(6 * 3600);
/// How long a graceful session close may take at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads one OPC UA device (see the module note for the rules).
#[derive(Debug)]
pub struct OpcuaCollector {
    device: OpcuaDevice,
}

impl OpcuaCollector {
    /// A collector for `device`.
    pub fn new(device: OpcuaDevice) -> Self {
        OpcuaCollector { device }
    }
}

impl Collector for OpcuaCollector {
    fn name(&self) -> &Arc<str> {
        &self.device.name
    }

    fn run(self: Box<Self>, ctx: CollectorContext) -> BoxFuture {
        Box::pin(async move {
            let device = self.device;
            Runner::new(&device, &ctx).run().await;
        })
    }
}

/// How a connected phase ended.
enum Ended {
    /// Shutdown was requested or the pipeline closed: stop.
    Stop,
    /// The session is gone or unusable: reconnect.
    Lost(String),
}

/// The connection loop of one device.
struct Runner<'a> {
    device: &'a OpcuaDevice,
    ctx: &'a CollectorContext,
    stats: &'a DeviceStats,
    backoff: Backoff,
    /// An outage is logged when it starts and ends and summarized in between, not at
    /// every retry.
    failures: FailureLog<'a>,
    /// The last connect failure whose remedy was logged: a remedy is logged once per
    /// cause, not at every retry.
    logged_reason: Option<String>,
    /// Point problems (unknown namespace, refused monitored item) already logged.
    logged_points: HashSet<(usize, String)>,
    /// Per point: an unmappable type was reported and is not reported again.
    type_reported: Arc<Vec<AtomicBool>>,
}

impl<'a> Runner<'a> {
    fn new(device: &'a OpcuaDevice, ctx: &'a CollectorContext) -> Self {
        Runner {
            device,
            ctx,
            stats: &ctx.stats,
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
            failures: FailureLog::new(&device.name, &device.endpoint, &ctx.stats),
            logged_reason: None,
            logged_points: HashSet::new(),
            type_reported: Arc::new(
                device
                    .points
                    .iter()
                    .map(|_| AtomicBool::new(false))
                    .collect(),
            ),
        }
    }

    async fn run(mut self) {
        if self.device.trust == ServerTrust::Any {
            warn!(
                device = %self.device.name,
                endpoint = %self.device.endpoint,
                "trust_server_certificate = \"any\": ANY server certificate is accepted and remembered; anyone who can answer at this address can feed this device's data. Remove the setting once the server's certificate is trusted."
            );
        }
        loop {
            let attempt = self
                .ctx
                .shutdown
                .run_until_cancelled(session::connect(self.device))
                .await;
            let delay = match attempt {
                None => break,
                Some(Ok(connection)) => {
                    let up_since = Instant::now();
                    match self.serve(connection).await {
                        Ended::Stop => break,
                        Ended::Lost(reason) => {
                            self.stats.connected.store(false, Ordering::Relaxed);
                            DeviceStats::bump(&self.stats.reconnects);
                            self.failures.failed(&reason);
                            if up_since.elapsed() >= STABLE_AFTER {
                                self.backoff.reset();
                            }
                            if !self.publish_down(&reason).await {
                                break;
                            }
                            self.backoff.next_delay()
                        }
                    }
                }
                Some(Err(error)) => {
                    DeviceStats::bump(&self.stats.reconnects);
                    let reason = error.to_string();
                    self.failures.failed(&reason);
                    self.log_remedy(&error, &reason);
                    if !self.publish_down(&reason).await {
                        break;
                    }
                    // Causes only an operator can fix (an untrusted certificate, a wrong
                    // password) back off like the others: once fixed, data should flow
                    // within seconds, and the backoff caps the retries at one per 30 s.
                    self.backoff.next_delay()
                }
            };
            let sleep = time::sleep(delay);
            if self.ctx.shutdown.run_until_cancelled(sleep).await.is_none() {
                break;
            }
        }
        self.stats.connected.store(false, Ordering::Relaxed);
        debug!(device = %self.device.name, "collector stopped");
    }

    /// Logs what an operator can do about a connect failure, once per cause.
    fn log_remedy(&mut self, error: &ConnectError, reason: &str) {
        if self.logged_reason.as_deref() == Some(reason) {
            return;
        }
        self.logged_reason = Some(reason.to_owned());
        match error {
            ConnectError::UntrustedServer {
                thumbprint,
                subject,
                stored,
            } => warn!(
                device = %self.device.name,
                endpoint = %self.device.endpoint,
                server_certificate = %subject,
                stored = %stored.display(),
                "the server's certificate is not trusted, so fieldlink will not connect. If it is this server's certificate, trust it with: fieldlink opcua trust --config {} {thumbprint}",
                self.device.pki.config_file,
            ),
            ConnectError::Session(status, _)
                if matches!(
                    *status,
                    StatusCode::BadCertificateUntrusted | StatusCode::BadSecurityChecksFailed
                ) =>
            {
                warn!(
                    device = %self.device.name,
                    endpoint = %self.device.endpoint,
                    error = %reason,
                    certificate = %pki::own_certificate_path(&self.device.pki.dir).display(),
                    "the server refused the session; if it does not trust the gateway yet, trust this certificate on the server"
                )
            }
            _ => {
                debug!(device = %self.device.name, error = %reason, "cannot connect; retrying with backoff")
            }
        }
    }

    /// Publishes one bad sample per point; false if the pipeline is closed.
    async fn publish_down(&self, reason: &str) -> bool {
        let ts = clock::now_ms();
        let error = format!("disconnected: {reason}");
        let samples = self
            .device
            .points
            .iter()
            .map(|p| Sample::bad(self.device.name.clone(), p.name.clone(), ts, error.as_str()))
            .collect();
        self.send(samples).await
    }

    /// Hands samples to the pipeline; false if it is closed or shutdown was requested.
    async fn send(&self, samples: Vec<Sample>) -> bool {
        matches!(
            self.ctx
                .shutdown
                .run_until_cancelled(self.ctx.sink.send(samples))
                .await,
            Some(Ok(()))
        )
    }

    /// The connected phase: resolve, then subscribe or poll until the session ends.
    async fn serve(&mut self, connection: Connection) -> Ended {
        info!(
            device = %self.device.name,
            endpoint = %self.device.endpoint,
            security = %session::describe_endpoint(&connection.endpoint),
            identity = %self.device.identity.describe(),
            "connected"
        );
        self.failures.answered();
        self.logged_reason = None;
        self.stats.connected.store(true, Ordering::Relaxed);
        let ended = match self.resolve(&connection).await {
            Err(reason) => Ended::Lost(reason),
            Ok((nodes, bad)) => {
                if !bad.is_empty() && !self.send(bad).await {
                    Ended::Stop
                } else {
                    match self.device.mode {
                        Mode::Subscription {
                            publishing_interval,
                        } => {
                            self.subscribe(&connection, &nodes, publishing_interval)
                                .await
                        }
                        Mode::Poll { period } => self.poll(&connection, &nodes, period).await,
                    }
                }
            }
        };
        let lost = matches!(*connection.state_rx.borrow(), LinkState::Lost(_));
        if lost {
            connection.abandon().await;
        } else {
            connection.close(CLOSE_TIMEOUT).await;
        }
        ended
    }

    /// Reads the namespace array and resolves every point's NodeId; a point whose
    /// namespace URI is unknown gets a bad sample (returned) and no NodeId.
    async fn resolve(
        &mut self,
        connection: &Connection,
    ) -> Result<(Vec<Option<NodeId>>, Vec<Sample>), String> {
        let namespaces = time::timeout(
            self.device.timeout,
            connection.session.read_namespace_array(),
        )
        .await
        .map_err(|_| "cannot read the namespace array: timeout".to_owned())?
        .map_err(|e| {
            format!(
                "cannot read the namespace array: {}",
                status_name(e.status())
            )
        })?;
        let ts = clock::now_ms();
        let mut bad = Vec::new();
        let mut nodes = Vec::with_capacity(self.device.points.len());
        for (i, point) in self.device.points.iter().enumerate() {
            match point.node.resolve(&namespaces) {
                Ok(node) => nodes.push(Some(node)),
                Err(e) => {
                    let text = e.to_string();
                    if self.logged_points.insert((i, text.clone())) {
                        warn!(device = %self.device.name, point = %point.name, node = %point.node, error = %text, "cannot resolve the point's NodeId");
                    }
                    bad.push(Sample::bad(
                        self.device.name.clone(),
                        point.name.clone(),
                        ts,
                        text,
                    ));
                    nodes.push(None);
                }
            }
        }
        Ok((nodes, bad))
    }

    async fn subscribe(
        &mut self,
        connection: &Connection,
        nodes: &[Option<NodeId>],
        publishing_interval: Duration,
    ) -> Ended {
        let session = &connection.session;
        let inbox = Arc::new(Inbox::new(self.device.points.len()));
        let handler = Notifications {
            reporter: Reporter::new(self.device, self.type_reported.clone()),
            inbox: inbox.clone(),
        };
        let (keep_alive, lifetime) = subscription_counts(publishing_interval);
        let created = time::timeout(
            self.device.timeout,
            session.create_subscription(
                publishing_interval,
                lifetime,
                keep_alive,
                NOTIFICATIONS_PER_PUBLISH,
                0,
                true,
                handler,
            ),
        )
        .await;
        let subscription_id = match created {
            Err(_) => return Ended::Lost("cannot create the subscription: timeout".to_owned()),
            Ok(Err(e)) => {
                return Ended::Lost(format!(
                    "cannot create the subscription: {}",
                    status_name(e.status())
                ));
            }
            Ok(Ok(id)) => id,
        };

        let requests: Vec<(usize, MonitoredItemCreateRequest)> = nodes
            .iter()
            .enumerate()
            .filter_map(|(i, node)| Some((i, self.monitored_item(i, node.as_ref()?))))
            .collect();
        let mut refused = Vec::new();
        let mut monitored = 0usize;
        for chunk in requests.chunks(ITEMS_PER_CALL) {
            let items: Vec<MonitoredItemCreateRequest> =
                chunk.iter().map(|(_, r)| r.clone()).collect();
            let result = time::timeout(
                self.device.timeout,
                session.create_monitored_items(subscription_id, TimestampsToReturn::Both, items),
            )
            .await;
            let results = match result {
                Err(_) => return Ended::Lost("cannot create monitored items: timeout".to_owned()),
                Ok(Err(e)) => {
                    return Ended::Lost(format!(
                        "cannot create monitored items: {}",
                        status_name(e.status())
                    ));
                }
                Ok(Ok(results)) => results,
            };
            for ((i, _), created) in chunk.iter().zip(&results) {
                let status = created.result.status_code;
                if status.is_bad() {
                    refused.push((*i, status));
                } else {
                    monitored += 1;
                }
            }
        }
        let ts = clock::now_ms();
        let mut bad = Vec::new();
        for (i, status) in refused {
            let point = &self.device.points[i];
            let text = match (status, point.deadband) {
                (
                    StatusCode::BadFilterNotAllowed
                    | StatusCode::BadMonitoredItemFilterUnsupported
                    | StatusCode::BadMonitoredItemFilterInvalid
                    | StatusCode::BadDeadbandFilterInvalid,
                    Some(Deadband::Percent(_)),
                ) => format!(
                    "{}: the server refused the percent deadband (it needs an analog variable with an EURange)",
                    status_name(status)
                ),
                _ => status_name(status).to_owned(),
            };
            if self.logged_points.insert((i, text.clone())) {
                warn!(device = %self.device.name, point = %point.name, node = %point.node, error = %text, "the server refused the monitored item");
            }
            bad.push(Sample::bad(
                self.device.name.clone(),
                point.name.clone(),
                ts,
                text,
            ));
        }
        if !bad.is_empty() && !self.send(bad).await {
            return Ended::Stop;
        }
        info!(
            device = %self.device.name,
            monitored_items = monitored,
            publishing_interval_ms = publishing_interval.as_millis() as u64,
            "subscribed"
        );

        let mut state_rx = connection.state_rx.clone();
        let mut certificate_check =
            time::interval_at(Instant::now() + CERTIFICATE_CHECK, CERTIFICATE_CHECK);
        loop {
            tokio::select! {
                () = self.ctx.shutdown.cancelled() => return Ended::Stop,
                changed = state_rx.changed() => {
                    if let Some(reason) = lost_reason(changed.is_err(), &state_rx.borrow()) {
                        return Ended::Lost(reason);
                    }
                }
                () = inbox.ready.notified() => {
                    let (samples, dropped) = inbox.take();
                    if dropped > 0 {
                        warn!(device = %self.device.name, dropped, "the pipeline fell behind; dropped the oldest samples");
                    }
                    if let Some(status) = inbox.subscription_ended() {
                        return Ended::Lost(format!("the subscription ended: {}", status_name(status)));
                    }
                    if !samples.is_empty() {
                        DeviceStats::bump(&self.stats.cycles);
                        self.stats.last_good_read_ms.store(clock::now_ms(), Ordering::Relaxed);
                        if !self.send(samples).await {
                            return Ended::Stop;
                        }
                    }
                }
                _ = certificate_check.tick() => {
                    if let Some(reason) = self.certificate_due().await {
                        return Ended::Lost(reason);
                    }
                }
            }
        }
    }

    fn monitored_item(&self, i: usize, node: &NodeId) -> MonitoredItemCreateRequest {
        let point = &self.device.points[i];
        let filter = match point.deadband {
            None => ExtensionObject::null(),
            Some(deadband) => {
                let (deadband_type, deadband_value) = match deadband {
                    Deadband::Absolute(v) => (DeadbandType::Absolute, v),
                    Deadband::Percent(v) => (DeadbandType::Percent, v),
                };
                ExtensionObject::from_message(DataChangeFilter {
                    trigger: DataChangeTrigger::StatusValue,
                    deadband_type: deadband_type as u32,
                    deadband_value,
                })
            }
        };
        MonitoredItemCreateRequest {
            item_to_monitor: ReadValueId::from(node.clone()),
            monitoring_mode: MonitoringMode::Reporting,
            requested_parameters: MonitoringParameters {
                // Handles are point indexes + 1: 0 asks async-opcua to pick one.
                client_handle: u32::try_from(i + 1).unwrap_or(u32::MAX),
                sampling_interval: point.sampling_interval.as_secs_f64() * 1000.0,
                filter,
                queue_size: point.queue_size.get(),
                discard_oldest: true,
            },
        }
    }

    async fn poll(
        &mut self,
        connection: &Connection,
        nodes: &[Option<NodeId>],
        period: Duration,
    ) -> Ended {
        let session = &connection.session;
        let targets: Vec<(usize, ReadValueId)> = nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((i, ReadValueId::from(n.as_ref()?.clone()))))
            .collect();
        let mut reporter = Reporter::new(self.device, self.type_reported.clone());
        let mut ticker = time::interval(period.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut state_rx = connection.state_rx.clone();
        let mut certificate_check =
            time::interval_at(Instant::now() + CERTIFICATE_CHECK, CERTIFICATE_CHECK);
        let mut failed_cycles = 0u32;
        loop {
            tokio::select! {
                () = self.ctx.shutdown.cancelled() => return Ended::Stop,
                changed = state_rx.changed() => {
                    if let Some(reason) = lost_reason(changed.is_err(), &state_rx.borrow()) {
                        return Ended::Lost(reason);
                    }
                }
                _ = certificate_check.tick() => {
                    if let Some(reason) = self.certificate_due().await {
                        return Ended::Lost(reason);
                    }
                }
                _ = ticker.tick() => {
                    let started = Instant::now();
                    let mut samples = Vec::with_capacity(targets.len());
                    let mut any_ok = targets.is_empty();
                    let mut last_error = String::new();
                    for chunk in targets.chunks(NODES_PER_READ) {
                        let ids: Vec<ReadValueId> = chunk.iter().map(|(_, r)| r.clone()).collect();
                        let read = time::timeout(
                            self.device.timeout,
                            session.read(&ids, TimestampsToReturn::Both, 0.0),
                        );
                        let result = match self.ctx.shutdown.run_until_cancelled(read).await {
                            None => return Ended::Stop,
                            Some(r) => r,
                        };
                        let now = clock::now_ms();
                        match result {
                            Ok(Ok(values)) if values.len() == chunk.len() => {
                                any_ok = true;
                                for ((i, _), value) in chunk.iter().zip(&values) {
                                    samples.extend(reporter.sample(*i, value, now));
                                }
                            }
                            other => {
                                DeviceStats::bump(&self.stats.read_errors);
                                last_error = match other {
                                    Err(_) => "timeout".to_owned(),
                                    Ok(Err(e)) => status_name(e.status()).to_owned(),
                                    Ok(Ok(values)) => format!(
                                        "the server answered {} values for {} nodes",
                                        values.len(),
                                        chunk.len()
                                    ),
                                };
                                for (i, _) in chunk {
                                    let name = self.device.points[*i].name.clone();
                                    samples.push(Sample::bad(self.device.name.clone(), name, now, last_error.as_str()));
                                }
                            }
                        }
                    }
                    let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    self.stats.last_cycle_us.store(took, Ordering::Relaxed);
                    DeviceStats::bump(&self.stats.cycles);
                    if any_ok {
                        failed_cycles = 0;
                        self.stats.last_good_read_ms.store(clock::now_ms(), Ordering::Relaxed);
                    } else {
                        failed_cycles += 1;
                    }
                    if !self.send(samples).await {
                        return Ended::Stop;
                    }
                    if failed_cycles >= FAILED_CYCLES_BEFORE_RECONNECT {
                        return Ended::Lost(format!("{failed_cycles} read cycles failed: {last_error}"));
                    }
                }
            }
        }
    }

    /// Renews the application certificate if it is due; the session must then be rebuilt
    /// with the new one.
    async fn certificate_due(&self) -> Option<String> {
        let pki = self.device.pki.clone();
        let action = tokio::task::spawn_blocking(move || pki::ensure_application_certificate(&pki))
            .await
            .ok()?;
        match action {
            Ok(pki::CertificateAction::Kept) => None,
            Ok(_) => Some("the application certificate was renewed".to_owned()),
            Err(e) => {
                warn!(device = %self.device.name, error = %e, "cannot check the application certificate");
                None
            }
        }
    }
}

/// The reason a session ended, if the watched state says it has.
fn lost_reason(sender_gone: bool, state: &LinkState) -> Option<String> {
    match state {
        LinkState::Lost(status) => Some(format!("connection lost: {}", status_name(*status))),
        LinkState::Closed => Some("the session closed".to_owned()),
        _ if sender_gone => Some("the session's event loop ended".to_owned()),
        _ => None,
    }
}

/// Keep-alive and lifetime counts for a publishing interval: a keep-alive at least every
/// 10 s, and the subscription kept for at least a minute without publish requests.
fn subscription_counts(publishing_interval: Duration) -> (u32, u32) {
    let per = |span: Duration| -> u32 {
        let ms = publishing_interval.as_millis().max(1);
        u32::try_from(span.as_millis().div_ceil(ms))
            .unwrap_or(u32::MAX)
            .max(1)
    };
    let keep_alive = per(Duration::from_secs(10)).min(1000);
    let lifetime = per(Duration::from_secs(60)).max(keep_alive * 3);
    (keep_alive, lifetime)
}

/// Turns a point's `DataValue` into its sample, reporting an unmappable type once.
struct Reporter {
    device: Arc<str>,
    names: Vec<Arc<str>>,
    type_reported: Arc<Vec<AtomicBool>>,
}

impl Reporter {
    fn new(device: &OpcuaDevice, type_reported: Arc<Vec<AtomicBool>>) -> Self {
        Reporter {
            device: device.name.clone(),
            names: device.points.iter().map(|p| p.name.clone()).collect(),
            type_reported,
        }
    }

    /// The sample for point `i`, or `None` when it would repeat an unmappable type that
    /// was already reported.
    fn sample(&mut self, i: usize, value: &DataValue, now: i64) -> Option<Sample> {
        let name = self.names.get(i)?;
        let reported = self.type_reported.get(i)?;
        let (sample, error) = to_sample(&self.device, name, value, now);
        match error {
            Some(e @ Unmappable::Type(_)) => {
                if reported.swap(true, Ordering::Relaxed) {
                    return None;
                }
                warn!(device = %self.device, point = %name, error = %e, "cannot map the point's value; it stays bad until the variable's type changes");
            }
            Some(Unmappable::NotFinite) => {}
            None if !matches!(sample.quality, fieldlink_wire::Quality::Bad(_)) => {
                reported.store(false, Ordering::Relaxed);
            }
            None => {}
        }
        Some(sample)
    }
}

/// Samples from subscription callbacks (on the session's event-loop task) waiting for the
/// collector task. Bounded: when the pipeline falls behind by more than `cap` samples,
/// the oldest are dropped and counted.
struct Inbox {
    samples: Mutex<Vec<Sample>>,
    cap: usize,
    dropped: AtomicU64,
    ended: Mutex<Option<StatusCode>>,
    ready: Notify,
}

impl Inbox {
    fn new(points: usize) -> Self {
        Inbox {
            samples: Mutex::new(Vec::new()),
            cap: points.saturating_mul(64).max(65_536),
            dropped: AtomicU64::new(0),
            ended: Mutex::new(None),
            ready: Notify::new(),
        }
    }

    fn push(&self, new: impl IntoIterator<Item = Sample>) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.extend(new);
        if samples.len() > self.cap {
            let excess = samples.len() - self.cap;
            samples.drain(..excess);
            self.dropped.fetch_add(excess as u64, Ordering::Relaxed);
        }
        drop(samples);
        self.ready.notify_one();
    }

    fn take(&self) -> (Vec<Sample>, u64) {
        let samples = std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()));
        (samples, self.dropped.swap(0, Ordering::Relaxed))
    }

    fn end(&self, status: StatusCode) {
        *self.ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
        self.ready.notify_one();
    }

    fn subscription_ended(&self) -> Option<StatusCode> {
        *self.ended.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The subscription's callback: each publish response's data changes become one batch of
/// samples in the inbox. The monitored items' client handles are point indexes + 1.
struct Notifications {
    reporter: Reporter,
    inbox: Arc<Inbox>,
}

impl OnSubscriptionNotificationCore for Notifications {
    fn on_subscription_notification(
        &mut self,
        notification: NotificationMessage,
        _items: MonitoredItemMap<'_>,
    ) {
        let Some(data) = notification.notification_data else {
            return;
        };
        let now = clock::now_ms();
        let mut batch = Vec::new();
        for object in data {
            if object.inner_is::<DataChangeNotification>() {
                let Some(change) = object.into_inner_as::<DataChangeNotification>() else {
                    continue;
                };
                for item in change.monitored_items.into_iter().flatten() {
                    if let Some(i) = (item.client_handle as usize).checked_sub(1) {
                        batch.extend(self.reporter.sample(i, &item.value, now));
                    }
                }
            } else if let Some(status) = object.into_inner_as::<StatusChangeNotification>()
                && status.status.is_bad()
            {
                self.inbox.end(status.status);
            }
        }
        if !batch.is_empty() {
            self.inbox.push(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_counts_keep_alive_every_10s_and_live_a_minute() {
        assert_eq!(subscription_counts(Duration::from_millis(100)), (100, 600));
        assert_eq!(subscription_counts(Duration::from_secs(1)), (10, 60));
        assert_eq!(subscription_counts(Duration::from_secs(30)), (1, 3));
    }

    #[test]
    fn the_inbox_drops_the_oldest_beyond_its_cap() {
        let inbox = Inbox {
            cap: 3,
            ..Inbox::new(0)
        };
        let s = |n: i64| Sample::bad("d".into(), "p".into(), n, "x");
        inbox.push((0..5).map(s));
        let (samples, dropped) = inbox.take();
        assert_eq!(
            samples.iter().map(|s| s.ts).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        assert_eq!(dropped, 2);
    }
}
