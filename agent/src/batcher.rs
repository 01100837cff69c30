//! The batcher: the one consumer of the collectors' samples. It applies report by
//! exception, cuts batches by size and age, appends them to the outbox (which gives each
//! its `seq`), makes them durable every flush interval, and wakes the publisher.
//!
//! The flush runs in a task of its own, so that appends go on while the disk syncs (the
//! outbox holds no lock an append needs during the fsync). A tick that finds the last flush
//! still running starts the next one as soon as it ends, not a whole interval later: what a
//! kill -9 loses stays what was appended since the last flush began, as when the batcher
//! flushed inline. The batcher joins the last flush before it returns.

use crate::config::DeviceConfig;
use crate::outbox::SharedOutbox;
use crate::report::ReportFilter;
use crate::telemetry::{DeviceTelemetry, Telemetry};
use fieldlink_wire::{Batch, Compression, Sample, encode_batch_with};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// What the batcher is handed.
pub struct BatcherContext {
    /// The gateway id written into every batch.
    pub gateway: String,
    /// Samples from every collector; the batcher ends when all senders are gone.
    pub samples_rx: mpsc::Receiver<Vec<Sample>>,
    /// Report-by-exception rules.
    pub filter: ReportFilter,
    /// New device configurations after a reload (new reporting rules, new device list).
    pub reload_rx: mpsc::Receiver<Vec<DeviceConfig>>,
    /// The agent's counters.
    pub telemetry: Arc<Telemetry>,
    /// The outbox batches go to.
    pub outbox: SharedOutbox,
    /// Set to the newest appended `seq`, to wake the publisher.
    pub appended_tx: watch::Sender<u64>,
    /// Cut a batch at this many samples...
    pub max_samples: usize,
    /// ... or when its first sample has waited this long.
    pub max_delay: Duration,
    /// Make appended batches durable at least this often.
    pub flush_interval: Duration,
    /// How batches are framed on the wire.
    pub compression: Compression,
}

/// Runs until every collector has dropped its sender, then cuts, appends and flushes what
/// is left. Returns the number of samples lost to outbox write failures.
pub async fn run(mut cx: BatcherContext) -> u64 {
    let mut pending: Vec<Sample> = Vec::with_capacity(cx.max_samples);
    let mut first_at: Option<Instant> = None;
    let mut flush_tick = tokio::time::interval(cx.flush_interval);
    flush_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut lost = 0u64;
    let mut counters = DeviceCounters::new(&cx.telemetry);
    let mut flushing: Option<JoinHandle<()>> = None;
    // A tick came while the last flush was still running.
    let mut flush_owed = false;
    let mut beat = tokio::time::interval(Duration::from_secs(1));
    loop {
        let cut_at = first_at.map(|t| t + cx.max_delay);
        Telemetry::beat(&cx.telemetry.batcher_beat_ms);
        tokio::select! {
            received = cx.samples_rx.recv() => match received {
                Some(mut samples) => {
                    counters.count(&samples);
                    cx.filter.retain(&mut samples);
                    if samples.is_empty() {
                        continue;
                    }
                    first_at.get_or_insert_with(Instant::now);
                    pending.append(&mut samples);
                    while pending.len() >= cx.max_samples {
                        let rest = pending.split_off(cx.max_samples);
                        let full = std::mem::replace(&mut pending, rest);
                        lost += append(&cx, full).await;
                    }
                    if pending.is_empty() {
                        first_at = None;
                    }
                }
                None => break,
            },
            () = sleep_until(cut_at), if cut_at.is_some() => {
                lost += append(&cx, std::mem::take(&mut pending)).await;
                first_at = None;
            }
            _ = flush_tick.tick() => {
                // Acks are committed by the publisher without fsync; flushing every
                // interval makes them durable too, so flush even if nothing was appended.
                if flushing.as_ref().is_none_or(JoinHandle::is_finished) {
                    flushing = Some(spawn_flush(&cx.outbox));
                } else {
                    flush_owed = true;
                }
            }
            _ = flush_ended(&mut flushing), if flush_owed => {
                flush_owed = false;
                flushing = Some(spawn_flush(&cx.outbox));
            }
            Some(devices) = cx.reload_rx.recv() => {
                cx.filter.set_rules(&devices);
                counters = DeviceCounters::new(&cx.telemetry);
            }
            _ = beat.tick() => {}
        }
    }
    lost += append(&cx, pending).await;
    if let Some(last) = flushing
        && let Err(e) = last.await
    {
        // The flush below covers whatever that one did not make durable.
        tracing::error!(error = %e, "a flush task failed");
    }
    flush(&cx.outbox).await;
    lost
}

/// Starts a flush in a task of its own.
fn spawn_flush(outbox: &SharedOutbox) -> JoinHandle<()> {
    let outbox = outbox.clone();
    tokio::spawn(async move { flush(&outbox).await })
}

/// Waits until the running flush, if any, has ended.
async fn flush_ended(flushing: &mut Option<JoinHandle<()>>) {
    if let Some(running) = flushing
        && let Err(e) = running.await
    {
        tracing::error!(error = %e, "a flush task failed");
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Appends one batch; returns the number of samples lost if the outbox refused it.
async fn append(cx: &BatcherContext, samples: Vec<Sample>) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    let count = samples.len();
    let gateway = cx.gateway.clone();
    let compression = cx.compression;
    let result = cx
        .outbox
        .run(move |outbox| {
            let mut batch = Batch {
                gateway,
                seq: 0,
                samples,
            };
            outbox.append(count as u32, |seq| {
                batch.seq = seq;
                encode_batch_with(&batch, compression)
            })
        })
        .await;
    match result {
        Ok(seq) => {
            cx.appended_tx.send_replace(seq);
            Telemetry::set_error(&cx.telemetry.outbox_error, None);
            0
        }
        Err(e) => {
            tracing::error!(samples = count, error = %e, "cannot write a batch to the outbox; its samples are lost");
            cx.telemetry
                .lost_samples
                .fetch_add(count as u64, Ordering::Relaxed);
            Telemetry::set_error(&cx.telemetry.outbox_error, Some(e.to_string()));
            count as u64
        }
    }
}

async fn flush(outbox: &SharedOutbox) {
    if let Err(e) = outbox.run(|o| o.flush()).await {
        tracing::error!(error = %e, "cannot make the outbox durable (fsync failed)");
    }
}

/// Counts samples per device as they arrive; one cycle's samples come from one device, so
/// the lookup happens once per run of samples, not once per sample.
struct DeviceCounters {
    by_name: HashMap<Arc<str>, Arc<DeviceTelemetry>>,
}

impl DeviceCounters {
    fn new(telemetry: &Telemetry) -> Self {
        DeviceCounters {
            by_name: telemetry
                .devices()
                .into_iter()
                .map(|d| (d.name.clone(), d))
                .collect(),
        }
    }

    fn count(&self, samples: &[Sample]) {
        for run in samples.chunk_by(|a, b| Arc::ptr_eq(&a.device, &b.device)) {
            if let Some(device) = self.by_name.get(&run[0].device) {
                device
                    .collected
                    .fetch_add(run.len() as u64, Ordering::Relaxed);
            }
        }
    }
}
