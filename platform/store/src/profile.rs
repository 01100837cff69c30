//! What the plan records of an enterprise besides its registry entry: its designated size
//! and specialised class (on its row, `NULL` until recorded), and its digital-maturity
//! assessments, every one kept in `maturity_assessments`. The newest by `assessed_at` (of
//! equal ones, the last recorded) is the current level, kept on the enterprise's row in
//! the same transaction as the assessment, so the lists and counts read it without the
//! history. Who may record them is decided above, in the platform.

use crate::{Store, StoreError, dispatch};
use fieldlink_platform_core::profile::{MaturityLevel, Size, Specialised};

/// A maturity assessment to record (already validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAssessment {
    /// The level found.
    pub level: MaturityLevel,
    /// When the assessment was made (ms since the epoch).
    pub assessed_at: i64,
    /// Who made it (the third-party assessor).
    pub assessor: String,
}

/// A maturity assessment as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// The level found.
    pub level: MaturityLevel,
    /// When the assessment was made (ms since the epoch).
    pub assessed_at: i64,
    /// Who made it.
    pub assessor: String,
    /// When the platform recorded it (ms since the epoch).
    pub recorded_at: i64,
}

/// An enterprise's current maturity: its newest assessment's level and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Maturity {
    /// The level.
    pub level: MaturityLevel,
    /// When it was assessed (ms since the epoch).
    pub assessed_at: i64,
}

impl Store {
    /// Sets `enterprise`'s size and specialised class, each only if given; false if there
    /// is no such enterprise.
    pub async fn set_classes(
        &self,
        enterprise: &str,
        size: Option<Size>,
        specialised: Option<Specialised>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.set_classes(enterprise.to_owned(), size, specialised).await)
    }

    /// Records a maturity assessment of `enterprise` at `now`, which becomes its current
    /// maturity unless a newer one is on record; false if there is no such enterprise.
    pub async fn record_assessment(
        &self,
        enterprise: &str,
        assessment: NewAssessment,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.record_assessment(enterprise.to_owned(), assessment, now).await)
    }

    /// Every maturity assessment of `enterprise`, the newest first (by `assessed_at`, then
    /// by when recorded): the first is its current maturity.
    pub async fn assessments(&self, enterprise: &str) -> Result<Vec<Assessment>, StoreError> {
        dispatch!(self, s => s.assessments(enterprise.to_owned()).await)
    }
}
