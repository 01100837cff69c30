//! Prometheus metrics, encoded at scrape time from the agent's counters (prometheus-client's
//! `Collector`), so the pipeline only ever touches atomics.

use crate::outbox::oldest_awaiting_ack_age;
use crate::telemetry::Telemetry;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The agent's registry: every metric is named `fieldlink_*`.
pub fn registry(telemetry: Arc<Telemetry>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(AgentCollector(telemetry)));
    registry
}

#[derive(Debug)]
struct AgentCollector(Arc<Telemetry>);

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// One series per device: `value(device)` for each.
fn per_device<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    devices: &[Arc<crate::telemetry::DeviceTelemetry>],
    value: impl Fn(&crate::telemetry::DeviceTelemetry) -> M,
) -> Result<(), std::fmt::Error> {
    let mut metric_encoder = encoder.encode_descriptor(name, help, None, metric_type)?;
    for d in devices {
        let labels = [("device", &*d.name)];
        value(d).encode(metric_encoder.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for AgentCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = &self.0;
        let devices = t.devices();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        per_device(
            &mut encoder,
            "fieldlink_samples_collected",
            "Samples read from the device and handed to the batcher",
            MetricType::Counter,
            &devices,
            |d| ConstCounter::new(load(&d.collected)),
        )?;
        per_device(
            &mut encoder,
            "fieldlink_read_errors",
            "Failed requests to the device (timeouts, exceptions, transport errors)",
            MetricType::Counter,
            &devices,
            |d| ConstCounter::new(load(&d.stats.read_errors)),
        )?;
        per_device(
            &mut encoder,
            "fieldlink_missed_ticks",
            "Poll ticks skipped because the previous cycle overran",
            MetricType::Counter,
            &devices,
            |d| ConstCounter::new(load(&d.stats.missed_ticks)),
        )?;
        per_device(
            &mut encoder,
            "fieldlink_device_reconnects",
            "Failed or lost connections to the device",
            MetricType::Counter,
            &devices,
            |d| ConstCounter::new(load(&d.stats.reconnects)),
        )?;
        per_device(
            &mut encoder,
            "fieldlink_device_connected",
            "1 while the transport to the device is up",
            MetricType::Gauge,
            &devices,
            |d| ConstGauge::new(i64::from(d.stats.connected.load(Ordering::Relaxed))),
        )?;
        {
            let mut metric_encoder = encoder.encode_descriptor(
                "fieldlink_cycle_seconds",
                "Read-cycle time per device (the last cycle of each second)",
                None,
                MetricType::Histogram,
            )?;
            for d in &devices {
                let labels = [("device", &*d.name)];
                d.cycle_seconds
                    .encode(metric_encoder.encode_family(&labels)?)?;
            }
        }
        let o = t.outbox.stats();
        gauge(
            &mut encoder,
            "fieldlink_outbox_batches",
            "Batches waiting in the outbox",
            o.batches as f64,
        )?;
        gauge(
            &mut encoder,
            "fieldlink_outbox_samples",
            "Samples waiting in the outbox",
            o.samples as f64,
        )?;
        gauge(
            &mut encoder,
            "fieldlink_outbox_payload_bytes",
            "Payload bytes waiting in the outbox",
            o.payload_bytes as f64,
        )?;
        gauge(
            &mut encoder,
            "fieldlink_outbox_file_bytes",
            "Size of the outbox file",
            o.file_bytes as f64,
        )?;
        gauge(
            &mut encoder,
            "fieldlink_outbox_cap_bytes",
            "The outbox's configured cap",
            t.outbox_cap as f64,
        )?;
        gauge(
            &mut encoder,
            "fieldlink_outbox_awaiting_ack_batches",
            "Batches the broker took that await the platform's ack",
            o.awaiting_ack_batches as f64,
        )?;
        gauge(
            &mut encoder,
            "fieldlink_outbox_oldest_awaiting_ack_seconds",
            "How long the batch awaiting the platform's ack the longest has waited (0: none)",
            oldest_awaiting_ack_age(&o).map_or(0.0, |age| age.as_secs_f64()),
        )?;
        counter(
            &mut encoder,
            "fieldlink_outbox_evicted_batches",
            "Batches evicted at the cap since the outbox was created",
            o.evicted_batches,
        )?;
        counter(
            &mut encoder,
            "fieldlink_outbox_evicted_samples",
            "Samples evicted at the cap since the outbox was created",
            o.evicted_samples,
        )?;
        counter(
            &mut encoder,
            "fieldlink_outbox_lost_samples",
            "Samples the outbox refused (disk full, I/O errors)",
            load(&t.lost_samples),
        )?;
        counter(
            &mut encoder,
            "fieldlink_published_batches",
            "Batches acknowledged by the broker",
            load(&t.mqtt.published_batches),
        )?;
        counter(
            &mut encoder,
            "fieldlink_published_samples",
            "Samples in batches acknowledged by the broker",
            load(&t.mqtt.published_samples),
        )?;
        counter(
            &mut encoder,
            "fieldlink_platform_acks",
            "Acks received from the platform",
            load(&t.mqtt.platform_acks),
        )?;
        counter(
            &mut encoder,
            "fieldlink_platform_acknowledged_batches",
            "Batches deleted from the outbox because the platform's ack covered them",
            load(&t.mqtt.acknowledged_batches),
        )?;
        counter(
            &mut encoder,
            "fieldlink_resent_batches",
            "Batches sent again: an ack listed them as missing, or none covered them in time",
            load(&t.mqtt.resent_batches),
        )?;
        counter(
            &mut encoder,
            "fieldlink_resent_missing_batches",
            "Sent batches the platform's acks listed as missing",
            load(&t.mqtt.resent_missing),
        )?;
        counter(
            &mut encoder,
            "fieldlink_resent_timeout_batches",
            "Sent batches that no ack covered within the ack timeout",
            load(&t.mqtt.resent_timeout),
        )?;
        counter(
            &mut encoder,
            "fieldlink_mqtt_reconnects",
            "MQTT sessions lost",
            load(&t.mqtt.reconnects),
        )?;
        gauge(
            &mut encoder,
            "fieldlink_mqtt_connected",
            "1 while connected to the broker",
            f64::from(u8::from(t.mqtt.connected.load(Ordering::Relaxed))),
        )?;
        gauge(
            &mut encoder,
            "fieldlink_mqtt_in_flight",
            "Batches sent and not yet acknowledged",
            load(&t.mqtt.in_flight) as f64,
        )?;
        t.mqtt.publish_seconds.encode(encoder.encode_descriptor(
            "fieldlink_publish_seconds",
            "Time from sending a batch to its PUBACK",
            None,
            MetricType::Histogram,
        )?)?;
        Ok(())
    }
}
