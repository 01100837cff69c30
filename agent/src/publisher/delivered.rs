//! Batches the broker took (PUBACK), not yet applied to the outbox. They are applied in the
//! outbox call that reads what to send next (see `fill`), so that a PUBACK costs no blocking
//! call of its own: at a thousand batches a second that halves the hand-offs to the blocking
//! pool. Until then a batch stays in the outbox as it was, which is what a crash leaves too.

use fieldlink_outbox::{Outbox, OutboxError};
use std::time::Instant;

/// The PUBACKed batches of one session, with when each was PUBACKed.
#[derive(Debug, Default)]
pub struct Delivered {
    seqs: Vec<(u64, Instant)>,
    /// True if a PUBACK only marks a batch sent (it awaits the platform's ack), false if it
    /// deletes it.
    mark_only: bool,
}

impl Delivered {
    /// None yet; `mark_only` as for [`Delivered::mark_only`].
    pub fn new(mark_only: bool) -> Self {
        Delivered {
            seqs: Vec::new(),
            mark_only,
        }
    }

    /// The broker took batch `seq` at `at`.
    pub fn push(&mut self, seq: u64, at: Instant) {
        self.seqs.push((seq, at));
    }

    /// True if nothing waits to be applied.
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// Hands over what waits, leaving none.
    pub fn take(&mut self) -> Delivered {
        Delivered {
            seqs: std::mem::take(&mut self.seqs),
            mark_only: self.mark_only,
        }
    }

    /// Applies them to the outbox (a blocking call): marks them sent, or deletes them.
    pub fn apply(self, outbox: &Outbox) -> Result<(), OutboxError> {
        for (seq, at) in self.seqs {
            if self.mark_only {
                outbox.mark_sent(seq, at)?;
            } else {
                outbox.ack(seq)?;
            }
        }
        Ok(())
    }
}
