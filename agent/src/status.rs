//! The local status endpoint: `/healthz`, `/status` (JSON) and `/metrics` (Prometheus
//! text), served on `[status] listen`, loopback by default. Also the once-a-second sampler
//! that turns counters into rates, the retention estimate and cycle-time histograms.

use crate::metrics;
use crate::outbox::oldest_awaiting_ack_age;
use crate::telemetry::Telemetry;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fieldlink_collector_api::clock;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long the batcher or publisher may go without a beat before the agent is unhealthy
/// (their loops turn at least every second while they are alive and not stuck).
pub const STALL_LIMIT_MS: i64 = 15_000;

/// A redb file grows by doubling, so a full outbox holds about half its cap in payload
/// (40-60% measured); retention estimates use this share.
pub const USABLE_SHARE_OF_CAP: f64 = 0.5;

/// What `/status` answers and `fieldlink status` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// The gateway id.
    pub gateway: String,
    /// The agent's version.
    pub version: String,
    /// When the agent started, ms since the epoch.
    pub started_at_ms: i64,
    /// True while the pipeline runs as it should.
    pub healthy: bool,
    /// Why not, when not.
    pub problems: Vec<String>,
    /// Per device.
    pub devices: Vec<DeviceStatus>,
    /// The outbox.
    pub outbox: OutboxStatus,
    /// The MQTT side.
    pub mqtt: MqttStatus,
}

/// One device's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// Its name.
    pub name: String,
    /// Its protocol.
    pub protocol: String,
    /// True while the transport to it is up.
    pub connected: bool,
    /// When a read last succeeded, ms since the epoch (0: never).
    pub last_good_read_ms: i64,
    /// Completed read cycles.
    pub cycles: u64,
    /// Failed requests.
    pub read_errors: u64,
    /// Poll ticks skipped because a cycle overran.
    pub missed_ticks: u64,
    /// Failed or lost connections.
    pub reconnects: u64,
    /// How long the last cycle took, ms.
    pub last_cycle_ms: f64,
    /// Samples handed to the batcher.
    pub samples_collected: u64,
}

/// The outbox's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxStatus {
    /// Batches waiting.
    pub batches: u64,
    /// Samples in them.
    pub samples: u64,
    /// Their payload bytes.
    pub payload_bytes: u64,
    /// The store's file size.
    pub file_bytes: u64,
    /// The configured cap.
    pub cap_bytes: u64,
    /// Age of the oldest waiting batch, seconds.
    pub oldest_age_s: Option<f64>,
    /// Batches the broker took that await the platform's ack (`delete_on =
    /// "platform_ack"`; always 0 with `"puback"`).
    #[serde(default)]
    pub awaiting_ack_batches: u64,
    /// How long the batch awaiting the platform's ack the longest has waited since the
    /// broker took it, seconds.
    #[serde(default)]
    pub oldest_awaiting_ack_age_s: Option<f64>,
    /// Batches evicted at the cap since the store was created.
    pub evicted_batches: u64,
    /// Samples in them.
    pub evicted_samples: u64,
    /// Samples lost because the outbox refused them.
    pub lost_samples: u64,
    /// Why writes fail, while they do.
    pub write_error: Option<String>,
    /// Bytes appended per second (recent average).
    pub append_bytes_per_s: f64,
    /// Batches appended per second (recent average).
    pub append_batches_per_s: f64,
    /// Hours of outage the cap covers at the current rate (`None` before any data).
    pub retention_hours: Option<f64>,
}

/// The MQTT side's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MqttStatus {
    /// True while connected.
    pub connected: bool,
    /// When the last batch was acknowledged, ms since the epoch (0: never).
    pub last_ack_ms: i64,
    /// Batches in flight.
    pub in_flight: u64,
    /// Sessions lost.
    pub reconnects: u64,
    /// Batches acknowledged.
    pub published_batches: u64,
    /// Samples acknowledged.
    pub published_samples: u64,
    /// Batches acknowledged per second (recent average).
    pub publish_batches_per_s: f64,
    /// Batches deleted because the platform's ack covered them.
    #[serde(default)]
    pub platform_acknowledged_batches: u64,
    /// Batches sent again: an ack listed them as missing, or none covered them in time.
    #[serde(default)]
    pub resent_batches: u64,
    /// Batches waiting when the current session started (the backlog being drained).
    pub backlog_at_connect: u64,
    /// When the current session started, ms since the epoch (0: never connected).
    #[serde(default)]
    pub connected_at_ms: i64,
    /// The last connection error.
    pub last_error: Option<String>,
}

