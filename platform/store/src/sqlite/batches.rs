//! Storing batches, statuses, catalogues and crash windows on SQLite, and reading what the
//! acks need: the statements (the decisions are [`crate::ingest`]'s).

use super::alarms::SqliteAlarms;
use super::monitoring::SqliteMonitor;
use super::{PointIds, SqliteStore, Writer, all, first, value_columns, write_tx};
use crate::columns::{MinuteAggregate, quality_columns};
use crate::ingest::{self, GapRow, GapTx, GatewayTally, IngestTx, LockedGateway, PointKey};
use crate::monitoring;
use crate::ready::run_ready;
use crate::rows::{self};
use crate::{AckRows, BatchOutcome, CrashWindow, IncomingBatch, StoreError};
use fieldlink_wire::{Sample, Status};
use rusqlite::{OptionalExtension, Transaction, params};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

impl SqliteStore {
    pub(crate) async fn ingest(
        &self,
        batches: Arc<[IncomingBatch]>,
        received_at: i64,
        utc_offset_minutes: i32,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        self.write(move |w| {
            let Writer {
                conn,
                points,
                roles,
            } = w;
            let result = write_tx(conn).map_err(StoreError::from).and_then(|tx| {
                let mut statements = SqliteIngest {
                    tx: &tx,
                    gaps: SqliteGaps(&tx),
                    alarms: SqliteAlarms(&tx),
                    monitor: SqliteMonitor { tx: &tx, roles },
                    points,
                };
                let outcomes = run_ready(ingest::store_group(
                    &mut statements,
                    &batches,
                    received_at,
                    utc_offset_minutes,
                ))?;
                tx.commit()?;
                Ok(outcomes)
            });
            if result.is_err() {
                // Ids of points inserted by the rolled-back transaction are gone.
                points.clear();
            }
            result
        })
        .await
    }

    pub(crate) async fn update_status(
        &self,
        gateway: String,
        status: Status,
        received_at: i64,
    ) -> Result<bool, StoreError> {
        let json =
            serde_json::to_string(&status).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.write(move |w| {
            let changed = w
                .conn
                .prepare_cached("UPDATE gateways SET status = ?2, status_at = ?3 WHERE id = ?1")?
                .execute(params![gateway, json, received_at])?;
            Ok(changed > 0)
        })
        .await
    }

    pub(crate) async fn record_crash_window(
        &self,
        gateway: String,
        first: i64,
        last: i64,
        now: i64,
    ) -> Result<Option<bool>, StoreError> {
        self.write(move |w| {
            let tx = write_tx(&mut w.conn)?;
            if !tx
                .prepare_cached("SELECT 1 FROM gateways WHERE id = ?1")?
                .exists([&gateway])?
            {
                return Ok(None);
            }
            let new = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO crash_windows (gateway, first_seq, last_seq, recorded_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![gateway, first, last, now])?
                > 0;
            let mut gaps = SqliteGaps(&tx);
            run_ready(ingest::close_crash_window(&mut gaps, &gateway, first, last))?;
            tx.commit()?;
            Ok(Some(new))
        })
        .await
    }

