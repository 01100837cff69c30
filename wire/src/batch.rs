//! [`Batch`]: the payload of `fieldlink/v1/{gateway}/data`.

use crate::sample::Sample;
use serde::{Deserialize, Serialize};

/// A batch of samples from one gateway. `seq` is given when the batch enters the durable
/// outbox and never changes; it grows by one per batch for the life of the gateway's state
/// directory, so receivers drop duplicates by `(gateway, seq)` and see evictions as gaps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The gateway id; must equal the topic's gateway segment.
    pub gateway: String,
    /// The batch's sequence number (see the type's doc).
    pub seq: u64,
    /// The samples, in the order they were collected.
    pub samples: Vec<Sample>,
}
