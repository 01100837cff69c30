//! Upkeep on SQLite: reporting stale gaps once, and pruning past the retention.

use super::{PRUNE_POINTS_PER_TX, SqliteStore, write_tx};
use crate::columns::MINUTE_MS;
use crate::{Gap, StaleGap, StoreError};
use rusqlite::params;

impl SqliteStore {
    pub(crate) async fn report_stale_gaps(
        &self,
        detected_before: i64,
        now: i64,
        limit: u32,
    ) -> Result<Vec<StaleGap>, StoreError> {
        self.write(move |w| {
            let mut stmt = w.conn.prepare_cached(
                "UPDATE gaps SET reported_at = ?2 WHERE (gateway, first_seq) IN (
                     SELECT gateway, first_seq FROM gaps WHERE reported_at IS NULL AND detected_at < ?1
                     ORDER BY detected_at LIMIT ?3)
                 RETURNING gateway, first_seq, last_seq, detected_at",
            )?;
            let rows = stmt.query_map(params![detected_before, now, limit], |r| {
                Ok(StaleGap {
                    gateway: r.get(0)?,
                    gap: Gap {
                        first_seq: r.get::<_, i64>(1)?.unsigned_abs(),
                        last_seq: r.get::<_, i64>(2)?.unsigned_abs(),
                    },
                    detected_at: r.get(3)?,
                })
            })?;
            let mut gaps = rows.collect::<Result<Vec<_>, _>>()?;
            gaps.sort_by_key(|g| g.detected_at);
            Ok(gaps)
        })
        .await
    }

    pub(crate) async fn prune(
        &self,
        samples_before: i64,
        batches_before: i64,
    ) -> Result<u64, StoreError> {
        let point_ids: Vec<i64> = self
            .read(|c| {
                let mut stmt = c.prepare_cached("SELECT id FROM points ORDER BY id")?;
                let ids = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(ids)
            })
            .await?;
        let mut deleted = 0u64;
        for chunk in point_ids.chunks(PRUNE_POINTS_PER_TX) {
            let chunk = chunk.to_vec();
            deleted += self
                .write(move |w| {
                    let tx = write_tx(&mut w.conn)?;
                    let mut n = 0;
                    {
                        let mut stmt = tx.prepare_cached(
                            "DELETE FROM samples WHERE point_id = ?1 AND ts < ?2",
                        )?;
                        let mut minutes = tx.prepare_cached(
                            "DELETE FROM sample_minutes WHERE point_id = ?1 AND minute < ?2",
                        )?;
                        for id in chunk {
                            n += stmt.execute(params![id, samples_before])? as u64;
                            minutes.execute(params![id, samples_before / MINUTE_MS])?;
                        }
                    }
                    tx.commit()?;
                    Ok(n)
                })
                .await?;
        }
        self.write(move |w| {
            w.conn
                .prepare_cached("DELETE FROM batches WHERE received_at < ?1")?
                .execute([batches_before])?;
            // Batches missing since before the retention period will not come any more.
            w.conn
                .prepare_cached("DELETE FROM gaps WHERE detected_at < ?1")?
                .execute([batches_before])?;
            w.conn
                .prepare_cached("DELETE FROM crash_windows WHERE recorded_at < ?1")?
                .execute([batches_before])?;
            Ok(())
        })
        .await?;
        Ok(deleted)
    }
}
