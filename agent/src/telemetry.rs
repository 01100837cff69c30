//! Live counters of the whole agent: the pipeline's tasks update them with atomic
//! operations, and the status endpoint, the metrics, the watchdog and the log summaries
//! read them. Nothing here allocates on the hot path.

use crate::outbox::SharedOutbox;
use fieldlink_collector_api::{DeviceStats, clock};
use fieldlink_wire::DeviceHealth;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Publish latencies (send to PUBACK) and read-cycle times are kept in these buckets, in
/// seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// One device as the agent sees it.
#[derive(Debug)]
pub struct DeviceTelemetry {
    /// The device's name.
    pub name: Arc<str>,
    /// Its protocol's configuration name.
    pub protocol: &'static str,
    /// The collector's own counters.
    pub stats: Arc<DeviceStats>,
    /// Samples the batcher received from it.
    pub collected: AtomicU64,
    /// Its read-cycle times, sampled from `stats` each second.
    pub cycle_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl DeviceTelemetry {
    /// Counters for a device about to start.
    pub fn new(name: Arc<str>, protocol: &'static str) -> Self {
        DeviceTelemetry {
            name,
            protocol,
            stats: Arc::new(DeviceStats::default()),
            collected: AtomicU64::new(0),
            cycle_seconds: prometheus_client::metrics::histogram::Histogram::new(LATENCY_BUCKETS),
        }
    }

    /// Its health as the retained status reports it: a few counter reads, no per-sample
    /// work. `errors` adds failed reads to failed or lost connections, so that a device
    /// that refuses connections counts errors too.
    pub fn health(&self) -> DeviceHealth {
        let stats = &self.stats;
        let last_good_ms = stats.last_good_read_ms.load(Ordering::Relaxed);
        DeviceHealth {
            name: self.name.to_string(),
            protocol: self.protocol.to_owned(),
            connected: stats.connected.load(Ordering::Relaxed),
            last_good_ms: (last_good_ms > 0).then_some(last_good_ms),
            errors: stats
                .read_errors
                .load(Ordering::Relaxed)
                .saturating_add(stats.reconnects.load(Ordering::Relaxed)),
            last_error: stats.last_error.get(),
        }
    }
}

/// The MQTT side.
#[derive(Debug)]
pub struct MqttTelemetry {
    /// True while a session is up.
    pub connected: AtomicBool,
    /// Sessions that ended without being asked to.
    pub reconnects: AtomicU64,
    /// When the last PUBACK for a batch arrived, ms since the epoch (0: never).
    pub last_ack_ms: AtomicI64,
    /// Batches sent and not yet acknowledged.
    pub in_flight: AtomicU64,
    /// Batches waiting in the outbox when the current session started.
    pub backlog_at_connect: AtomicU64,
    /// When the current session started, ms since the epoch (0: never connected).
    pub connected_at_ms: AtomicI64,
    /// Batches acknowledged by the broker.
    pub published_batches: AtomicU64,
    /// Samples in the batches acknowledged by the broker.
    pub published_samples: AtomicU64,
    /// Batches sent again because the platform's ack listed them as missing or none covered
    /// them in time (`delete_on = "platform_ack"`).
    pub resent_batches: AtomicU64,
    /// Sent batches the platform's acks listed as missing (made pending again).
    pub resent_missing: AtomicU64,
    /// Sent batches that no ack covered in time (made pending again).
    pub resent_timeout: AtomicU64,
    /// Acks received from the platform.
    pub platform_acks: AtomicU64,
    /// Batches deleted from the outbox because the platform's ack covered them.
    pub acknowledged_batches: AtomicU64,
    /// Send-to-PUBACK latency of batches.
    pub publish_seconds: prometheus_client::metrics::histogram::Histogram,
    /// The last connection error, for status.
    pub last_error: Mutex<Option<String>>,
}

/// Everything the agent counts.
#[derive(Debug)]
pub struct Telemetry {
    /// When the agent started, ms since the epoch.
    pub started_at_ms: i64,
    /// The gateway id.
    pub gateway: String,
    /// The configured devices, in configuration order (replaced on reload).
    pub devices: Mutex<Vec<Arc<DeviceTelemetry>>>,
    /// The MQTT side.
    pub mqtt: MqttTelemetry,
    /// The outbox.
    pub outbox: SharedOutbox,
    /// The outbox's cap, bytes.
    pub outbox_cap: u64,
    /// Samples lost because the outbox refused them (disk full, I/O errors).
    pub lost_samples: AtomicU64,
    /// Why the outbox last refused a write; `None` once a write succeeds again.
    pub outbox_error: Mutex<Option<String>>,
    /// Last time the batcher's loop turned, ms since the epoch.
    pub batcher_beat_ms: AtomicI64,
    /// Last time the publisher's loop turned, ms since the epoch.
    pub publisher_beat_ms: AtomicI64,
    /// False once the publisher task has ended while the agent was not stopping.
    pub publisher_alive: AtomicBool,
}

impl Telemetry {
    /// Counters for an agent about to start.
    pub fn new(gateway: String, outbox: SharedOutbox, outbox_cap: u64) -> Self {
        let now = clock::now_ms();
        Telemetry {
            started_at_ms: now,
            gateway,
            devices: Mutex::new(Vec::new()),
            mqtt: MqttTelemetry {
                connected: AtomicBool::new(false),
                reconnects: AtomicU64::new(0),
                last_ack_ms: AtomicI64::new(0),
                in_flight: AtomicU64::new(0),
                backlog_at_connect: AtomicU64::new(0),
                connected_at_ms: AtomicI64::new(0),
                published_batches: AtomicU64::new(0),
                published_samples: AtomicU64::new(0),
                resent_batches: AtomicU64::new(0),
                resent_missing: AtomicU64::new(0),
                resent_timeout: AtomicU64::new(0),
                platform_acks: AtomicU64::new(0),
                acknowledged_batches: AtomicU64::new(0),
                publish_seconds: prometheus_client::metrics::histogram::Histogram::new(
                    LATENCY_BUCKETS,
                ),
                last_error: Mutex::new(None),
            },
            outbox,
            outbox_cap,
            lost_samples: AtomicU64::new(0),
            outbox_error: Mutex::new(None),
            batcher_beat_ms: AtomicI64::new(now),
            publisher_beat_ms: AtomicI64::new(now),
            publisher_alive: AtomicBool::new(true),
        }
    }

    /// The devices now configured.
    pub fn devices(&self) -> Vec<Arc<DeviceTelemetry>> {
        self.devices.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// Records a beat of the batcher or the publisher.
    pub fn beat(beat: &AtomicI64) {
        beat.store(clock::now_ms(), Ordering::Relaxed);
    }

    /// Sets or clears a remembered error.
    pub fn set_error(slot: &Mutex<Option<String>>, error: Option<String>) {
        if let Ok(mut slot) = slot.lock() {
            *slot = error;
        }
    }

    /// A remembered error.
    pub fn error(slot: &Mutex<Option<String>>) -> Option<String> {
        slot.lock().ok().and_then(|e| e.clone())
    }
}