/// Recent rates, kept as `f64` bits in atomics by the sampler.
#[derive(Debug, Default)]
pub struct Rates {
    append_bytes: AtomicU64,
    append_batches: AtomicU64,
    publish_batches: AtomicU64,
}

fn load(a: &AtomicU64) -> f64 {
    f64::from_bits(a.load(Ordering::Relaxed))
}

/// Builds the status report from the counters.
pub fn report(t: &Telemetry, rates: &Rates) -> StatusReport {
    let now = clock::now_ms();
    let devices = t
        .devices()
        .iter()
        .map(|d| DeviceStatus {
            name: d.name.to_string(),
            protocol: d.protocol.to_owned(),
            connected: d.stats.connected.load(Ordering::Relaxed),
            last_good_read_ms: d.stats.last_good_read_ms.load(Ordering::Relaxed),
            cycles: d.stats.cycles.load(Ordering::Relaxed),
            read_errors: d.stats.read_errors.load(Ordering::Relaxed),
            missed_ticks: d.stats.missed_ticks.load(Ordering::Relaxed),
            reconnects: d.stats.reconnects.load(Ordering::Relaxed),
            last_cycle_ms: d.stats.last_cycle_us.load(Ordering::Relaxed) as f64 / 1000.0,
            samples_collected: d.collected.load(Ordering::Relaxed),
        })
        .collect();
    let o = t.outbox.stats();
    let append_bytes_per_s = load(&rates.append_bytes);
    let outbox = OutboxStatus {
        batches: o.batches,
        samples: o.samples,
        payload_bytes: o.payload_bytes,
        file_bytes: o.file_bytes,
        cap_bytes: t.outbox_cap,
        oldest_age_s: o
            .oldest_appended_at_ms
            .map(|at| (now - at).max(0) as f64 / 1000.0),
        awaiting_ack_batches: o.awaiting_ack_batches,
        oldest_awaiting_ack_age_s: oldest_awaiting_ack_age(&o).map(|age| age.as_secs_f64()),
        evicted_batches: o.evicted_batches,
        evicted_samples: o.evicted_samples,
        lost_samples: t.lost_samples.load(Ordering::Relaxed),
        write_error: Telemetry::error(&t.outbox_error),
        append_bytes_per_s,
        append_batches_per_s: load(&rates.append_batches),
        retention_hours: retention_hours(t.outbox_cap, append_bytes_per_s),
    };
    let mqtt = MqttStatus {
        connected: t.mqtt.connected.load(Ordering::Relaxed),
        last_ack_ms: t.mqtt.last_ack_ms.load(Ordering::Relaxed),
        in_flight: t.mqtt.in_flight.load(Ordering::Relaxed),
        reconnects: t.mqtt.reconnects.load(Ordering::Relaxed),
        published_batches: t.mqtt.published_batches.load(Ordering::Relaxed),
        published_samples: t.mqtt.published_samples.load(Ordering::Relaxed),
        publish_batches_per_s: load(&rates.publish_batches),
        platform_acknowledged_batches: t.mqtt.acknowledged_batches.load(Ordering::Relaxed),
        resent_batches: t.mqtt.resent_batches.load(Ordering::Relaxed),
        backlog_at_connect: t.mqtt.backlog_at_connect.load(Ordering::Relaxed),
        connected_at_ms: t.mqtt.connected_at_ms.load(Ordering::Relaxed),
        last_error: Telemetry::error(&t.mqtt.last_error),
    };
    let problems = problems(t, now);
    StatusReport {
        gateway: t.gateway.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at_ms: t.started_at_ms,
        healthy: problems.is_empty(),
        problems,
        devices,
        outbox,
        mqtt,
    }
}

/// Hours of outage that `cap` bytes cover at `bytes_per_s`.
pub fn retention_hours(cap: u64, bytes_per_s: f64) -> Option<f64> {
    (bytes_per_s > 0.0).then(|| cap as f64 * USABLE_SHARE_OF_CAP / bytes_per_s / 3600.0)
}

