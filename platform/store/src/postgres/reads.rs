//! The reads behind the API and the counts on PostgreSQL: latest values, series, onboarding
//! rows, active days, open gaps.

use super::{PostgresStore, read_value};
use crate::columns::{KIND_BOOL, KIND_FLOAT, KIND_INT, KIND_UINT, read_quality};
use crate::rows::{self};
use crate::series::{SeriesPlan, SeriesTable};
use crate::{
    ActiveDay, LatestValue, OnboardingRow, OpenGaps, SeriesBucket, SeriesPoint, StoreError,
};

impl PostgresStore {
    pub(crate) async fn days_with_data(
        &self,
        credit_code: String,
        from_day: i64,
        to_day: i64,
    ) -> Result<u64, StoreError> {
        let days: i64 = self
            .client()
            .await?
            .query_one(
                "SELECT COUNT(*) FROM enterprise_days WHERE credit_code = $1 AND day BETWEEN $2 AND $3",
                &[&credit_code, &from_day, &to_day],
            )
            .await?
            .try_get(0)?;
        Ok(days.unsigned_abs())
    }

    pub(crate) async fn open_gaps(&self) -> Result<OpenGaps, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT COUNT(*), COALESCE(SUM(last_seq - first_seq + 1), 0)::int8 FROM gaps",
                &[],
            )
            .await?;
        Ok(OpenGaps {
            gaps: row.get::<_, i64>(0).unsigned_abs(),
            missing_batches: row.get::<_, i64>(1).unsigned_abs(),
        })
    }

    pub(crate) async fn latest_values(
        &self,
        gateway: String,
    ) -> Result<Vec<LatestValue>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT device, point, latest_ts, latest_kind, latest_int, latest_float, latest_text,
                        latest_quality, latest_error
                 FROM points WHERE gateway = $1 AND latest_ts IS NOT NULL ORDER BY device, point",
            )
            .await?;
        client
            .query(&stmt, &[&gateway])
            .await?
            .iter()
            .map(|r| {
                Ok(LatestValue {
                    device: r.get(0),
                    point: r.get(1),
                    ts: r.get(2),
                    value: read_value(r.get(3), r.get(4), r.get(5), r.get(6))?,
                    quality: read_quality(i64::from(r.get::<_, i16>(7)), r.get(8))?,
                })
            })
            .collect()
    }

    pub(crate) async fn series(
        &self,
        point: SeriesPoint,
        from: i64,
        to: i64,
        bucket_ms: i64,
    ) -> Result<Vec<SeriesBucket>, StoreError> {
        let plan = SeriesPlan::new(from, to, bucket_ms);
        let client = self.client().await?;
        let rows = match plan.table {
            SeriesTable::Minutes {
                first,
                end,
                per_bucket,
            } => {
                let stmt = client
                    .prepare_cached(
                        "SELECT (m.minute - $4) / $6 AS b, MIN(m.min), MAX(m.max),
                                SUM(m.sum) / SUM(m.count)::float8, SUM(m.count)::int8
                         FROM points p JOIN sample_minutes m ON m.point_id = p.id
                         WHERE p.gateway = $1 AND p.device = $2 AND p.point = $3
                           AND m.minute >= $4 AND m.minute < $5
                         GROUP BY b ORDER BY b",
                    )
                    .await?;
                client
                    .query(
                        &stmt,
                        &[
                            &point.gateway,
                            &point.device,
                            &point.point,
                            &first,
                            &end,
                            &per_bucket,
                        ],
                    )
                    .await?
            }
            SeriesTable::Samples => {
                // Unsigned values are stored as text (exactly); the chart wants numbers.
                let stmt = client
                    .prepare_cached(
                        "SELECT (x.ts - $4) / $6 AS b, MIN(x.v), MAX(x.v), AVG(x.v), COUNT(*)
                         FROM (SELECT s.ts, COALESCE(s.value_float, s.value_int::float8, s.value_text::float8) AS v
                               FROM points p JOIN samples s ON s.point_id = p.id
                               WHERE p.gateway = $1 AND p.device = $2 AND p.point = $3
                                 AND s.ts >= $4 AND s.ts < $5 AND s.kind = ANY($7)) x
                         WHERE x.v > '-Infinity'::float8 AND x.v < 'Infinity'::float8
                         GROUP BY b ORDER BY b",
                    )
                    .await?;
                client
                    .query(
                        &stmt,
                        &[
                            &point.gateway,
                            &point.device,
                            &point.point,
                            &plan.from,
                            &plan.to,
                            &plan.bucket_ms,
                            &[KIND_BOOL, KIND_INT, KIND_UINT, KIND_FLOAT].as_slice(),
                        ],
                    )
                    .await?
            }
        };
        rows.iter()
            .map(|r| rows::series_bucket(r, plan.from, plan.bucket_ms))
            .collect()
    }

    pub(crate) async fn onboarding(
        &self,
        active_since: i64,
    ) -> Result<Vec<OnboardingRow>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT e.industry, e.district, e.in_program,
                        EXISTS (SELECT 1 FROM gateways g WHERE g.credit_code = e.credit_code),
                        e.first_batch_at IS NOT NULL,
                        COALESCE(e.last_batch_at >= $1, false),
                        e.size, e.specialised, e.maturity_level
                 FROM enterprises e",
            )
            .await?;
        client
            .query(&stmt, &[&active_since])
            .await?
            .iter()
            .map(rows::onboarding)
            .collect()
    }

    pub(crate) async fn on_cloud_since(&self) -> Result<Vec<(bool, i64)>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT in_program, first_batch_at FROM enterprises WHERE first_batch_at IS NOT NULL",
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    pub(crate) async fn active_days(
        &self,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<ActiveDay>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT d.day, e.in_program, (DENSE_RANK() OVER (ORDER BY e.credit_code))::int8
                 FROM enterprise_days d JOIN enterprises e ON e.credit_code = d.credit_code
                 WHERE d.day BETWEEN $1 AND $2",
            )
            .await?;
        client
            .query(&stmt, &[&from_day, &to_day])
            .await?
            .iter()
            .map(|r| {
                Ok(ActiveDay {
                    day: r.get(0),
                    in_program: r.get(1),
                    enterprise: u32::try_from(r.get::<_, i64>(2))
                        .map_err(|_| StoreError::Corrupt("too many enterprises".to_owned()))?,
                })
            })
            .collect()
    }
}
