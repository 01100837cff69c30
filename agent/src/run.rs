//! Composes the pipeline, applies reloads, and shuts it down in order.

use crate::batcher::{self, BatcherContext};
use crate::config::{AgentConfig, DeleteOn, DeviceConfig};
use crate::notify::{self, Notifier};
use crate::outbox::{SharedOutbox, StoreError};
use crate::publisher::{self, PublisherContext};
use crate::remote_config::{self, Accepted, RemoteConfigContext};
use crate::report::ReportFilter;
use crate::status::{self, Rates};
use crate::supervisor::Supervisor;
use crate::telemetry::Telemetry;
use fieldlink_outbox::{Outbox, OutboxOptions};
use fieldlink_wire::codec::DEFAULT_ZSTD_LEVEL;
use fieldlink_wire::{
    Compression, DeviceMeta, GatewayState, Meta, PointMeta, ResumedAfterCrash, Status,
};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Samples the collectors may have handed over before they wait for the batcher, about: the
/// channel holds whole cycles, as many as make this many samples of the largest device (50
/// cycles of 1,000 points, 500 of 100), so that its memory (about 80 bytes a sample, 4 MB)
/// stays bounded when the batcher falls behind, whatever the devices.
const QUEUED_SAMPLES: usize = 50_000;
/// The most cycles the channel holds.
const SAMPLE_CHANNEL_MAX: usize = 1024;
/// The fewest: room for a burst of small devices.
const SAMPLE_CHANNEL_MIN: usize = 16;
/// The outbox's cache of the newest payloads: the publisher reads what was just appended
/// from memory (22 JSON batches of 1,000 samples, 400 zstd ones); a backlog comes from the
/// file. Its index's loaded entries take a quarter as much again.
const OUTBOX_CACHE_BYTES: usize = 2 << 20;

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No gateway id: set `[gateway] id` or enroll the gateway.
    #[error(
        "no gateway id: set [gateway] id in the config, or enroll this gateway with `fieldlink enroll`"
    )]
    NoGatewayId,
    /// The stored enrollment could not be read: enroll again.
    #[error("the stored enrollment is unusable: {0}")]
    Enrollment(crate::enroll::EnrollError),
    /// The outbox could not be opened or created (permissions, disk).
    #[error("cannot open the outbox in {dir}: {error}")]
    Outbox {
        /// The state directory.
        dir: String,
        /// The store's error (in the message, so not repeated as a cause).
        error: StoreError,
    },
}

impl From<crate::enroll::EnrollError> for RunError {
    fn from(e: crate::enroll::EnrollError) -> Self {
        RunError::Enrollment(e)
    }
}

/// How the outside world steers a running agent.
pub struct Controls {
    /// Fires to stop the agent.
    pub shutdown: CancellationToken,
    /// New, already validated configurations to apply (SIGHUP).
    pub reload_rx: Option<mpsc::Receiver<AgentConfig>>,
    /// The service manager.
    pub notifier: Arc<Notifier>,
}

/// Runs the agent with `config` until `shutdown` fires.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<(), RunError> {
    run_with(
        config,
        Controls {
            shutdown,
            reload_rx: None,
            notifier: Arc::new(Notifier::from_env()),
        },
    )
    .await
}

