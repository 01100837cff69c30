//! Sizes, specialised classes and maturity assessments on SQLite: the statements.

use super::{SqliteStore, all, write_tx};
use crate::StoreError;
use crate::profile::{Assessment, NewAssessment};
use crate::rows::{self, ASSESSMENT_COLUMNS};
use fieldlink_platform_core::profile::{Size, Specialised};
use rusqlite::{Transaction, params};

impl SqliteStore {
    pub(crate) async fn set_classes(
        &self,
        enterprise: String,
        size: Option<Size>,
        specialised: Option<Specialised>,
    ) -> Result<bool, StoreError> {
        self.write(move |w| {
            Ok(w.conn.execute(
                "UPDATE enterprises SET size = COALESCE(?2, size),
                 specialised = COALESCE(?3, specialised) WHERE credit_code = ?1",
                params![
                    enterprise,
                    size.map(Size::code),
                    specialised.map(Specialised::code)
                ],
            )? > 0)
        })
        .await
    }

    pub(crate) async fn record_assessment(
        &self,
        enterprise: String,
        assessment: NewAssessment,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.write(move |w| {
            let tx = write_tx(&mut w.conn)?;
            let known = tx
                .prepare_cached("SELECT 1 FROM enterprises WHERE credit_code = ?1")?
                .exists([&enterprise])?;
            if !known {
                return Ok(false);
            }
            insert_assessment(&tx, &enterprise, &assessment, now)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    pub(crate) async fn assessments(
        &self,
        enterprise: String,
    ) -> Result<Vec<Assessment>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {ASSESSMENT_COLUMNS} FROM maturity_assessments WHERE credit_code = ?1
                 ORDER BY assessed_at DESC, id DESC"
            );
            all(&mut c.prepare_cached(&sql)?, [enterprise], |r| {
                rows::assessment(r)
            })
        })
        .await
    }
}

/// Keeps `assessment` of the registered `enterprise` in its history and makes it the
/// current one unless a newer is on record (of equal times, the last recorded wins, as
/// the history's order says).
pub(super) fn insert_assessment(
    tx: &Transaction<'_>,
    enterprise: &str,
    assessment: &NewAssessment,
    now: i64,
) -> Result<(), StoreError> {
    let level = assessment.level.get();
    tx.prepare_cached(
        "INSERT INTO maturity_assessments (credit_code, level, assessed_at, assessor, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        enterprise,
        level,
        assessment.assessed_at,
        assessment.assessor,
        now
    ])?;
    tx.prepare_cached(
        "UPDATE enterprises SET maturity_level = ?2, maturity_assessed_at = ?3
         WHERE credit_code = ?1 AND (maturity_assessed_at IS NULL OR maturity_assessed_at <= ?3)",
    )?
    .execute(params![enterprise, level, assessment.assessed_at])?;
    Ok(())
}
