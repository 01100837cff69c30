//! Sizes, specialised classes and maturity assessments on PostgreSQL: the statements.

use super::PostgresStore;
use crate::StoreError;
use crate::profile::{Assessment, NewAssessment};
use crate::rows::{self, ASSESSMENT_COLUMNS};
use fieldlink_platform_core::profile::{Size, Specialised};

impl PostgresStore {
    pub(crate) async fn set_classes(
        &self,
        enterprise: String,
        size: Option<Size>,
        specialised: Option<Specialised>,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "UPDATE enterprises SET size = COALESCE($2, size),
                 specialised = COALESCE($3, specialised) WHERE credit_code = $1",
                &[
                    &enterprise,
                    &size.map(Size::code),
                    &specialised.map(Specialised::code),
                ],
            )
            .await?
            > 0)
    }

    pub(crate) async fn record_assessment(
        &self,
        enterprise: String,
        assessment: NewAssessment,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (enterprise, assessment) = (&enterprise, &assessment);
        let level = i16::from(assessment.level.get());
        self.retrying("record assessment", |mut client| async move {
            let tx = client.transaction().await?;
            // The row lock orders concurrent assessments of one enterprise, so the history's
            // order and the current maturity agree.
            let known = tx
                .query_opt(
                    "SELECT 1 FROM enterprises WHERE credit_code = $1 FOR UPDATE",
                    &[enterprise],
                )
                .await?
                .is_some();
            if !known {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO maturity_assessments (credit_code, level, assessed_at, assessor, recorded_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    enterprise,
                    &level,
                    &assessment.assessed_at,
                    &assessment.assessor,
                    &now,
                ],
            )
            .await?;
            // The newest by `assessed_at` is the current one; of equal times, this one, the
            // last recorded.
            tx.execute(
                "UPDATE enterprises SET maturity_level = $2, maturity_assessed_at = $3
                 WHERE credit_code = $1
                 AND (maturity_assessed_at IS NULL OR maturity_assessed_at <= $3)",
                &[enterprise, &level, &assessment.assessed_at],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    pub(crate) async fn assessments(
        &self,
        enterprise: String,
    ) -> Result<Vec<Assessment>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {ASSESSMENT_COLUMNS} FROM maturity_assessments WHERE credit_code = $1
             ORDER BY assessed_at DESC, id DESC"
        );
        let rows = client
            .query(&client.prepare_cached(&sql).await?, &[&enterprise])
            .await?;
        rows.iter().map(rows::assessment).collect()
    }
}
