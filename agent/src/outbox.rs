//! The agent's handle on the durable outbox: the blocking store, shared between the
//! batcher and the publisher, with every call run off the async threads.

use fieldlink_outbox::{Outbox, OutboxError, OutboxStats};
use std::sync::Arc;
use std::time::Duration;

/// Why an outbox call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store refused the operation (disk full, I/O error); see the inner error.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The blocking task running the call panicked or was cancelled at shutdown.
    #[error("outbox task failed: {0}")]
    Task(String),
}

/// A cloneable handle on the outbox.
#[derive(Clone)]
pub struct SharedOutbox(Arc<Outbox>);

impl std::fmt::Debug for SharedOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedOutbox")
            .field(&self.0.stats())
            .finish()
    }
}

impl SharedOutbox {
    /// Shares `outbox`.
    pub fn new(outbox: Outbox) -> Self {
        SharedOutbox(Arc::new(outbox))
    }

    /// Runs a blocking outbox call on the blocking pool.
    pub async fn run<T, F>(&self, call: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Outbox) -> Result<T, OutboxError> + Send + 'static,
    {
        let outbox = self.0.clone();
        match tokio::task::spawn_blocking(move || call(&outbox)).await {
            Ok(result) => Ok(result?),
            Err(e) => Err(StoreError::Task(e.to_string())),
        }
    }

    /// The store's counters (cheap, in memory).
    pub fn stats(&self) -> fieldlink_outbox::OutboxStats {
        self.0.stats()
    }

    /// Records in the store, read under the outbox's lock (see
    /// [`Outbox::pending_batches`]): what shutdown decides on, rather than a snapshot.
    pub async fn pending_batches(&self) -> Result<u64, StoreError> {
        self.run(|outbox| Ok(outbox.pending_batches())).await
    }

    /// Records not yet sent (pending), read under the outbox's lock: what draining waits for
    /// when batches awaiting the platform's ack may stay in the outbox.
    pub async fn unsent_batches(&self) -> Result<u64, StoreError> {
        self.run(|outbox| {
            let all = outbox.pending_batches();
            // The call above refreshed the snapshot under the lock; only this task marks
            // batches sent, so the two agree.
            Ok(all.saturating_sub(outbox.stats().awaiting_ack_batches))
        })
        .await
    }
}

/// How long the batch awaiting the platform's ack the longest has waited since the broker
/// took it. Measured with tokio's clock: the publisher marks batches sent with it, and tests
/// pause it.
pub fn oldest_awaiting_ack_age(stats: &OutboxStats) -> Option<Duration> {
    stats.oldest_awaiting_ack_since.map(|since| {
        tokio::time::Instant::now()
            .into_std()
            .saturating_duration_since(since)
    })
}
