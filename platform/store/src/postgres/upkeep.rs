//! Upkeep on PostgreSQL: reporting stale gaps once, pruning past the retention by dropping
//! day partitions, and creating the coming days' partitions.

use super::{DAY_MS, DAYS_AHEAD, MAX_PARTITION_AGE_DAYS, PostgresStore};
use crate::columns::MINUTE_MS;
use crate::{Gap, IncomingBatch, StaleGap, StoreError};
use deadpool_postgres::Object;
use std::collections::BTreeSet;
use tokio_postgres::error::SqlState;

impl PostgresStore {
    pub(crate) async fn report_stale_gaps(
        &self,
        detected_before: i64,
        now: i64,
        limit: u32,
    ) -> Result<Vec<StaleGap>, StoreError> {
        let client = self.client().await?;
        // SKIP LOCKED: rows another instance is reporting, or an ingest is filling, are
        // left to it; the UPDATE re-checks rows reported since the snapshot. The CTE is
        // evaluated once, so the limit holds.
        let stmt = client
            .prepare_cached(
                "WITH picked AS (
                     SELECT gateway, first_seq FROM gaps WHERE reported_at IS NULL AND detected_at < $1
                     ORDER BY detected_at LIMIT $3 FOR UPDATE SKIP LOCKED)
                 UPDATE gaps g SET reported_at = $2 FROM picked p
                 WHERE g.gateway = p.gateway AND g.first_seq = p.first_seq AND g.reported_at IS NULL
                 RETURNING g.gateway, g.first_seq, g.last_seq, g.detected_at",
            )
            .await?;
        let mut gaps: Vec<StaleGap> = client
            .query(&stmt, &[&detected_before, &now, &i64::from(limit)])
            .await?
            .iter()
            .map(|r| StaleGap {
                gateway: r.get(0),
                gap: Gap {
                    first_seq: r.get::<_, i64>(1).unsigned_abs(),
                    last_seq: r.get::<_, i64>(2).unsigned_abs(),
                },
                detected_at: r.get(3),
            })
            .collect();
        gaps.sort_by_key(|g| g.detected_at);
        Ok(gaps)
    }

    /// Drops the partitions wholly before `samples_before`, deletes the older samples
    /// left in the others, the per-minute rows and the dedup rows received before
    /// `batches_before`; then creates the coming days' partitions.
    pub(crate) async fn prune(
        &self,
        samples_before: i64,
        batches_before: i64,
    ) -> Result<u64, StoreError> {
        let mut deleted = 0u64;
        let client = self.client().await?;
        for day in self.partition_days().await? {
            if (day + 1) * DAY_MS > samples_before {
                continue;
            }
            let table = partition_name(day);
            let rows: i64 = match client
                .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
                .await
            {
                Ok(row) => row.get(0),
                // Another instance's prune dropped it first.
                Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => 0,
                Err(e) => return Err(e.into()),
            };
            client
                .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
                .await?;
            self.partitions().remove(&day);
            deleted += rows.unsigned_abs();
        }
        deleted += client
            .execute("DELETE FROM samples WHERE ts < $1", &[&samples_before])
            .await?;
        client
            .execute(
                "DELETE FROM sample_minutes WHERE minute < $1",
                &[&samples_before.div_euclid(MINUTE_MS)],
            )
            .await?;
        client
            .execute(
                "DELETE FROM batches WHERE received_at < $1",
                &[&batches_before],
            )
            .await?;
        // Batches missing since before the retention period will not come any more.
        client
            .execute(
                "DELETE FROM gaps WHERE detected_at < $1",
                &[&batches_before],
            )
            .await?;
        client
            .execute(
                "DELETE FROM crash_windows WHERE recorded_at < $1",
                &[&batches_before],
            )
            .await?;
        drop(client);
        self.create_coming_partitions().await?;
        Ok(deleted)
    }

    /// The days whose sample partition exists, from the catalogue.
    pub(super) async fn partition_days(&self) -> Result<Vec<i64>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'samples'::regclass",
                &[],
            )
            .await?
            .iter()
            .filter_map(|r| r.get::<_, &str>(0).strip_prefix("samples_d")?.parse().ok())
            .collect())
    }

    /// Creates the partitions of today and the next [`DAYS_AHEAD`] days.
    pub(super) async fn create_coming_partitions(&self) -> Result<(), StoreError> {
        let today = fieldlink_platform_core::clock::now_ms().div_euclid(DAY_MS);
        let client = self.client().await?;
        for day in today..=today + DAYS_AHEAD {
            self.create_partition(&client, day).await?;
        }
        Ok(())
    }

    /// Creates the partitions the samples of `batches` need and that do not exist yet.
    /// Failures are logged, not returned: without its partition a sample lands in the
    /// default one, still stored.
    pub(super) async fn create_partitions_for(&self, batches: &[IncomingBatch], now: i64) {
        let today = now.div_euclid(DAY_MS);
        let window = today - MAX_PARTITION_AGE_DAYS..=today + DAYS_AHEAD;
        let needed: BTreeSet<i64> = {
            let known = self.partitions();
            batches
                .iter()
                .flat_map(|b| &b.samples)
                .map(|s| s.ts.div_euclid(DAY_MS))
                .filter(|day| window.contains(day) && !known.contains(day))
                .collect()
        };
        if needed.is_empty() {
            return;
        }
        let client = match self.client().await {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(error = %e, "cannot create sample partitions");
                return;
            }
        };
        for day in needed {
            if let Err(e) = self.create_partition(&client, day).await {
                tracing::warn!(day = %partition_name(day), error = %e,
                    "cannot create a sample partition; its samples go to the default partition");
            }
        }
    }

    /// Creates one day's partition; another instance creating it at the same time counts
    /// as success.
    async fn create_partition(&self, client: &Object, day: i64) -> Result<(), StoreError> {
        if self.partitions().contains(&day) {
            return Ok(());
        }
        // Integers computed here, not input: safe to format into the DDL.
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF samples FOR VALUES FROM ({}) TO ({})",
            partition_name(day),
            day * DAY_MS,
            (day + 1) * DAY_MS
        );
        match client.batch_execute(&sql).await {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.code(),
                    Some(&SqlState::DUPLICATE_TABLE | &SqlState::UNIQUE_VIOLATION)
                ) => {}
            Err(e) if e.code() == Some(&SqlState::CHECK_VIOLATION) => {
                // The default partition already holds samples of that day: they stay
                // there, and so will the day's others.
                tracing::warn!(day = %partition_name(day), "samples of this day are in the default partition; it gets no partition of its own");
            }
            Err(e) => return Err(e.into()),
        }
        self.partitions().insert(day);
        Ok(())
    }
}

fn partition_name(day: i64) -> String {
    format!("samples_d{day}")
}