    pub(crate) async fn crash_windows(
        &self,
        gateway: String,
        limit: u32,
    ) -> Result<Vec<CrashWindow>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT first_seq, last_seq, recorded_at FROM crash_windows
                 WHERE gateway = ?1 ORDER BY first_seq LIMIT ?2",
            )?;
            all(&mut stmt, params![gateway, limit], |r| {
                rows::crash_window(r)
            })
        })
        .await
    }

    pub(crate) async fn gateways_with_recent_gaps(
        &self,
        since: i64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        self.read(move |c| {
            all(
                &mut c.prepare_cached(
                    "SELECT DISTINCT gateway FROM gaps WHERE detected_at >= ?1 ORDER BY gateway LIMIT ?2",
                )?,
                params![since, limit],
                |r| Ok(r.get(0)?),
            )
        })
        .await
    }

    /// The highest stored `seq` of each of `gateways` that has one, and their open gaps
    /// in order.
    pub(crate) async fn ack_rows(&self, gateways: Vec<String>) -> Result<AckRows, StoreError> {
        self.read(move |c| {
            let mut max_seq = c.prepare_cached(
                "SELECT max_seq FROM gateways WHERE id = ?1 AND max_seq IS NOT NULL",
            )?;
            let mut gaps = c.prepare_cached(
                "SELECT first_seq, last_seq FROM gaps WHERE gateway = ?1 ORDER BY first_seq",
            )?;
            let (mut maxima, mut open) = (Vec::new(), Vec::new());
            for gateway in gateways {
                let Some(max) = first(&mut max_seq, [&gateway], |r| Ok(r.get::<_, i64>(0)?))?
                else {
                    continue;
                };
                for (first_seq, last_seq) in
                    all(&mut gaps, [&gateway], |r| Ok((r.get(0)?, r.get(1)?)))?
                {
                    open.push((gateway.clone(), first_seq, last_seq));
                }
                maxima.push((gateway, max));
            }
            Ok((maxima, open))
        })
        .await
    }

    pub(crate) async fn update_meta(
        &self,
        gateway: String,
        meta: serde_json::Value,
        received_at: i64,
        utc_offset_minutes: i32,
    ) -> Result<bool, StoreError> {
        let json = meta.to_string();
        self.write(move |w| {
            let Writer { conn, roles, .. } = w;
            let tx = write_tx(conn)?;
            let credit_code: Option<String> = tx
                .prepare_cached(
                    "UPDATE gateways SET meta = ?2, meta_at = ?3 WHERE id = ?1 RETURNING credit_code",
                )?
                .query_row(params![gateway, json, received_at], |r| r.get(0))
                .optional()?;
            let Some(credit_code) = credit_code else {
                return Ok(false);
            };
            let mut statements = SqliteMonitor { tx: &tx, roles };
            run_ready(monitoring::change_roles(
                &mut statements,
                &gateway,
                &credit_code,
                &meta,
                utc_offset_minutes,
            ))?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}

/// The gap statements on SQLite.
struct SqliteGaps<'t>(&'t Transaction<'t>);

impl GapTx for SqliteGaps<'_> {
    async fn crash_windows(
        &mut self,
        gateway: &str,
        first: i64,
        last: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT first_seq, last_seq FROM crash_windows
                 WHERE gateway = ?1 AND first_seq <= ?3 AND last_seq >= ?2",
            )?
            .query_map(params![gateway, first, last], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?)
    }

    async fn open_gap(
        &mut self,
        gateway: &str,
        first: i64,
        last: i64,
        detected_at: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT OR REPLACE INTO gaps (gateway, first_seq, last_seq, detected_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![gateway, first, last, detected_at])?;
        Ok(())
    }

    async fn take_gaps(
        &mut self,
        gateway: &str,
        first: i64,
        last: i64,
    ) -> Result<Vec<GapRow>, StoreError> {
        let gaps = self
            .0
            .prepare_cached(
                "DELETE FROM gaps WHERE gateway = ?1 AND first_seq <= ?3 AND last_seq >= ?2
                 RETURNING first_seq, last_seq, detected_at, reported_at",
            )?
            .query_map(params![gateway, first, last], |r| {
                Ok(GapRow {
                    first: r.get(0)?,
                    last: r.get(1)?,
                    detected_at: r.get(2)?,
                    reported_at: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(gaps)
    }

    async fn insert_gap(&mut self, gateway: &str, gap: GapRow) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO gaps (gateway, first_seq, last_seq, detected_at, reported_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                gateway,
                gap.first,
                gap.last,
                gap.detected_at,
                gap.reported_at
            ])?;
        Ok(())
    }
}

/// The statements of storing a group on SQLite (the decisions are
/// [`ingest::store_group`]'s); point ids are cached in the writer.
struct SqliteIngest<'t> {
    tx: &'t Transaction<'t>,
    gaps: SqliteGaps<'t>,
    alarms: SqliteAlarms<'t>,
    monitor: SqliteMonitor<'t>,
    points: &'t mut PointIds,
}

impl<'t> IngestTx for SqliteIngest<'t> {
    type Gaps = SqliteGaps<'t>;
    type Alarms = SqliteAlarms<'t>;
    type Monitor = SqliteMonitor<'t>;

    fn monitor(&mut self) -> &mut SqliteMonitor<'t> {
        &mut self.monitor
    }

    fn alarms(&mut self) -> &mut SqliteAlarms<'t> {
        &mut self.alarms
    }

    fn gaps(&mut self) -> &mut SqliteGaps<'t> {
        &mut self.gaps
    }

    async fn enrolled(&mut self, ids: &[&str]) -> Result<HashSet<String>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT 1 FROM gateways WHERE id = ?1")?;
        let mut enrolled = HashSet::new();
        for id in ids {
            if stmt.exists([id])? {
                enrolled.insert((*id).to_owned());
            }
        }
        Ok(enrolled)
    }

    async fn insert_dedup(
        &mut self,
        rows: &[(&str, i64, i64)],
        received_at: i64,
    ) -> Result<HashSet<(String, i64)>, StoreError> {
        let mut insert = self.tx.prepare_cached(
            "INSERT OR IGNORE INTO batches (gateway, seq, received_at, samples) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut new = HashSet::new();
        for &(gateway, seq, samples) in rows {
            if insert.execute(params![gateway, seq, received_at, samples])? > 0 {
                new.insert((gateway.to_owned(), seq));
            }
        }
        Ok(new)
    }

    async fn point_ids<'b>(
        &mut self,
        batches: &[&'b IncomingBatch],
    ) -> Result<HashMap<PointKey<'b>, i64>, StoreError> {
        let mut ids = HashMap::new();
        for batch in batches {
            let cached = self.points.entry(batch.gateway.clone()).or_default();
            for sample in &batch.samples {
                let key = (
                    batch.gateway.as_str(),
                    sample.device.as_ref(),
                    sample.point.as_ref(),
                );
                if ids.contains_key(&key) {
                    continue;
                }
                let id = match cached.get(&(sample.device.clone(), sample.point.clone())) {
                    Some(&id) => id,
                    None => {
                        self.tx
                            .prepare_cached(
                                "INSERT OR IGNORE INTO points (gateway, device, point) VALUES (?1, ?2, ?3)",
                            )?
                            .execute(params![key.0, key.1, key.2])?;
                        let id = self
                            .tx
                            .prepare_cached(
                                "SELECT id FROM points WHERE gateway = ?1 AND device = ?2 AND point = ?3",
                            )?
                            .query_row(params![key.0, key.1, key.2], |r| r.get(0))?;
                        cached.insert((sample.device.clone(), sample.point.clone()), id);
                        id
                    }
                };
                ids.insert(key, id);
            }
        }
        Ok(ids)
    }

    async fn insert_samples(&mut self, samples: &[(i64, &Sample)]) -> Result<(), StoreError> {
        let mut insert = self.tx.prepare_cached(
            "INSERT INTO samples (point_id, ts, kind, value, quality, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (point_id, sample) in samples {
            let (kind, value) = value_columns(&sample.value);
            let (quality, error) = quality_columns(&sample.quality);
            insert.execute(params![point_id, sample.ts, kind, value, quality, error])?;
        }
        Ok(())
    }

    async fn lock_gateways(
        &mut self,
        ids: &[&str],
    ) -> Result<BTreeMap<String, LockedGateway>, StoreError> {
        // The transaction holds SQLite's one write lock already.
        let mut stmt = self.tx.prepare_cached(
            "SELECT credit_code, max_seq, roles_version FROM gateways WHERE id = ?1",
        )?;
        let mut rows = BTreeMap::new();
        for id in ids {
            let row = stmt
                .query_row([id], |r| {
                    Ok(LockedGateway {
                        credit_code: r.get(0)?,
                        max_seq: r.get(1)?,
                        roles_version: r.get(2)?,
                    })
                })
                .optional()?;
            if let Some(row) = row {
                rows.insert((*id).to_owned(), row);
            }
        }
        Ok(rows)
    }

    async fn upsert_minutes(
        &mut self,
        minutes: &BTreeMap<(i64, i64), MinuteAggregate>,
    ) -> Result<(), StoreError> {
        let mut upsert = self.tx.prepare_cached(
            "INSERT INTO sample_minutes (point_id, minute, min, max, sum, count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (point_id, minute) DO UPDATE SET min = MIN(min, excluded.min),
             max = MAX(max, excluded.max), sum = sum + excluded.sum, count = count + excluded.count",
        )?;
        for ((point_id, minute), m) in minutes {
            upsert.execute(params![point_id, minute, m.min, m.max, m.sum, m.count])?;
        }
        Ok(())
    }

    async fn update_latest(&mut self, newest: &BTreeMap<i64, &Sample>) -> Result<(), StoreError> {
        let mut update = self.tx.prepare_cached(
            "UPDATE points SET latest_ts = ?2, latest_kind = ?3, latest_value = ?4, latest_quality = ?5,
             latest_error = ?6 WHERE id = ?1 AND (latest_ts IS NULL OR latest_ts <= ?2)",
        )?;
        for (point_id, sample) in newest {
            let (kind, value) = value_columns(&sample.value);
            let (quality, error) = quality_columns(&sample.quality);
            update.execute(params![point_id, sample.ts, kind, value, quality, error])?;
        }
        Ok(())
    }

    async fn update_gateways(
        &mut self,
        tallies: &BTreeMap<String, GatewayTally>,
        received_at: i64,
    ) -> Result<(), StoreError> {
        let mut update = self.tx.prepare_cached(
            "UPDATE gateways SET batches = batches + ?2, samples = samples + ?3, max_seq = ?4,
             first_batch_at = COALESCE(first_batch_at, ?5),
             last_batch_at = MAX(COALESCE(last_batch_at, ?5), ?5) WHERE id = ?1",
        )?;
        for (id, t) in tallies {
            update.execute(params![id, t.batches, t.samples, t.max_seq, received_at])?;
        }
        Ok(())
    }

    async fn update_enterprises(
        &mut self,
        codes: &[&str],
        received_at: i64,
        day: i64,
    ) -> Result<(), StoreError> {
        let mut update = self.tx.prepare_cached(
            "UPDATE enterprises SET first_batch_at = COALESCE(first_batch_at, ?2),
             last_batch_at = MAX(COALESCE(last_batch_at, ?2), ?2) WHERE credit_code = ?1",
        )?;
        let mut active = self.tx.prepare_cached(
            "INSERT OR IGNORE INTO enterprise_days (credit_code, day) VALUES (?1, ?2)",
        )?;
        for code in codes {
            update.execute(params![code, received_at])?;
            active.execute(params![code, day])?;
        }
        Ok(())
    }
}
