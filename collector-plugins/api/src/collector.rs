//! The [`Collector`] trait and what a collector is handed.

use fieldlink_wire::Sample;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The receiving end of the pipeline is gone: the agent is shutting down.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the sample pipeline is closed")]
pub struct SinkClosed;

/// Where a collector hands its readings: a bounded channel into the agent's batcher.
/// The batcher only writes to the local outbox, so a send waits for disk, never for the
/// network.
#[derive(Debug, Clone)]
pub struct SampleSink {
    tx: mpsc::Sender<Vec<Sample>>,
}

impl SampleSink {
    /// Wraps the sending end of the pipeline's channel.
    pub fn new(tx: mpsc::Sender<Vec<Sample>>) -> Self {
        SampleSink { tx }
    }

    /// Hands over the samples of one read cycle; an empty vector is not sent.
    pub async fn send(&self, samples: Vec<Sample>) -> Result<(), SinkClosed> {
        if samples.is_empty() {
            return Ok(());
        }
        self.tx.send(samples).await.map_err(|_| SinkClosed)
    }
}

/// What a collector is handed when it starts.
#[derive(Debug, Clone)]
pub struct CollectorContext {
    /// Where readings go.
    pub sink: SampleSink,
    /// Fires when the collector must stop; it returns soon after.
    pub shutdown: CancellationToken,
    /// The device's counters, one per device. Devices sharing a Modbus RTU bus each run
    /// their own collector with their own counters; they share only the bus's scheduler.
    pub stats: Arc<crate::DeviceStats>,
}

/// A boxed, sendable future, as collectors return from [`Collector::run`].
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of samples for one device or bus. `run` returns when the context's token is
/// cancelled or the sink closes; failures of the device are reported as `bad` samples and
/// retried inside, never returned.
pub trait Collector: Send {
    /// The device's (or bus's) name, for logs.
    fn name(&self) -> &Arc<str>;
    /// Runs until shutdown.
    fn run(self: Box<Self>, ctx: CollectorContext) -> BoxFuture;
}