/// What keeps the pipeline from running as it should; empty when healthy. A dead device
/// or a dead broker is not a problem of the agent: it buffers and retries.
pub fn problems(t: &Telemetry, now_ms: i64) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(e) = Telemetry::error(&t.outbox_error) {
        problems.push(format!("the outbox cannot write: {e}"));
    }
    if !t.publisher_alive.load(Ordering::Relaxed) {
        problems.push("the publisher task has died".to_owned());
    }
    for (name, beat) in [
        ("batcher", &t.batcher_beat_ms),
        ("publisher", &t.publisher_beat_ms),
    ] {
        let silent = now_ms - beat.load(Ordering::Relaxed);
        if silent > STALL_LIMIT_MS {
            problems.push(format!(
                "the {name} has made no progress for {} s",
                silent / 1000
            ));
        }
    }
    problems
}

/// Every second: turns counters into recent rates (exponentially weighted over about 30 s)
/// and samples each device's last cycle time into its histogram.
pub async fn sample(t: Arc<Telemetry>, rates: Arc<Rates>, shutdown: CancellationToken) {
    const ALPHA: f64 = 1.0 / 30.0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let outbox = t.outbox.stats();
    let mut last = (
        outbox.appended_bytes_total,
        outbox.next_seq,
        t.mqtt.published_batches.load(Ordering::Relaxed),
    );
    let mut last_cycles: Vec<u64> = Vec::new();
    let mut first = true;
    let mut seconds = 0u64;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        seconds += 1;
        if seconds == 60 || seconds.is_multiple_of(3600) {
            log_retention(&t, &rates);
        }
        let outbox = t.outbox.stats();
        let now = (
            outbox.appended_bytes_total,
            outbox.next_seq,
            t.mqtt.published_batches.load(Ordering::Relaxed),
        );
        let deltas = [
            (&rates.append_bytes, now.0.saturating_sub(last.0)),
            (&rates.append_batches, now.1.saturating_sub(last.1)),
            (&rates.publish_batches, now.2.saturating_sub(last.2)),
        ];
        for (rate, delta) in deltas {
            let smoothed = if first {
                delta as f64
            } else {
                load(rate) * (1.0 - ALPHA) + delta as f64 * ALPHA
            };
            rate.store(smoothed.to_bits(), Ordering::Relaxed);
        }
        first = false;
        last = now;
        let devices = t.devices();
        last_cycles.resize(devices.len(), 0);
        for (d, seen) in devices.iter().zip(last_cycles.iter_mut()) {
            let cycles = d.stats.cycles.load(Ordering::Relaxed);
            if cycles != *seen {
                *seen = cycles;
                d.cycle_seconds
                    .observe(d.stats.last_cycle_us.load(Ordering::Relaxed) as f64 / 1e6);
            }
        }
    }
}

/// States how long an outage the buffer can ride out at the rate now observed, so an
/// integrator can size `[buffer] max_size`.
fn log_retention(t: &Telemetry, rates: &Rates) {
    let bytes_per_s = load(&rates.append_bytes);
    match retention_hours(t.outbox_cap, bytes_per_s) {
        Some(hours) => tracing::info!(
            cap_mib = t.outbox_cap >> 20,
            kib_per_s = format!("{:.1}", bytes_per_s / 1024.0),
            "the outbox covers about {hours:.1} h of broker outage at the current data rate"
        ),
        None => tracing::info!("no data collected in the last minute; outbox retention unknown"),
    }
}

/// The endpoint's shared state.
#[derive(Clone)]
struct Endpoint {
    telemetry: Arc<Telemetry>,
    rates: Arc<Rates>,
    registry: Arc<prometheus_client::registry::Registry>,
}

/// Serves the endpoint on `listener` until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    telemetry: Arc<Telemetry>,
    rates: Arc<Rates>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let registry = Arc::new(metrics::registry(telemetry.clone()));
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .route("/metrics", get(metrics_text))
        .with_state(Endpoint {
            telemetry,
            rates,
            registry,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn healthz(State(e): State<Endpoint>) -> Response {
    let problems = problems(&e.telemetry, clock::now_ms());
    if problems.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", problems.join("\n")),
        )
            .into_response()
    }
}

async fn status(State(e): State<Endpoint>) -> Response {
    axum::Json(report(&e.telemetry, &e.rates)).into_response()
}

async fn metrics_text(State(e): State<Endpoint>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &e.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response(),
    }
}