/// Runs the agent until `controls.shutdown` fires, applying reloads meanwhile, then stops
/// in order: collectors, batcher (everything collected goes into the outbox and is
/// flushed), publisher (sends what it can within the shutdown timeout, then says offline
/// and disconnects).
pub async fn run_with(config: AgentConfig, controls: Controls) -> Result<(), RunError> {
    let Controls {
        shutdown,
        mut reload_rx,
        notifier,
    } = controls;
    let mut local = config;
    let enrollment = crate::enroll::load(&local.gateway.state_dir)?;
    let enrolled = enrollment.is_some();
    if let Some(enrollment) = enrollment {
        crate::enroll::apply(&mut local, &enrollment)?;
        tracing::info!(gateway = %enrollment.gateway_id, enterprise = %enrollment.enterprise.name, "using this gateway's enrollment");
    }
    let gateway = local.gateway.id.clone().ok_or(RunError::NoGatewayId)?;
    let (mut remote, config_state) =
        remote_config::load_last_good(&local.gateway.state_dir, &gateway);
    let config = effective(&local, remote.as_ref());
    let delete_on = delete_on(config.publish.delete_on, enrolled);
    let compression = compression(config.publish.compression, enrolled);
    let (outbox, resumed_after_crash) = open_outbox(&config).await?;
    let telemetry = Arc::new(Telemetry::new(
        gateway.clone(),
        outbox.clone(),
        config.buffer.max_size,
    ));
    let rates = Arc::new(Rates::default());
    let background = CancellationToken::new();
    let mut helpers = tokio::task::JoinSet::new();
    helpers.spawn(status::sample(
        telemetry.clone(),
        rates.clone(),
        background.clone(),
    ));
    match tokio::net::TcpListener::bind(config.status.listen).await {
        Ok(listener) => {
            tracing::info!(listen = %listener.local_addr().map_or(config.status.listen, |a| a), "status endpoint: /healthz /status /metrics");
            let (t, r, stop) = (telemetry.clone(), rates.clone(), background.clone());
            helpers.spawn(async move {
                if let Err(e) = status::serve(listener, t, r, stop).await {
                    tracing::error!(error = %e, "the status endpoint failed");
                }
            });
        }
        Err(e) => {
            tracing::error!(listen = %config.status.listen, error = %e, "cannot serve the status endpoint; running without it")
        }
    }

    let (samples_tx, samples_rx) = mpsc::channel(sample_channel(&config.devices));
    let (appended_tx, appended_rx) = watch::channel(0u64);
    let (devices_tx, devices_rx) = mpsc::channel(4);
    let (meta_tx, meta_rx) = watch::channel(meta(&config.devices));
    let (payloads_tx, payloads_rx) = watch::channel(None);
    let (accepted_tx, mut accepted_rx) = mpsc::channel(1);
    let (config_state_tx, config_state_rx) = watch::channel(config_state.clone());
    helpers.spawn(remote_config::run(RemoteConfigContext {
        gateway: gateway.clone(),
        state_dir: local.gateway.state_dir.clone(),
        payloads: payloads_rx,
        accepted_tx,
        state: config_state_tx,
        shutdown: background.clone(),
    }));
    let mut supervisor = Supervisor::new(samples_tx, telemetry.clone());
    supervisor.apply(&config.devices).await;

    let batcher = tokio::spawn(batcher::run(BatcherContext {
        gateway: gateway.clone(),
        samples_rx,
        filter: ReportFilter::new(&config.devices),
        reload_rx: devices_rx,
        telemetry: telemetry.clone(),
        outbox: outbox.clone(),
        appended_tx,
        max_samples: config.publish.batch_max_samples.get(),
        max_delay: config.publish.batch_max_delay,
        flush_interval: config.buffer.flush_interval,
        compression,
    }));
    let finish = CancellationToken::new();
    let publisher = tokio::spawn(publisher::run(PublisherContext {
        gateway: gateway.clone(),
        platform: config.platform.clone(),
        max_inflight: config.publish.max_inflight.get(),
        backlog_share: config.publish.backlog_share,
        shutdown_timeout: config.publish.shutdown_timeout,
        delete_on,
        ack_timeout: config.publish.ack_timeout,
        outbox: outbox.clone(),
        appended_rx,
        finish: finish.clone(),
        birth: Status {
            state: GatewayState::Online,
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            started_at: Some(telemetry.started_at_ms),
            resumed_after_crash,
            // Replaced by the config state as it is at each status.
            config: Some(config_state),
            ..Status::offline()
        },
        status_refresh: config.status.refresh,
        meta_rx,
        configs_tx: payloads_tx,
        config_state_rx,
        telemetry: telemetry.clone(),
    }));
    if let Some(interval) = notify::watchdog_interval() {
        helpers.spawn(notify::watchdog(
            telemetry.clone(),
            notifier.clone(),
            interval,
            background.clone(),
        ));
    }
    crate::memory::release_freed();
    helpers.spawn(crate::memory::release_unused(background.clone()));
    notifier.notify("READY=1");
    tracing::info!(gateway = %gateway, devices = config.devices.len(), broker = %config.platform.mqtt, ?delete_on, ?compression, "fieldlink running");

    let mut current = config;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            next = recv(&mut reload_rx) => match next {
                Some(next) => {
                    if let Some(remote) = &remote && next.devices != local.devices {
                        tracing::warn!(version = remote.version, "the local file's devices changed, but the platform's config decides the devices while it is in force");
                    }
                    // The enrollment stays applied: only the devices and their rules reload.
                    local.devices = next.devices;
                }
                None => {
                    reload_rx = None;
                    continue;
                }
            },
            Some(accepted) = accepted_rx.recv() => remote = Some(accepted),
        }
        let next = effective(&local, remote.as_ref());
        notifier.notify("RELOADING=1");
        for section in restart_only_changes(&current, &next) {
            tracing::warn!(
                section,
                "this section changed; it takes effect at the next restart"
            );
        }
        let changes = supervisor.apply(&next.devices).await;
        let _ = devices_tx.send(next.devices.clone()).await;
        meta_tx.send_replace(meta(&next.devices));
        tracing::info!(started = ?changes.started, stopped = ?changes.stopped, unchanged = changes.unchanged, "configuration reloaded");
        current.devices = next.devices;
        crate::memory::release_freed();
        notifier.notify("READY=1");
    }
    // The config task may be waiting to hand over a config: it stops on the closed channel.
    drop(accepted_rx);

    notifier.notify("STOPPING=1");
    tracing::info!("shutting down: stopping collectors");
    supervisor.shutdown().await;
    drop(devices_tx);
    match batcher.await {
        Ok(0) => tracing::info!("everything collected is in the outbox"),
        Ok(lost) => tracing::error!(samples = lost, "samples could not be written to the outbox"),
        Err(e) => tracing::error!(error = %e, "the batcher failed"),
    }
    finish.cancel();
    if let Err(e) = publisher.await {
        tracing::error!(error = %e, "the publisher failed");
    }
    background.cancel();
    while helpers.join_next().await.is_some() {}
    match outbox.pending_batches().await {
        Ok(left) => tracing::info!(
            unpublished_batches = left,
            "stopped; unpublished batches stay in the outbox"
        ),
        Err(e) => tracing::error!(error = %e, "stopped; the unpublished batches cannot be counted"),
    }
    Ok(())
}

