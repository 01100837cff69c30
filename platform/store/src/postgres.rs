//! The PostgreSQL backend, for city scale: any number of platform instances (ingest and
//! HTTP) share one database, so nothing two instances could disagree on lives in process
//! memory.
//!
//! - **Migrations**: versioned SQL files in `platform/store/migrations/postgres`, embedded and
//!   applied at start by refinery, under an advisory lock so instances starting together
//!   migrate once.
//! - **Exactly once across instances**: the `batches` primary key `(gateway, seq)` decides
//!   which delivery of a batch is stored (dedup rows inserted in key order). The samples
//!   are inserted next, beside other instances' groups; then the group's gateway rows are
//!   locked (`FOR UPDATE`, in id order), so two instances storing batches of one gateway
//!   take turns for the rest (its highest `seq` and gaps, its points' minute aggregates
//!   and latest values, its counters); enterprise rows are locked after all gateway rows,
//!   in credit-code order, so lock order is global and two instances cannot deadlock each
//!   other. A deadlock or serialization failure (from other writers, e.g. a prune) rolls
//!   back and is retried.
//! - **Throughput**: a group's samples, per-minute aggregates, latest values and counters
//!   are each written by one statement over arrays (`unnest`), not a round trip per row.
//! - **A month of 1 s data**: `samples` is partitioned by UTC day; the platform creates
//!   the coming days' partitions ahead of time (and a missing day's on demand), reads of a
//!   window touch only its days, and pruning drops whole days. Samples whose day is far
//!   from today (a gateway clock years off) go to the default partition instead of making
//!   a partition each.
//! - The only process memory is a cache of point ids (immutable once created) and the set
//!   of partitions known to exist, both safe to lose.

use super::columns::{
    KIND_BOOL, KIND_FLOAT, KIND_INT, KIND_NONE, KIND_TEXT, KIND_UINT, MINUTE_MS, MinuteAggregate,
    kind_of, parse_uint, quality_columns, read_quality,
};
use super::{
    AckRows, ActiveDay, BatchOutcome, CrashWindow, Credentials, EnrollOutcome, EnrollRequest,
    Enterprise, Gap, Gateway, IncomingBatch, LatestValue, NewEnterprise, NewToken, OnboardingRow,
    OpenGaps, SeriesBucket, SeriesPoint, StaleGap, StoreError,
};
use crate::enroll::{self, EnrollTx, TokenRow};
use crate::ingest::{self, GapRow, GapTx, GatewayTally, IngestTx, LockedGateway, PointKey};
use crate::rows::{self, ENTERPRISE_COLUMNS, GATEWAY_COLUMNS};
use crate::series::{SeriesPlan, SeriesTable};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use fieldlink_wire::{Sample, Status, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// Connections per instance: enough for the ingest, the HTTP handlers and a prune at once.
const POOL_SIZE: usize = 16;
/// How long a request waits for a free connection before failing.
const POOL_WAIT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The advisory lock held while migrating (any fixed number; "fieldlnk").
const MIGRATION_LOCK: i64 = 0x6669_656c_646c_6e6b;
/// Attempts of a transaction that failed on a deadlock, a serialization failure or a
/// concurrent insert of the same key.
const TX_ATTEMPTS: u32 = 5;
/// A day in milliseconds: the partitions' width.
const DAY_MS: i64 = 86_400_000;
/// Days ahead of today whose partitions are created in advance.
const DAYS_AHEAD: i64 = 2;
/// Samples older than this many days get no partition of their own (the default one).
const MAX_PARTITION_AGE_DAYS: i64 = 400;

/// Point ids by gateway, then (device, point).
type PointIds = HashMap<String, HashMap<(Arc<str>, Arc<str>), i64>>;

/// The PostgreSQL store; clones share the pool and caches.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    inner: Arc<Caches>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresStore")
    }
}

/// What this process remembers of the database: only facts that never become false.
struct Caches {
    /// Ids of points, filled after the transactions that created them committed.
    points: Mutex<PointIds>,
    /// Days whose sample partition exists.
    partitions: Mutex<BTreeSet<i64>>,
}

