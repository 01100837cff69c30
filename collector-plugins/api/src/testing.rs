//! A harness for collectors' tests (feature `testing`): a collector on its own task, its
//! sink a real channel, stopped and checked for a prompt return.

use crate::{Collector, CollectorContext, DeviceStats, SampleSink};
use fieldlink_wire::{Quality, Sample};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A collector running on its own task.
pub struct Collecting {
    /// The batches it handed over.
    pub rx: mpsc::Receiver<Vec<Sample>>,
    /// Its counters.
    pub stats: Arc<DeviceStats>,
    /// Fires to stop it.
    pub shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Collecting {
    /// Runs `collector` with a channel of `capacity` batches.
    pub fn run(collector: Box<dyn Collector>, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(DeviceStats::default());
        let shutdown = CancellationToken::new();
        let ctx = CollectorContext {
            sink: SampleSink::new(tx),
            shutdown: shutdown.clone(),
            stats: Arc::clone(&stats),
        };
        let task = tokio::spawn(collector.run(ctx));
        Collecting {
            rx,
            stats,
            shutdown,
            task: Some(task),
        }
    }

    /// The next batch, within 5 s.
    pub async fn batch(&mut self) -> Vec<Sample> {
        tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
            .await
            .expect("a batch within 5 s")
            .expect("the collector is running")
    }

    /// Batches until one satisfies `done`, returning it; within `within`.
    pub async fn batch_where(
        &mut self,
        within: Duration,
        done: impl Fn(&[Sample]) -> bool,
    ) -> Vec<Sample> {
        let wait = async {
            loop {
                let batch = self.rx.recv().await.expect("the collector is running");
                if done(&batch) {
                    return batch;
                }
            }
        };
        tokio::time::timeout(within, wait)
            .await
            .expect("the awaited batch in time")
    }

    /// Cancels the collector and checks that it returns within half a second, without
    /// panicking.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_millis(500), task)
            .await
            .expect("the collector returns in time")
            .expect("the collector does not panic");
    }
}

impl Drop for Collecting {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A batch's samples by point name, checking each point appears once.
pub fn by_point(batch: &[Sample]) -> HashMap<&str, &Sample> {
    let map: HashMap<&str, &Sample> = batch.iter().map(|s| (&*s.point, s)).collect();
    assert_eq!(map.len(), batch.len(), "a point appears twice in {batch:?}");
    map
}

/// The error text of a bad sample, or `None` for a good one.
pub fn error(sample: &Sample) -> Option<&str> {
    match &sample.quality {
        Quality::Bad(e) => Some(e),
        _ => None,
    }
}

/// Runs `test`, failing it if it takes more than 20 s instead of hanging the run.
pub async fn bounded<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), test)
        .await
        .expect("test did not finish within 20 s")
}