/// The config the agent runs: the local file's, with the platform's `[publish]` and devices
/// while a config from the platform is in force.
fn effective(local: &AgentConfig, remote: Option<&Accepted>) -> AgentConfig {
    match remote {
        Some(accepted) => crate::config::with_remote(
            local,
            accepted.remote.clone(),
            &remote_config::label(accepted.version),
        ),
        None => local.clone(),
    }
}

/// When sent batches leave the outbox: as configured, or else on the platform's ack for a
/// gateway enrolled with the fieldlink platform (which acks what it stored) and on the
/// broker's PUBACK otherwise (other receivers publish no ack).
fn delete_on(configured: Option<DeleteOn>, enrolled: bool) -> DeleteOn {
    configured.unwrap_or(if enrolled {
        DeleteOn::PlatformAck
    } else {
        DeleteOn::Puback
    })
}

/// How batches are framed: as configured, or else packed for a gateway enrolled with the
/// fieldlink platform (which decodes every payload version) and plain JSON otherwise (what
/// any receiver, and `mosquitto_sub`, reads).
fn compression(configured: Option<Compression>, enrolled: bool) -> Compression {
    configured.unwrap_or(if enrolled {
        Compression::Packed {
            level: DEFAULT_ZSTD_LEVEL,
        }
    } else {
        Compression::None
    })
}

