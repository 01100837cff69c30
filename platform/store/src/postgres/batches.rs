//! Storing batches, statuses, catalogues and crash windows on PostgreSQL, and reading what
//! the acks need: the statements, one `unnest` statement per step of a group and a binary
//! `COPY` for the samples (the decisions are [`crate::ingest`]'s).

use super::alarms::PostgresAlarms;
use super::monitoring::PostgresMonitor;
use super::{CachedPoint, PostgresStore};
use crate::columns::{MinuteAggregate, kind_of, quality_columns};
use crate::ingest::{self, GapRow, GapTx, GatewayTally, IngestTx, LockedGateway, PointKey};
use crate::monitoring;
use crate::rows::{self};
use crate::{AckRows, BatchOutcome, CrashWindow, IncomingBatch, StoreError};
use fieldlink_wire::{Sample, Status, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::pin::pin;
use std::sync::Arc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

impl PostgresStore {
    pub(crate) async fn ingest(
        &self,
        batches: Arc<[IncomingBatch]>,
        received_at: i64,
        utc_offset_minutes: i32,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        self.create_partitions_for(&batches, received_at).await;
        let batches = &batches;
        let (outcomes, learned) = self
            .retrying("ingest", |mut client| async move {
                let tx = client.transaction().await?;
                let mut statements = PostgresIngest {
                    store: self,
                    tx: &tx,
                    gaps: PostgresGaps(&tx),
                    alarms: PostgresAlarms(&tx),
                    monitor: PostgresMonitor {
                        store: self,
                        tx: &tx,
                    },
                    learned: Vec::new(),
                };
                let outcomes =
                    ingest::store_group(&mut statements, batches, received_at, utc_offset_minutes)
                        .await?;
                let learned = statements.learned;
                tx.commit().await?;
                Ok((outcomes, learned))
            })
            .await?;
        // Point ids learned by a transaction are cached once it committed.
        let mut points = self.points();
        for ((gateway, device, point), id) in learned {
            points
                .entry(gateway)
                .or_default()
                .insert((device, point), id);
        }
        Ok(outcomes)
    }

    /// The ids of the points in `batches`: from the cache, else found or created (one
    /// statement); also the ones not cached before.
    pub(super) async fn point_ids<'b>(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        batches: &[&'b IncomingBatch],
    ) -> Result<
        (
            HashMap<(&'b str, &'b str, &'b str), i64>,
            Vec<(CachedPoint, i64)>,
        ),
        StoreError,
    > {
        let mut ids = HashMap::new();
        let mut missing: BTreeSet<(&str, &str, &str)> = BTreeSet::new();
        {
            let cache = self.points();
            for batch in batches {
                let known = cache.get(&batch.gateway);
                for sample in &batch.samples {
                    let key = (
                        batch.gateway.as_str(),
                        sample.device.as_ref(),
                        sample.point.as_ref(),
                    );
                    if ids.contains_key(&key) {
                        continue;
                    }
                    let cached = known.and_then(|points| {
                        points
                            .get(&(sample.device.clone(), sample.point.clone()))
                            .copied()
                    });
                    match cached {
                        Some(id) => {
                            ids.insert(key, id);
                        }
                        None => {
                            missing.insert(key);
                        }
                    }
                }
            }
        }
        let mut learned = Vec::new();
        if missing.is_empty() {
            return Ok((ids, learned));
        }
        let gateway: Vec<&str> = missing.iter().map(|k| k.0).collect();
        let device: Vec<&str> = missing.iter().map(|k| k.1).collect();
        let point: Vec<&str> = missing.iter().map(|k| k.2).collect();
        // The plain SELECT reads the snapshot before the INSERT: together they return every
        // key once, whether it existed or was created now.
        let find_or_create = tx
            .prepare_cached(
                "WITH k AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS k(gateway, device, point)),
                 created AS (INSERT INTO points (gateway, device, point) SELECT gateway, device, point FROM k
                             ON CONFLICT DO NOTHING RETURNING id, gateway, device, point)
                 SELECT id, gateway, device, point FROM created
                 UNION ALL
                 SELECT p.id, p.gateway, p.device, p.point FROM points p JOIN k USING (gateway, device, point)",
            )
            .await?;
        let mut found: HashMap<(String, String, String), i64> = tx
            .query(&find_or_create, &[&gateway, &device, &point])
            .await?
            .iter()
            .map(|r| ((r.get(1), r.get(2), r.get(3)), r.get(0)))
            .collect();
        // A key another group created at the same time: its INSERT waited for that
        // group's commit and did nothing, and the SELECT's snapshot predates the commit.
        // A new statement sees it.
        let raced: Vec<&(&str, &str, &str)> = missing
            .iter()
            .filter(|k| !found.contains_key(&(k.0.to_owned(), k.1.to_owned(), k.2.to_owned())))
            .collect();
        if !raced.is_empty() {
            let gateway: Vec<&str> = raced.iter().map(|k| k.0).collect();
            let device: Vec<&str> = raced.iter().map(|k| k.1).collect();
            let point: Vec<&str> = raced.iter().map(|k| k.2).collect();
            let find = tx
                .prepare_cached(
                    "SELECT p.id, p.gateway, p.device, p.point FROM points p
                     JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(gateway, device, point)
                     USING (gateway, device, point)",
                )
                .await?;
            for r in tx.query(&find, &[&gateway, &device, &point]).await? {
                found.insert((r.get(1), r.get(2), r.get(3)), r.get(0));
            }
        }
        for key in missing {
            let owned = (key.0.to_owned(), key.1.to_owned(), key.2.to_owned());
            if let Some(&id) = found.get(&owned) {
                ids.insert(key, id);
                learned.push(((owned.0, Arc::from(owned.1), Arc::from(owned.2)), id));
            }
        }
        Ok((ids, learned))
    }

    pub(crate) async fn update_status(
        &self,
        gateway: String,
        status: Status,
        received_at: i64,
    ) -> Result<bool, StoreError> {
        let json =
            serde_json::to_string(&status).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE gateways SET status = $2, status_at = $3 WHERE id = $1",
                &[&gateway, &json, &received_at],
            )
            .await?;
        Ok(changed > 0)
    }

    pub(crate) async fn record_crash_window(
        &self,
        gateway: String,
        first: i64,
        last: i64,
        now: i64,
    ) -> Result<Option<bool>, StoreError> {
        let gateway = &gateway;
        self.retrying("record a crash window", |mut client| async move {
            let tx = client.transaction().await?;
            // The gateway's row lock, which the ingest holds while it opens and fills gaps.
            if tx
                .query_opt(
                    "SELECT 1 FROM gateways WHERE id = $1 FOR UPDATE",
                    &[gateway],
                )
                .await?
                .is_none()
            {
                return Ok(None);
            }
            let new = tx
                .execute(
                    "INSERT INTO crash_windows (gateway, first_seq, last_seq, recorded_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[gateway, &first, &last, &now],
                )
                .await?
                > 0;
            ingest::close_crash_window(&mut PostgresGaps(&tx), gateway, first, last).await?;
            tx.commit().await?;
            Ok(Some(new))
        })
        .await
    }

    pub(crate) async fn crash_windows(
        &self,
        gateway: String,
        limit: u32,
    ) -> Result<Vec<CrashWindow>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT first_seq, last_seq, recorded_at FROM crash_windows
                 WHERE gateway = $1 ORDER BY first_seq LIMIT $2",
                &[&gateway, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(rows::crash_window)
            .collect()
    }

    pub(crate) async fn gateways_with_recent_gaps(
        &self,
        since: i64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT DISTINCT gateway FROM gaps WHERE detected_at >= $1 ORDER BY gateway LIMIT $2",
                &[&since, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
    }

    /// The highest stored `seq` of each of `gateways` that has one, and their open gaps
    /// in order: two statements for all of them.
    pub(crate) async fn ack_rows(&self, gateways: Vec<String>) -> Result<AckRows, StoreError> {
        let client = self.client().await?;
        let maxima = client
            .query(
                "SELECT id, max_seq FROM gateways WHERE id = ANY($1) AND max_seq IS NOT NULL",
                &[&gateways],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let open = client
            .query(
                "SELECT gateway, first_seq, last_seq FROM gaps WHERE gateway = ANY($1)
                 ORDER BY gateway, first_seq",
                &[&gateways],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        Ok((maxima, open))
    }

    pub(crate) async fn update_meta(
        &self,
        gateway: String,
        meta: serde_json::Value,
        received_at: i64,
        utc_offset_minutes: i32,
    ) -> Result<bool, StoreError> {
        let json = meta.to_string();
        let roles = monitoring::roles_in(&meta);
        let (gateway, json, meta) = (&gateway, &json, &meta);
        let device: Vec<&str> = roles.keys().map(|(d, _)| d.as_str()).collect();
        let point: Vec<&str> = roles.keys().map(|(_, p)| p.as_str()).collect();
        let (device, point) = (&device, &point);
        self.retrying("store a catalogue", |mut client| async move {
            let tx = client.transaction().await?;
            // The role points first, as the ingest creates points before its locks.
            let create = tx
                .prepare_cached(
                    "INSERT INTO points (gateway, device, point)
                     SELECT $1, d, p FROM unnest($2::text[], $3::text[]) AS u(d, p)
                     WHERE EXISTS (SELECT 1 FROM gateways WHERE id = $1)
                     ORDER BY d, p ON CONFLICT DO NOTHING",
                )
                .await?;
            tx.execute(&create, &[gateway, device, point]).await?;
            // Then the gateway's lock and its enterprise's, in the ingest's lock order.
            let Some(row) = tx
                .query_opt(
                    "UPDATE gateways SET meta = $2, meta_at = $3 WHERE id = $1 RETURNING credit_code",
                    &[gateway, json, &received_at],
                )
                .await?
            else {
                return Ok(false);
            };
            let credit_code: String = row.try_get(0)?;
            tx.execute(
                "SELECT 1 FROM enterprises WHERE credit_code = $1 FOR UPDATE",
                &[&credit_code],
            )
            .await?;
            let mut statements = PostgresMonitor {
                store: self,
                tx: &tx,
            };
            monitoring::change_roles(
                &mut statements,
                gateway,
                &credit_code,
                meta,
                utc_offset_minutes,
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }
}

/// A sample's value and quality as the `samples` columns hold them (also the `latest_*`
/// columns of its point).
struct SampleCells<'s> {
    kind: i16,
    int: Option<i64>,
    float: Option<f64>,
    text: Option<Cow<'s, str>>,
    quality: i16,
    error: Option<&'s str>,
}

impl<'s> SampleCells<'s> {
    fn of(value: &'s Value, quality: &'s fieldlink_wire::Quality) -> SampleCells<'s> {
        let (int, float, text) = match value {
            Value::None => (None, None, None),
            Value::Bool(b) => (Some(i64::from(*b)), None, None),
            Value::Int(i) => (Some(*i), None, None),
            // Above i64::MAX: kept exactly, as text.
            Value::UInt(u) => (None, None, Some(Cow::Owned(u.to_string()))),
            Value::Float(f) => (None, Some(*f), None),
            Value::Text(t) => (None, None, Some(Cow::Borrowed(t.as_ref()))),
        };
        let (quality, error) = quality_columns(quality);
        SampleCells {
            kind: kind_of(value),
            int,
            float,
            text,
            quality,
            error,
        }
    }
}

/// The `samples` columns in the order [`SAMPLE_TYPES`] gives their types.
const COPY_SAMPLES: &str =
    "COPY samples (point_id, ts, kind, value_int, value_float, value_text, quality, error)
     FROM STDIN (FORMAT binary)";

/// The types of [`COPY_SAMPLES`]'s columns, in order.
const SAMPLE_TYPES: [Type; 8] = [
    Type::INT8,
    Type::INT8,
    Type::INT2,
    Type::INT8,
    Type::FLOAT8,
    Type::TEXT,
    Type::INT2,
    Type::TEXT,
];

/// Points' newest samples as the columns of one `unnest` statement.
#[derive(Default)]
struct SampleColumns<'s> {
    point_id: Vec<i64>,
    ts: Vec<i64>,
    kind: Vec<i16>,
    int: Vec<Option<i64>>,
    float: Vec<Option<f64>>,
    text: Vec<Option<Cow<'s, str>>>,
    quality: Vec<i16>,
    error: Vec<Option<&'s str>>,
}

impl<'s> SampleColumns<'s> {
    fn push(&mut self, point_id: i64, sample: &'s Sample) {
        let cells = SampleCells::of(&sample.value, &sample.quality);
        self.point_id.push(point_id);
        self.ts.push(sample.ts);
        self.kind.push(cells.kind);
        self.int.push(cells.int);
        self.float.push(cells.float);
        self.text.push(cells.text);
        self.quality.push(cells.quality);
        self.error.push(cells.error);
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.point_id,
            &self.ts,
            &self.kind,
            &self.int,
            &self.float,
            &self.text,
            &self.quality,
            &self.error,
        ]
    }
}

/// The gap statements on PostgreSQL.
struct PostgresGaps<'t, 'c>(&'t deadpool_postgres::Transaction<'c>);

impl GapTx for PostgresGaps<'_, '_> {
    async fn crash_windows(
        &mut self,
        gateway: &str,
        first: i64,
        last: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(self
            .0
            .query(
                "SELECT first_seq, last_seq FROM crash_windows
                 WHERE gateway = $1 AND first_seq <= $3 AND last_seq >= $2",
                &[&gateway, &first, &last],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn open_gap(
        &mut self,
        gateway: &str,
        first: i64,
        last: i64,
        detected_at: i64,
    ) -> Result<(), StoreError> {
        self.0
            .execute(
                "INSERT INTO gaps (gateway, first_seq, last_seq, detected_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (gateway, first_seq) DO UPDATE SET last_seq = EXCLUDED.last_seq,
                 detected_at = EXCLUDED.detected_at, reported_at = NULL",
                &[&gateway, &first, &last, &detected_at],
            )
            .await?;
        Ok(())
    }

    async fn take_gaps(
        &mut self,
        gateway: &str,
        first: i64,
        last: i64,
    ) -> Result<Vec<GapRow>, StoreError> {
        Ok(self
            .0
            .query(
                "DELETE FROM gaps WHERE gateway = $1 AND first_seq <= $3 AND last_seq >= $2
                 RETURNING first_seq, last_seq, detected_at, reported_at",
                &[&gateway, &first, &last],
            )
            .await?
            .iter()
            .map(|r| GapRow {
                first: r.get(0),
                last: r.get(1),
                detected_at: r.get(2),
                reported_at: r.get(3),
            })
            .collect())
    }

    async fn insert_gap(&mut self, gateway: &str, gap: GapRow) -> Result<(), StoreError> {
        self.0
            .execute(
                "INSERT INTO gaps (gateway, first_seq, last_seq, detected_at, reported_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &gateway,
                    &gap.first,
                    &gap.last,
                    &gap.detected_at,
                    &gap.reported_at,
                ],
            )
            .await?;
        Ok(())
    }
}

/// The statements of storing a group on PostgreSQL (the decisions are
/// [`ingest::store_group`]'s): one statement over arrays (`unnest`) for each step, the
/// samples by binary `COPY`. The
/// work before the gateways' lock runs beside other instances' groups.
struct PostgresIngest<'s, 't, 'c> {
    store: &'s PostgresStore,
    tx: &'t deadpool_postgres::Transaction<'c>,
    gaps: PostgresGaps<'t, 'c>,
    alarms: PostgresAlarms<'t, 'c>,
    monitor: PostgresMonitor<'s, 't, 'c>,
    /// Point ids found or created by this transaction, cached once it commits.
    learned: Vec<(CachedPoint, i64)>,
}

impl<'s, 't, 'c> IngestTx for PostgresIngest<'s, 't, 'c> {
    type Gaps = PostgresGaps<'t, 'c>;
    type Alarms = PostgresAlarms<'t, 'c>;
    type Monitor = PostgresMonitor<'s, 't, 'c>;

    fn monitor(&mut self) -> &mut PostgresMonitor<'s, 't, 'c> {
        &mut self.monitor
    }

    fn gaps(&mut self) -> &mut PostgresGaps<'t, 'c> {
        &mut self.gaps
    }

    fn alarms(&mut self) -> &mut PostgresAlarms<'t, 'c> {
        &mut self.alarms
    }

    async fn enrolled(&mut self, ids: &[&str]) -> Result<HashSet<String>, StoreError> {
        let enrolled = self
            .tx
            .prepare_cached("SELECT id FROM gateways WHERE id = ANY($1)")
            .await?;
        Ok(self
            .tx
            .query(&enrolled, &[&ids])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn insert_dedup(
        &mut self,
        rows: &[(&str, i64, i64)],
        received_at: i64,
    ) -> Result<HashSet<(String, i64)>, StoreError> {
        let gateway: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let seq: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let samples: Vec<i64> = rows.iter().map(|r| r.2).collect();
        let insert = self
            .tx
            .prepare_cached(
                "INSERT INTO batches (gateway, seq, received_at, samples)
                 SELECT g, s, $3, n FROM unnest($1::text[], $2::int8[], $4::int8[]) AS u(g, s, n)
                 ON CONFLICT DO NOTHING RETURNING gateway, seq",
            )
            .await?;
        Ok(self
            .tx
            .query(&insert, &[&gateway, &seq, &received_at, &samples])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn point_ids<'b>(
        &mut self,
        batches: &[&'b IncomingBatch],
    ) -> Result<HashMap<PointKey<'b>, i64>, StoreError> {
        let (ids, learned) = self.store.point_ids(self.tx, batches).await?;
        self.learned.extend(learned);
        Ok(ids)
    }

    /// Binary `COPY`: the rows go to the server as they are encoded, and it routes them to
    /// their day's partition without planning a statement over arrays. The dedup rows
    /// (step 2) already keep a resent batch out, so nothing here can conflict.
    async fn insert_samples(&mut self, samples: &[(i64, &Sample)]) -> Result<(), StoreError> {
        let copy = self.tx.prepare_cached(COPY_SAMPLES).await?;
        let sink = self.tx.copy_in(&copy).await?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &SAMPLE_TYPES));
        for &(point_id, sample) in samples {
            let cells = SampleCells::of(&sample.value, &sample.quality);
            let row: [&(dyn ToSql + Sync); 8] = [
                &point_id,
                &sample.ts,
                &cells.kind,
                &cells.int,
                &cells.float,
                &cells.text,
                &cells.quality,
                &cells.error,
            ];
            writer.as_mut().write(&row).await?;
        }
        writer.finish().await?;
        Ok(())
    }

    async fn lock_gateways(
        &mut self,
        ids: &[&str],
    ) -> Result<BTreeMap<String, LockedGateway>, StoreError> {
        // In id order: the global lock order's first part. From here to the commit, groups
        // with a gateway in common take turns.
        let lock = self
            .tx
            .prepare_cached(
                "SELECT id, credit_code, max_seq, roles_version FROM gateways WHERE id = ANY($1)
                 ORDER BY id FOR UPDATE",
            )
            .await?;
        Ok(self
            .tx
            .query(&lock, &[&ids])
            .await?
            .iter()
            .map(|r| {
                let row = LockedGateway {
                    credit_code: r.get(1),
                    max_seq: r.get(2),
                    roles_version: r.get(3),
                };
                (r.get(0), row)
            })
            .collect())
    }

    async fn upsert_minutes(
        &mut self,
        minutes: &BTreeMap<(i64, i64), MinuteAggregate>,
    ) -> Result<(), StoreError> {
        let (mut point, mut minute, mut min, mut max, mut sum, mut count) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for ((point_id, m_minute), m) in minutes {
            point.push(*point_id);
            minute.push(*m_minute);
            min.push(m.min);
            max.push(m.max);
            sum.push(m.sum);
            count.push(m.count);
        }
        let upsert = self
            .tx
            .prepare_cached(
                "INSERT INTO sample_minutes (point_id, minute, min, max, sum, count)
                 SELECT * FROM unnest($1::int8[], $2::int8[], $3::float8[], $4::float8[], $5::float8[], $6::int8[])
                 ON CONFLICT (point_id, minute) DO UPDATE SET
                   min = LEAST(sample_minutes.min, EXCLUDED.min), max = GREATEST(sample_minutes.max, EXCLUDED.max),
                   sum = sample_minutes.sum + EXCLUDED.sum, count = sample_minutes.count + EXCLUDED.count",
            )
            .await?;
        self.tx
            .execute(&upsert, &[&point, &minute, &min, &max, &sum, &count])
            .await?;
        Ok(())
    }

    async fn update_latest(&mut self, newest: &BTreeMap<i64, &Sample>) -> Result<(), StoreError> {
        let mut latest = SampleColumns::default();
        for (&point_id, &sample) in newest {
            latest.push(point_id, sample);
        }
        let update = self
            .tx
            .prepare_cached(
                "UPDATE points p SET latest_ts = u.ts, latest_kind = u.kind, latest_int = u.vi,
                   latest_float = u.vf, latest_text = u.vt, latest_quality = u.q, latest_error = u.err
                 FROM unnest($1::int8[], $2::int8[], $3::int2[], $4::int8[], $5::float8[], $6::text[],
                             $7::int2[], $8::text[]) AS u(id, ts, kind, vi, vf, vt, q, err)
                 WHERE p.id = u.id AND (p.latest_ts IS NULL OR p.latest_ts <= u.ts)",
            )
            .await?;
        self.tx.execute(&update, &latest.params()).await?;
        Ok(())
    }

    async fn update_gateways(
        &mut self,
        tallies: &BTreeMap<String, GatewayTally>,
        received_at: i64,
    ) -> Result<(), StoreError> {
        let id: Vec<&str> = tallies.keys().map(String::as_str).collect();
        let batches: Vec<i64> = tallies.values().map(|t| t.batches).collect();
        let samples: Vec<i64> = tallies.values().map(|t| t.samples).collect();
        let max_seq: Vec<Option<i64>> = tallies.values().map(|t| t.max_seq).collect();
        let update = self
            .tx
            .prepare_cached(
                "UPDATE gateways g SET batches = g.batches + u.b, samples = g.samples + u.s, max_seq = u.m,
                   first_batch_at = COALESCE(g.first_batch_at, $5),
                   last_batch_at = GREATEST(COALESCE(g.last_batch_at, $5), $5)
                 FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[]) AS u(id, b, s, m)
                 WHERE g.id = u.id",
            )
            .await?;
        self.tx
            .execute(&update, &[&id, &batches, &samples, &max_seq, &received_at])
            .await?;
        Ok(())
    }

    async fn update_enterprises(
        &mut self,
        codes: &[&str],
        received_at: i64,
        day: i64,
    ) -> Result<(), StoreError> {
        let lock = self
            .tx
            .prepare_cached(
                "SELECT 1 FROM enterprises WHERE credit_code = ANY($1) ORDER BY credit_code FOR UPDATE",
            )
            .await?;
        self.tx.query(&lock, &[&codes]).await?;
        let update = self
            .tx
            .prepare_cached(
                "UPDATE enterprises SET first_batch_at = COALESCE(first_batch_at, $2),
                   last_batch_at = GREATEST(COALESCE(last_batch_at, $2), $2)
                 WHERE credit_code = ANY($1)",
            )
            .await?;
        self.tx.execute(&update, &[&codes, &received_at]).await?;
        let active = self
            .tx
            .prepare_cached(
                "INSERT INTO enterprise_days (credit_code, day) SELECT c, $2 FROM unnest($1::text[]) AS u(c)
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        self.tx.execute(&active, &[&codes, &day]).await?;
        Ok(())
    }
}
