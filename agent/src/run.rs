//! Composes the pipeline and runs it until shutdown.

use crate::batcher::{self, BatcherContext};
use crate::collectors;
use crate::config::AgentConfig;
use crate::outbox::SharedOutbox;
use crate::publisher::{self, PublisherContext};
use crate::report::ReportFilter;
use fieldlink_collector_api::{CollectorContext, DeviceStats, SampleSink, clock};
use fieldlink_outbox::{Outbox, OutboxOptions};
use fieldlink_wire::{DeviceMeta, GatewayState, Meta, PointMeta, Status};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Batches of samples the collectors may hand over before they wait for the batcher.
const SAMPLE_CHANNEL: usize = 1024;
/// How long collectors get to stop after shutdown is requested.
const COLLECTOR_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The outbox's page cache.
const OUTBOX_CACHE_BYTES: usize = 4 << 20;

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No gateway id: set `[gateway] id` or enroll the gateway.
    #[error(
        "no gateway id: set [gateway] id in the config, or enroll this gateway with `fieldlink enroll`"
    )]
    NoGatewayId,
    /// The outbox could not be opened or created (permissions, disk).
    #[error("cannot open the outbox in {dir}: {source}")]
    Outbox {
        /// The state directory.
        dir: String,
        /// The store's error.
        source: crate::outbox::StoreError,
    },
}

/// Runs the agent with `config` until `shutdown` fires, then stops in order: collectors,
/// batcher (everything collected goes into the outbox and is flushed), publisher (sends
/// what it can within the shutdown timeout, then says offline and disconnects).
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<(), RunError> {
    let gateway = config.gateway.id.clone().ok_or(RunError::NoGatewayId)?;
    let outbox = open_outbox(&config).await?;

    let (samples_tx, samples_rx) = mpsc::channel(SAMPLE_CHANNEL);
    let (appended_tx, appended_rx) = watch::channel(0u64);
    let collectors_stop = CancellationToken::new();
    let mut collectors = JoinSet::new();
    for device in &config.devices {
        let collector = collectors::build(device);
        let cx = CollectorContext {
            sink: SampleSink::new(samples_tx.clone()),
            shutdown: collectors_stop.child_token(),
            stats: Arc::new(DeviceStats::default()),
        };
        collectors.spawn(collector.run(cx));
    }
    drop(samples_tx);

    let batcher = tokio::spawn(batcher::run(BatcherContext {
        gateway: gateway.clone(),
        samples_rx,
        filter: ReportFilter::new(&config.devices),
        outbox: outbox.clone(),
        appended_tx,
        max_samples: config.publish.batch_max_samples.get(),
        max_delay: config.publish.batch_max_delay,
        flush_interval: config.buffer.flush_interval,
    }));
    let finish = CancellationToken::new();
    let publisher = tokio::spawn(publisher::run(PublisherContext {
        gateway: gateway.clone(),
        platform: config.platform.clone(),
        max_inflight: config.publish.max_inflight.get(),
        backlog_share: config.publish.backlog_share,
        shutdown_timeout: config.publish.shutdown_timeout,
        outbox: outbox.clone(),
        appended_rx,
        finish: finish.clone(),
        birth: Status {
            state: GatewayState::Online,
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            started_at: Some(clock::now_ms()),
            backlog_batches: None,
            evicted_batches: None,
        },
        meta: meta(&config),
    }));
    tracing::info!(gateway = %gateway, devices = config.devices.len(), broker = %config.platform.mqtt, "fieldlink running");

    shutdown.cancelled().await;
    tracing::info!("shutting down: stopping collectors");
    collectors_stop.cancel();
    let stopped = tokio::time::timeout(COLLECTOR_STOP_TIMEOUT, async {
        while collectors.join_next().await.is_some() {}
    })
    .await;
    if stopped.is_err() {
        tracing::warn!("some collectors did not stop in time; aborting them");
        collectors.shutdown().await;
    }
    match batcher.await {
        Ok(0) => tracing::info!("everything collected is in the outbox"),
        Ok(lost) => tracing::error!(samples = lost, "samples could not be written to the outbox"),
        Err(e) => tracing::error!(error = %e, "the batcher failed"),
    }
    finish.cancel();
    if let Err(e) = publisher.await {
        tracing::error!(error = %e, "the publisher failed");
    }
    let left = outbox.stats().batches;
    tracing::info!(
        unpublished_batches = left,
        "stopped; unpublished batches stay in the outbox"
    );
    Ok(())
}

async fn open_outbox(config: &AgentConfig) -> Result<SharedOutbox, RunError> {
    let dir = config.gateway.state_dir.clone();
    let options = OutboxOptions {
        path: dir.join("outbox.redb"),
        max_bytes: config.buffer.max_size,
        cache_bytes: OUTBOX_CACHE_BYTES,
    };
    let opened = tokio::task::spawn_blocking(move || Outbox::open(options)).await;
    let outcome = match opened {
        Ok(result) => result.map_err(crate::outbox::StoreError::from),
        Err(e) => Err(crate::outbox::StoreError::Task(e.to_string())),
    };
    let (outbox, report) = outcome.map_err(|source| RunError::Outbox {
        dir: dir.display().to_string(),
        source,
    })?;
    if let (Some(aside), Some(why)) = (&report.moved_aside, &report.error) {
        tracing::error!(moved_to = %aside.display(), error = %why, "the outbox was damaged; it was moved aside and a fresh one started");
    }
    tracing::info!(
        pending_batches = report.pending_batches,
        next_seq = report.next_seq,
        "outbox open"
    );
    Ok(SharedOutbox::new(outbox))
}

/// The device and point catalogue published on `meta`.
pub fn meta(config: &AgentConfig) -> Meta {
    Meta {
        devices: config
            .devices
            .iter()
            .map(|d| DeviceMeta {
                name: d.name.to_string(),
                protocol: d.kind.protocol().to_owned(),
                points: d
                    .points
                    .iter()
                    .map(|p| PointMeta {
                        name: p.name.to_string(),
                        data_type: p.data_type.to_owned(),
                        unit: p.unit.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}