async fn recv(rx: &mut Option<mpsc::Receiver<AgentConfig>>) -> Option<AgentConfig> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The sections of `next` that differ from `current` and need a restart to apply.
fn restart_only_changes(current: &AgentConfig, next: &AgentConfig) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if current.gateway != next.gateway {
        changed.push("[gateway]");
    }
    if current.platform != next.platform {
        changed.push("[platform]");
    }
    if current.publish != next.publish {
        changed.push("[publish]");
    }
    if current.buffer != next.buffer {
        changed.push("[buffer]");
    }
    if current.status != next.status {
        changed.push("[status]");
    }
    changed
}

/// Opens the outbox; returns it with the numbers skipped after an unclean stop, which every
/// status of this run names (the status is retained, and the platform may connect later).
async fn open_outbox(
    config: &AgentConfig,
) -> Result<(SharedOutbox, Option<ResumedAfterCrash>), RunError> {
    let dir = config.gateway.state_dir.clone();
    let options = OutboxOptions {
        path: dir.join("outbox.redb"),
        max_bytes: config.buffer.max_size,
        cache_bytes: OUTBOX_CACHE_BYTES,
    };
    let opened = tokio::task::spawn_blocking(move || Outbox::open(options)).await;
    let outcome = match opened {
        Ok(result) => result.map_err(StoreError::from),
        Err(e) => Err(StoreError::Task(e.to_string())),
    };
    let (outbox, report) = outcome.map_err(|error| RunError::Outbox {
        dir: dir.display().to_string(),
        error,
    })?;
    if let (Some(aside), Some(why)) = (&report.moved_aside, &report.error) {
        tracing::error!(moved_to = %aside.display(), error = %why, "the outbox was damaged; it was moved aside and a fresh one started");
    }
    tracing::info!(
        pending_batches = report.pending_batches,
        next_seq = report.next_seq,
        "outbox open"
    );
    let resumed = report.resumed_after_crash.map(|window| {
        tracing::warn!(
            durable_seq = window.durable_seq,
            resumed_seq = window.resumed_seq,
            "the last run stopped uncleanly (kill -9, power cut): numbering resumes above its reservation; the status names the skipped seqs"
        );
        ResumedAfterCrash {
            durable_seq: window.durable_seq,
            resumed_seq: window.resumed_seq,
        }
    });
    Ok((SharedOutbox::new(outbox), resumed))
}

/// Cycles the channel from the collectors to the batcher holds (see [`QUEUED_SAMPLES`]).
/// Sized for the devices at start; a reload keeps it.
fn sample_channel(devices: &[DeviceConfig]) -> usize {
    let largest = devices.iter().map(|d| d.points.len()).max().unwrap_or(1);
    (QUEUED_SAMPLES / largest.max(1)).clamp(SAMPLE_CHANNEL_MIN, SAMPLE_CHANNEL_MAX)
}

/// The device and point catalogue published on `meta`.
pub fn meta(devices: &[DeviceConfig]) -> Meta {
    Meta {
        devices: devices
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
                        role: p.role,
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrolled_gateway_deletes_on_the_platform_ack_unless_configured_otherwise() {
        assert_eq!(delete_on(None, true), DeleteOn::PlatformAck);
        assert_eq!(delete_on(None, false), DeleteOn::Puback);
        assert_eq!(delete_on(Some(DeleteOn::Puback), true), DeleteOn::Puback);
        assert_eq!(
            delete_on(Some(DeleteOn::PlatformAck), false),
            DeleteOn::PlatformAck
        );
    }

    #[test]
    fn an_enrolled_gateway_sends_packed_batches_unless_configured_otherwise() {
        let packed = Compression::Packed {
            level: DEFAULT_ZSTD_LEVEL,
        };
        assert_eq!(compression(None, true), packed);
        assert_eq!(compression(None, false), Compression::None);
        assert_eq!(
            compression(Some(Compression::None), true),
            Compression::None
        );
        let zstd = Compression::Zstd { level: 9 };
        assert_eq!(compression(Some(zstd), true), zstd);
        assert_eq!(compression(Some(packed), false), packed);
    }
}