impl PostgresStore {
    /// Connects to `url`, applies pending migrations and creates the coming days'
    /// partitions. TLS as the URL's `sslmode` says, verified against `ca_file` or the
    /// system's roots.
    pub async fn open(url: &str, ca_file: Option<&Path>) -> Result<PostgresStore, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Config(e.to_string()))?;
        config.application_name("fieldlink-platform");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let require_tls = matches!(config.get_ssl_mode(), SslMode::Require);
        let tls = MakeRustlsConnect::new(
            fieldlink_platform_core::tls::verifying_config(ca_file, require_tls)?
                .as_ref()
                .clone(),
        );
        migrate(&config, tls.clone()).await?;
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let store = PostgresStore {
            pool,
            inner: Arc::new(Caches {
                points: Mutex::new(HashMap::new()),
                partitions: Mutex::new(BTreeSet::new()),
            }),
        };
        let existing = store.partition_days().await?;
        store.partitions().extend(existing);
        store.create_coming_partitions().await?;
        Ok(store)
    }

    /// The connection pool (the web UI's accounts share it).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    fn partitions(&self) -> std::sync::MutexGuard<'_, BTreeSet<i64>> {
        self.inner
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn points(&self) -> std::sync::MutexGuard<'_, PointIds> {
        self.inner
            .points
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `attempt` with a pooled connection, again (up to [`TX_ATTEMPTS`]) when it
    /// failed in a way a retry resolves: a deadlock, a serialization failure, or another
    /// instance inserting the same key first.
    async fn retrying<T, F, Fut>(&self, what: &'static str, mut attempt: F) -> Result<T, StoreError>
    where
        F: FnMut(Object) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt(self.client().await?).await {
                Err(StoreError::Postgres(e)) if tries < TX_ATTEMPTS && retryable(&e) => {
                    tracing::debug!(what, error = %e, tries, "transaction retried");
                }
                other => return other,
            }
        }
    }

    pub(super) async fn insert_enterprises(
        &self,
        enterprises: Vec<NewEnterprise>,
        now: i64,
        commit: bool,
    ) -> Result<Result<usize, Vec<String>>, StoreError> {
        let codes: Vec<&str> = enterprises.iter().map(|e| e.credit_code.as_str()).collect();
        let names: Vec<&str> = enterprises.iter().map(|e| e.name.as_str()).collect();
        let industries: Vec<&str> = enterprises.iter().map(|e| e.industry.code()).collect();
        let districts: Vec<&str> = enterprises.iter().map(|e| e.district.name()).collect();
        let in_program: Vec<bool> = enterprises.iter().map(|e| e.in_program).collect();
        let (codes, names, industries, districts, in_program) =
            (&codes, &names, &industries, &districts, &in_program);
        self.retrying("insert enterprises", |mut client| async move {
            let tx = client.transaction().await?;
            let existing: Vec<String> = tx
                .query(
                    "SELECT credit_code FROM enterprises WHERE credit_code = ANY($1) ORDER BY credit_code",
                    &[codes],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !existing.is_empty() {
                return Ok(Err(existing));
            }
            if !commit {
                return Ok(Ok(codes.len()));
            }
            tx.execute(
                "INSERT INTO enterprises (credit_code, name, industry, district, in_program, registered_at)
                 SELECT c, n, i, d, p, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[])
                 AS u(c, n, i, d, p)",
                &[codes, names, industries, districts, in_program, &now],
            )
            .await?;
            tx.commit().await?;
            Ok(Ok(codes.len()))
        })
        .await
    }

    pub(super) async fn enterprises(&self) -> Result<Vec<Enterprise>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {ENTERPRISE_COLUMNS} FROM enterprises ORDER BY credit_code");
        let rows = client
            .query(&client.prepare_cached(&sql).await?, &[])
            .await?;
        rows.iter().map(rows::enterprise).collect()
    }

    pub(super) async fn enterprise(
        &self,
        credit_code: String,
    ) -> Result<Option<Enterprise>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {ENTERPRISE_COLUMNS} FROM enterprises WHERE credit_code = $1");
        let row = client
            .query_opt(&client.prepare_cached(&sql).await?, &[&credit_code])
            .await?;
        row.as_ref().map(rows::enterprise).transpose()
    }

    pub(super) async fn gateways(
        &self,
        credit_code: Option<String>,
    ) -> Result<Vec<Gateway>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {GATEWAY_COLUMNS} FROM gateways g WHERE $1::text IS NULL OR g.credit_code = $1 ORDER BY g.id"
        );
        let rows = client
            .query(&client.prepare_cached(&sql).await?, &[&credit_code])
            .await?;
        rows.iter().map(rows::gateway).collect()
    }

    pub(super) async fn gateway(
        &self,
        id: String,
        max_gaps: u32,
    ) -> Result<Option<(Gateway, Vec<Gap>)>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {GATEWAY_COLUMNS} FROM gateways g WHERE g.id = $1");
        let Some(row) = client
            .query_opt(&client.prepare_cached(&sql).await?, &[&id])
            .await?
        else {
            return Ok(None);
        };
        let gateway = rows::gateway(&row)?;
        let gaps = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT first_seq, last_seq FROM gaps WHERE gateway = $1 ORDER BY first_seq LIMIT $2",
                    )
                    .await?,
                &[&id, &i64::from(max_gaps)],
            )
            .await?
            .iter()
            .map(rows::gap)
            .collect::<Result<_, _>>()?;
        Ok(Some((gateway, gaps)))
    }

    pub(super) async fn report_stale_gaps(
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

    pub(super) async fn open_gaps(&self) -> Result<OpenGaps, StoreError> {
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

    pub(super) async fn latest_values(
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

    pub(super) async fn series(
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

    pub(super) async fn insert_token(&self, token: NewToken) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let max_gateways = i32::try_from(token.max_gateways).unwrap_or(i32::MAX);
        let inserted = client
            .execute(
                "INSERT INTO enrollment_tokens (credit_code, token_sha256, created_at, expires_at, max_gateways)
                 SELECT credit_code, $2, $3, $4, $5 FROM enterprises WHERE credit_code = $1",
                &[
                    &token.credit_code,
                    &token.token_sha256,
                    &token.created_at,
                    &token.expires_at,
                    &max_gateways,
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    pub(super) async fn enroll(&self, req: EnrollRequest) -> Result<EnrollOutcome, StoreError> {
        let req = &req;
        self.retrying("enroll", |mut client| async move {
            let tx = client.transaction().await?;
            let outcome = enroll::enroll(&mut PostgresEnroll(&tx), req).await?;
            if matches!(outcome, EnrollOutcome::Enrolled { .. }) {
                tx.commit().await?;
            }
            Ok(outcome)
        })
        .await
    }

    pub(super) async fn credentials(&self) -> Result<Credentials, StoreError> {
        let client = self.client().await?;
        // One statement: the version and the gateways from one snapshot.
        let rows = client
            .query(
                "SELECT v.version, g.id, g.password_hash
                 FROM credentials_version v LEFT JOIN gateways g ON true ORDER BY g.id",
                &[],
            )
            .await?;
        let version: i64 = rows.first().map_or(0, |r| r.get(0));
        Ok(Credentials {
            version: u64::try_from(version)
                .map_err(|_| StoreError::Corrupt(format!("credentials version {version}")))?,
            users: rows
                .iter()
                .filter_map(|r| Some((r.get::<_, Option<String>>(1)?, r.get(2))))
                .collect(),
        })
    }

    pub(super) async fn password_hash(
        &self,
        gateway: String,
    ) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT password_hash FROM gateways WHERE id = $1")
            .await?;
        Ok(client
            .query_opt(&stmt, &[&gateway])
            .await?
            .map(|r| r.get(0)))
    }

    pub(super) async fn ingest(
        &self,
        batches: Arc<[IncomingBatch]>,
        received_at: i64,
        day: i64,
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
                    learned: Vec::new(),
                };
                let outcomes =
                    ingest::store_group(&mut statements, batches, received_at, day).await?;
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
    async fn point_ids<'b>(
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

    pub(super) async fn update_status(
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

    pub(super) async fn record_crash_window(
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

    pub(super) async fn crash_windows(
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

    /// The highest stored `seq` of each of `gateways` that has one, and their open gaps
    /// in order: two statements for all of them.
    pub(super) async fn ack_rows(&self, gateways: Vec<String>) -> Result<AckRows, StoreError> {
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

    pub(super) async fn update_meta(
        &self,
        gateway: String,
        meta: serde_json::Value,
        received_at: i64,
    ) -> Result<bool, StoreError> {
        let json = meta.to_string();
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE gateways SET meta = $2, meta_at = $3 WHERE id = $1",
                &[&gateway, &json, &received_at],
            )
            .await?;
        Ok(changed > 0)
    }

    /// Drops the partitions wholly before `samples_before`, deletes the older samples
    /// left in the others, the per-minute rows and the dedup rows received before
    /// `batches_before`; then creates the coming days' partitions.
    pub(super) async fn prune(
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

    pub(super) async fn onboarding(
        &self,
        active_since: i64,
    ) -> Result<Vec<OnboardingRow>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT e.industry, e.district, e.in_program,
                        EXISTS (SELECT 1 FROM gateways g WHERE g.credit_code = e.credit_code),
                        e.first_batch_at IS NOT NULL,
                        COALESCE(e.last_batch_at >= $1, false)
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

    pub(super) async fn on_cloud_since(&self) -> Result<Vec<(bool, i64)>, StoreError> {
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

    pub(super) async fn active_days(
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

    /// The days whose sample partition exists, from the catalogue.
    async fn partition_days(&self) -> Result<Vec<i64>, StoreError> {
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
    async fn create_coming_partitions(&self) -> Result<(), StoreError> {
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
    async fn create_partitions_for(&self, batches: &[IncomingBatch], now: i64) {
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

/// A point by gateway, device and name, as cached.
type CachedPoint = (String, Arc<str>, Arc<str>);

/// Samples as the columns of one `unnest` statement.
#[derive(Default)]
struct SampleColumns {
    point_id: Vec<i64>,
    ts: Vec<i64>,
    kind: Vec<i16>,
    int: Vec<Option<i64>>,
    float: Vec<Option<f64>>,
    text: Vec<Option<String>>,
    quality: Vec<i16>,
    error: Vec<Option<String>>,
}

impl SampleColumns {
    fn push(&mut self, point_id: i64, ts: i64, value: &Value, quality: &fieldlink_wire::Quality) {
        let (int, float, text) = match value {
            Value::None => (None, None, None),
            Value::Bool(b) => (Some(i64::from(*b)), None, None),
            Value::Int(i) => (Some(*i), None, None),
            // Above i64::MAX: kept exactly, as text.
            Value::UInt(u) => (None, None, Some(u.to_string())),
            Value::Float(f) => (None, Some(*f), None),
            Value::Text(t) => (None, None, Some(t.clone())),
        };
        let (quality, error) = quality_columns(quality);
        self.point_id.push(point_id);
        self.ts.push(ts);
        self.kind.push(kind_of(value));
        self.int.push(int);
        self.float.push(float);
        self.text.push(text);
        self.quality.push(quality);
        self.error.push(error.map(str::to_owned));
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 8] {
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

/// Applies the migrations not yet applied, holding the migration lock.
async fn migrate(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
) -> Result<(), StoreError> {
    let (mut client, connection) = config.connect(tls).await?;
    let connection = tokio::spawn(connection);
    let result = async {
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let report = embedded::migrations::runner()
            .run_async(&mut client)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()));
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await?;
        for migration in report?.applied_migrations() {
            tracing::info!(
                version = migration.version(),
                name = migration.name(),
                "database schema migrated"
            );
        }
        Ok(())
    }
    .await;
    drop(client);
    if let Ok(Err(e)) = connection.await {
        tracing::debug!(error = %e, "migration connection closed with an error");
    }
    result
}

fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(
            &SqlState::T_R_DEADLOCK_DETECTED
                | &SqlState::T_R_SERIALIZATION_FAILURE
                | &SqlState::UNIQUE_VIOLATION
        )
    )
}

fn partition_name(day: i64) -> String {
    format!("samples_d{day}")
}

fn read_value(
    kind: i16,
    int: Option<i64>,
    float: Option<f64>,
    text: Option<String>,
) -> Result<Value, StoreError> {
    Ok(match (kind, int, float, text) {
        (KIND_NONE, ..) => Value::None,
        (KIND_BOOL, Some(i), ..) => Value::Bool(i != 0),
        (KIND_INT, Some(i), ..) => Value::Int(i),
        (KIND_UINT, _, _, Some(t)) => parse_uint(&t)?,
        (KIND_FLOAT, _, Some(f), _) => Value::Float(f),
        (KIND_TEXT, _, _, Some(t)) => Value::Text(t),
        (kind, ..) => {
            return Err(StoreError::Corrupt(format!(
                "value of kind {kind} without its column"
            )));
        }
    })
}

/// Enrollment's statements on PostgreSQL (the decisions are [`enroll::enroll`]'s). The
/// token's row lock makes enrollments on one token take turns, so its `max_gateways`
/// holds across instances.
struct PostgresEnroll<'t, 'c>(&'t deadpool_postgres::Transaction<'c>);

impl EnrollTx for PostgresEnroll<'_, '_> {
    async fn token(&mut self, token_sha256: &str) -> Result<Option<TokenRow>, StoreError> {
        let row = self
            .0
            .query_opt(
                "SELECT t.id, t.credit_code, t.expires_at, t.max_gateways, e.name
                 FROM enrollment_tokens t JOIN enterprises e ON e.credit_code = t.credit_code
                 WHERE t.token_sha256 = $1 FOR UPDATE OF t",
                &[&token_sha256],
            )
            .await?;
        Ok(row.map(|r| TokenRow {
            id: r.get(0),
            credit_code: r.get(1),
            expires_at: r.get(2),
            max_gateways: u32::try_from(r.get::<_, i32>(3)).unwrap_or(0),
            enterprise_name: r.get(4),
        }))
    }

    async fn gateway_owner(&mut self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .query_opt(
                "SELECT credit_code FROM gateways WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await?
            .map(|r| r.get(0)))
    }

    async fn gateways_of_token(&mut self, token_id: i64) -> Result<u64, StoreError> {
        let used: i64 = self
            .0
            .query_one(
                "SELECT COUNT(*) FROM gateways WHERE token_id = $1",
                &[&token_id],
            )
            .await?
            .get(0);
        Ok(used.unsigned_abs())
    }

    async fn rotate(&mut self, id: &str, req: &EnrollRequest) -> Result<(), StoreError> {
        self.0
            .execute(
                "UPDATE gateways SET password_hash = $2, hostname = COALESCE($3, hostname),
                 agent_version = COALESCE($4, agent_version), credentials_issued_at = $5
                 WHERE id = $1",
                &[
                    &id,
                    &req.password_hash,
                    &req.hostname,
                    &req.agent_version,
                    &req.now,
                ],
            )
            .await?;
        Ok(())
    }

    async fn insert_gateway(
        &mut self,
        id: &str,
        token: &TokenRow,
        req: &EnrollRequest,
    ) -> Result<(), StoreError> {
        self.0
            .execute(
                "INSERT INTO gateways (id, credit_code, name, token_id, password_hash, hostname,
                 agent_version, enrolled_at, credentials_issued_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                &[
                    &id,
                    &token.credit_code,
                    &req.gateway_name,
                    &token.id,
                    &req.password_hash,
                    &req.hostname,
                    &req.agent_version,
                    &req.now,
                ],
            )
            .await?;
        Ok(())
    }

    async fn credentials_changed(&mut self) -> Result<(), StoreError> {
        self.0
            .execute("UPDATE credentials_version SET version = version + 1", &[])
            .await?;
        Ok(())
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
/// [`ingest::store_group`]'s): one statement over arrays (`unnest`) for each step. The
/// work before the gateways' lock runs beside other instances' groups.
struct PostgresIngest<'s, 't, 'c> {
    store: &'s PostgresStore,
    tx: &'t deadpool_postgres::Transaction<'c>,
    gaps: PostgresGaps<'t, 'c>,
    /// Point ids found or created by this transaction, cached once it commits.
    learned: Vec<(CachedPoint, i64)>,
}

impl<'t, 'c> IngestTx for PostgresIngest<'_, 't, 'c> {
    type Gaps = PostgresGaps<'t, 'c>;

    fn gaps(&mut self) -> &mut PostgresGaps<'t, 'c> {
        &mut self.gaps
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

    async fn insert_samples(&mut self, samples: &[(i64, &Sample)]) -> Result<(), StoreError> {
        let mut rows = SampleColumns::default();
        for (point_id, sample) in samples {
            rows.push(*point_id, sample.ts, &sample.value, &sample.quality);
        }
        let insert = self
            .tx
            .prepare_cached(
                "INSERT INTO samples (point_id, ts, kind, value_int, value_float, value_text, quality, error)
                 SELECT * FROM unnest($1::int8[], $2::int8[], $3::int2[], $4::int8[], $5::float8[],
                                      $6::text[], $7::int2[], $8::text[])",
            )
            .await?;
        self.tx.execute(&insert, &rows.params()).await?;
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
                "SELECT id, credit_code, max_seq FROM gateways WHERE id = ANY($1) ORDER BY id FOR UPDATE",
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
        for (point_id, sample) in newest {
            latest.push(*point_id, sample.ts, &sample.value, &sample.quality);
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
