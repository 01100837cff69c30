//! What each gateway numbered and the platform stored over a window of time: the basis of
//! completeness (batches stored / batches numbered, not counting the numbers a crash
//! restart skipped), for the integrators' ranking and the acceptance evidence.

use crate::{Store, StoreError, dispatch};

/// One gateway's numbering over a window: the batches stored that arrived in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowNumbering {
    /// The gateway.
    pub gateway: String,
    /// Batches stored that arrived in the window.
    pub stored: u64,
    /// Their samples.
    pub samples: u64,
    /// The lowest `seq` among them.
    pub first_seq: u64,
    /// The highest.
    pub last_seq: u64,
    /// Numbers in `first_seq..=last_seq` that a crash restart skipped (never batches).
    pub crash_skipped: u64,
}

impl WindowNumbering {
    /// Batches the gateway numbered in the window's span: its seq span less what crashes
    /// skipped (never less than what is stored).
    pub fn numbered(&self) -> u64 {
        (self.last_seq - self.first_seq + 1)
            .saturating_sub(self.crash_skipped)
            .max(self.stored)
    }
}

/// The numbers of `crash_windows` (inclusive ranges) inside `first..=last`.
pub(crate) fn skipped_within(crash_windows: &[(u64, u64)], first: u64, last: u64) -> u64 {
    crash_windows
        .iter()
        .map(|&(a, b)| {
            let (a, b) = (a.max(first), b.min(last));
            if a <= b { b - a + 1 } else { 0 }
        })
        .sum()
}

impl Store {
    /// Every gateway's numbering over the batches that arrived at or after `since`
    /// (ms since the epoch), by gateway id; gateways with none are left out.
    pub async fn numbering_since(&self, since: i64) -> Result<Vec<WindowNumbering>, StoreError> {
        dispatch!(self, s => s.numbering_since(since).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_crash_numbers_inside_the_span_are_skipped() {
        let windows = [(5, 9), (20, 29), (100, 199)];
        assert_eq!(skipped_within(&windows, 1, 50), 5 + 10);
        assert_eq!(skipped_within(&windows, 8, 25), 2 + 6);
        assert_eq!(skipped_within(&windows, 30, 99), 0);
        let n = WindowNumbering {
            gateway: "g".to_owned(),
            stored: 35,
            samples: 0,
            first_seq: 1,
            last_seq: 50,
            crash_skipped: 15,
        };
        assert_eq!(n.numbered(), 35);
    }
}
