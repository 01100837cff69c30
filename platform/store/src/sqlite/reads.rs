//! The reads behind the API and the counts on SQLite: latest values, series, onboarding
//! rows, active days, open gaps.

use super::{SqliteStore, all, read_value};
use crate::columns::{KIND_BOOL, KIND_FLOAT, KIND_INT, KIND_UINT, read_quality};
use crate::rows::{self};
use crate::series::{SeriesPlan, SeriesTable};
use crate::{
    ActiveDay, LatestValue, OnboardingRow, OpenGaps, SeriesBucket, SeriesPoint, StoreError,
};
use rusqlite::{Row, params};

impl SqliteStore {
    pub(crate) async fn days_with_data(
        &self,
        credit_code: String,
        from_day: i64,
        to_day: i64,
    ) -> Result<u64, StoreError> {
        self.read(move |c| {
            let days: i64 = c.query_row(
                "SELECT COUNT(*) FROM enterprise_days WHERE credit_code = ?1 AND day BETWEEN ?2 AND ?3",
                params![credit_code, from_day, to_day],
                |r| r.get(0),
            )?;
            Ok(days.unsigned_abs())
        })
        .await
    }

    pub(crate) async fn open_gaps(&self) -> Result<OpenGaps, StoreError> {
        self.read(|c| {
            let (gaps, missing): (i64, i64) = c
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(last_seq - first_seq + 1), 0) FROM gaps",
                )?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(OpenGaps {
                gaps: gaps.unsigned_abs(),
                missing_batches: missing.unsigned_abs(),
            })
        })
        .await
    }

    pub(crate) async fn latest_values(
        &self,
        gateway: String,
    ) -> Result<Vec<LatestValue>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT device, point, latest_ts, latest_kind, latest_value, latest_quality, latest_error
                 FROM points WHERE gateway = ?1 AND latest_ts IS NOT NULL ORDER BY device, point",
            )?;
            all(&mut stmt, [gateway], |r| {
                Ok(LatestValue {
                    device: r.get(0)?,
                    point: r.get(1)?,
                    ts: r.get(2)?,
                    value: read_value(r.get(3)?, r.get(4)?)?,
                    quality: read_quality(r.get(5)?, r.get(6)?)?,
                })
            })
        })
        .await
    }

    pub(crate) async fn series(
        &self,
        point: SeriesPoint,
        from: i64,
        to: i64,
        bucket_ms: i64,
    ) -> Result<Vec<SeriesBucket>, StoreError> {
        let plan = SeriesPlan::new(from, to, bucket_ms);
        self.read(move |c| {
            let bucket = |r: &Row<'_>| rows::series_bucket(r, plan.from, plan.bucket_ms);
            match plan.table {
                SeriesTable::Minutes {
                    first,
                    end,
                    per_bucket,
                } => {
                    let mut stmt = c.prepare_cached(
                        "SELECT (m.minute - ?4) / ?6 AS b, MIN(m.min), MAX(m.max),
                                SUM(m.sum) / SUM(m.count), SUM(m.count)
                         FROM points p JOIN sample_minutes m ON m.point_id = p.id
                         WHERE p.gateway = ?1 AND p.device = ?2 AND p.point = ?3
                           AND m.minute >= ?4 AND m.minute < ?5
                         GROUP BY b ORDER BY b",
                    )?;
                    let params = params![
                        point.gateway,
                        point.device,
                        point.point,
                        first,
                        end,
                        per_bucket
                    ];
                    all(&mut stmt, params, bucket)
                }
                SeriesTable::Samples => {
                    // Unsigned values are stored as text (exactly); the chart wants numbers.
                    let mut stmt = c.prepare_cached(
                        "SELECT (s.ts - ?4) / ?6 AS b,
                                MIN(CAST(s.value AS REAL)), MAX(CAST(s.value AS REAL)),
                                AVG(CAST(s.value AS REAL)), COUNT(*)
                         FROM points p JOIN samples s ON s.point_id = p.id
                         WHERE p.gateway = ?1 AND p.device = ?2 AND p.point = ?3
                           AND s.ts >= ?4 AND s.ts < ?5 AND s.kind IN (?7, ?8, ?9, ?10)
                         GROUP BY b ORDER BY b",
                    )?;
                    let params = params![
                        point.gateway,
                        point.device,
                        point.point,
                        plan.from,
                        plan.to,
                        plan.bucket_ms,
                        KIND_BOOL,
                        KIND_INT,
                        KIND_UINT,
                        KIND_FLOAT
                    ];
                    all(&mut stmt, params, bucket)
                }
            }
        })
        .await
    }

    pub(crate) async fn onboarding(
        &self,
        active_since: i64,
    ) -> Result<Vec<OnboardingRow>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT e.industry, e.district, e.in_program,
                        EXISTS (SELECT 1 FROM gateways g WHERE g.credit_code = e.credit_code),
                        e.first_batch_at IS NOT NULL,
                        COALESCE(e.last_batch_at >= ?1, 0),
                        e.size, e.specialised, e.maturity_level
                 FROM enterprises e",
            )?;
            all(&mut stmt, [active_since], |r| rows::onboarding(r))
        })
        .await
    }

    pub(crate) async fn on_cloud_since(&self) -> Result<Vec<(bool, i64)>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT in_program, first_batch_at FROM enterprises WHERE first_batch_at IS NOT NULL",
            )?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub(crate) async fn active_days(
        &self,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<ActiveDay>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT d.day, e.in_program, e.rowid FROM enterprise_days d
                 JOIN enterprises e ON e.credit_code = d.credit_code
                 WHERE d.day BETWEEN ?1 AND ?2",
            )?;
            let rows = stmt
                .query_map([from_day, to_day], |r| {
                    Ok(ActiveDay {
                        day: r.get(0)?,
                        in_program: r.get(1)?,
                        enterprise: r.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}
