//! The SQLite backend: one file, `platform.sqlite3`, in WAL mode with `synchronous=FULL`
//! (a committed transaction survives power loss, which is what acknowledging a batch after
//! its commit promises).
//!
//! rusqlite is synchronous: one writer connection (SQLite has a single writer anyway) and
//! one reader connection (WAL lets reads run beside the writer), each behind a mutex and
//! used only inside `spawn_blocking`. The writer keeps a cache of point ids, cleared
//! whenever a transaction does not commit.
//!
//! Schema changes are numbered migrations in [`MIGRATIONS`], applied in order at open and
//! recorded in `PRAGMA user_version`.

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
use crate::ready::run_ready;
use crate::rows::{self, ENTERPRISE_COLUMNS, GATEWAY_COLUMNS};
use crate::series::{SeriesPlan, SeriesTable};
use fieldlink_wire::{Sample, Status, Value};
use rusqlite::types::Value as SqlValue;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// The database file's name inside the data directory.
pub const FILE_NAME: &str = "platform.sqlite3";
/// The accounts' database file's name inside the data directory.
pub const ACCOUNTS_FILE_NAME: &str = "accounts.sqlite3";

/// The schema, one migration per version (version = index + 1), as SQL files beside the
/// PostgreSQL ones (`platform/store/migrations/`).
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/V1__initial.sql"),
    include_str!("../migrations/sqlite/V2__sample_minutes.sql"),
    include_str!("../migrations/sqlite/V3__gap_reports.sql"),
    include_str!("../migrations/sqlite/V4__credentials_version.sql"),
    include_str!("../migrations/sqlite/V5__crash_windows.sql"),
];

/// The accounts' schema, one migration per version, in `accounts.sqlite3`.
const ACCOUNTS_MIGRATIONS: &[&str] = &[include_str!(
    "../migrations/sqlite-accounts/V1__accounts.sql"
)];

/// Points deleted from per prune transaction, so ingest is never held up for long.
const PRUNE_POINTS_PER_TX: usize = 200;

/// The SQLite store; clones share the connections.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

struct Inner {
    writer: Mutex<Writer>,
    reader: Mutex<Connection>,
    /// `accounts.sqlite3`: the web UI's users and sessions.
    accounts: Mutex<Connection>,
}

/// Point ids by gateway, then (device, point).
type PointIds = HashMap<String, HashMap<(Arc<str>, Arc<str>), i64>>;

struct Writer {
    conn: Connection,
    points: PointIds,
}

impl SqliteStore {
    /// Opens (creating if needed) `DIR/platform.sqlite3` and applies pending migrations.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        let path = private_file(dir, FILE_NAME)
            .map_err(|(path, error)| StoreError::Open { path, error })?;
        let mut writer = Connection::open(&path)?;
        configure(&writer)?;
        migrate(&mut writer, MIGRATIONS)?;
        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader.busy_timeout(std::time::Duration::from_secs(10))?;
        let accounts_path = private_file(dir, ACCOUNTS_FILE_NAME)
            .map_err(|(path, error)| StoreError::Open { path, error })?;
        let mut accounts = Connection::open(&accounts_path)?;
        configure(&accounts)?;
        migrate(&mut accounts, ACCOUNTS_MIGRATIONS)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer: Mutex::new(Writer {
                    conn: writer,
                    points: HashMap::new(),
                }),
                reader: Mutex::new(reader),
                accounts: Mutex::new(accounts),
            }),
        })
    }

    /// The database file inside `dir`.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut writer)
        })
        .await
        .map_err(|_| StoreError::TaskFailed)?
    }

    /// Runs `f` on the accounts' connection, off the async threads.
    pub(crate) async fn accounts<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner
                .accounts
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|_| StoreError::TaskFailed)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let reader = inner.reader.lock().unwrap_or_else(PoisonError::into_inner);
            f(&reader)
        })
        .await
        .map_err(|_| StoreError::TaskFailed)?
    }

    pub(super) async fn insert_enterprises(
        &self,
        enterprises: Vec<NewEnterprise>,
        now: i64,
        commit: bool,
    ) -> Result<Result<usize, Vec<String>>, StoreError> {
        self.write(move |w| {
            let tx = write_tx(&mut w.conn)?;
            let mut existing = Vec::new();
            {
                let mut exists =
                    tx.prepare_cached("SELECT 1 FROM enterprises WHERE credit_code = ?1")?;
                for e in &enterprises {
                    if exists.exists([e.credit_code.as_str()])? {
                        existing.push(e.credit_code.to_string());
                    }
                }
            }
            if !existing.is_empty() {
                return Ok(Err(existing));
            }
            if !commit {
                return Ok(Ok(enterprises.len()));
            }
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO enterprises (credit_code, name, industry, district, in_program, registered_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for e in &enterprises {
                    insert.execute(params![
                        e.credit_code.as_str(),
                        e.name,
                        e.industry.code(),
                        e.district.name(),
                        e.in_program,
                        now
                    ])?;
                }
            }
            tx.commit()?;
            Ok(Ok(enterprises.len()))
        })
        .await
    }

    pub(super) async fn enterprises(&self) -> Result<Vec<Enterprise>, StoreError> {
        self.read(|c| {
            let sql = format!("SELECT {ENTERPRISE_COLUMNS} FROM enterprises ORDER BY credit_code");
            all(&mut c.prepare_cached(&sql)?, [], |r| rows::enterprise(r))
        })
        .await
    }

    pub(super) async fn enterprise(
        &self,
        credit_code: String,
    ) -> Result<Option<Enterprise>, StoreError> {
        self.read(move |c| {
            let sql =
                format!("SELECT {ENTERPRISE_COLUMNS} FROM enterprises WHERE credit_code = ?1");
            first(&mut c.prepare_cached(&sql)?, [credit_code], |r| {
                rows::enterprise(r)
            })
        })
        .await
    }

    pub(super) async fn gateways(
        &self,
        credit_code: Option<String>,
    ) -> Result<Vec<Gateway>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {GATEWAY_COLUMNS} FROM gateways g WHERE ?1 IS NULL OR g.credit_code = ?1 ORDER BY g.id"
            );
            all(&mut c.prepare_cached(&sql)?, [credit_code], |r| rows::gateway(r))
        })
        .await
    }

    pub(super) async fn gateway(
        &self,
        id: String,
        max_gaps: u32,
    ) -> Result<Option<(Gateway, Vec<Gap>)>, StoreError> {
        self.read(move |c| {
            let sql = format!("SELECT {GATEWAY_COLUMNS} FROM gateways g WHERE g.id = ?1");
            let Some(gateway) = first(&mut c.prepare_cached(&sql)?, [&id], |r| rows::gateway(r))? else {
                return Ok(None);
            };
            let mut stmt = c.prepare_cached(
                "SELECT first_seq, last_seq FROM gaps WHERE gateway = ?1 ORDER BY first_seq LIMIT ?2",
            )?;
            let gaps = all(&mut stmt, params![id, max_gaps], |r| rows::gap(r))?;
            Ok(Some((gateway, gaps)))
        })
        .await
    }

    pub(super) async fn report_stale_gaps(
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

    pub(super) async fn open_gaps(&self) -> Result<OpenGaps, StoreError> {
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

    pub(super) async fn latest_values(
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

    pub(super) async fn series(
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

    pub(super) async fn insert_token(&self, token: NewToken) -> Result<bool, StoreError> {
        self.write(move |w| {
            let tx = write_tx(&mut w.conn)?;
            let known = tx
                .prepare_cached("SELECT 1 FROM enterprises WHERE credit_code = ?1")?
                .exists([&token.credit_code])?;
            if !known {
                return Ok(false);
            }
            tx.prepare_cached(
                "INSERT INTO enrollment_tokens (credit_code, token_sha256, created_at, expires_at, max_gateways)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                token.credit_code,
                token.token_sha256,
                token.created_at,
                token.expires_at,
                token.max_gateways
            ])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    pub(super) async fn enroll(&self, req: EnrollRequest) -> Result<EnrollOutcome, StoreError> {
        self.write(move |w| {
            let tx = write_tx(&mut w.conn)?;
            let outcome = run_ready(enroll::enroll(&mut SqliteEnroll(&tx), &req))?;
            if matches!(outcome, EnrollOutcome::Enrolled { .. }) {
                tx.commit()?;
            }
            Ok(outcome)
        })
        .await
    }

    pub(super) async fn credentials(&self) -> Result<Credentials, StoreError> {
        self.read(|c| {
            // One statement: the version and the gateways from one snapshot.
            let mut stmt = c.prepare_cached(
                "SELECT v.version, g.id, g.password_hash
                 FROM credentials_version v LEFT JOIN gateways g ON 1 = 1 ORDER BY g.id",
            )?;
            let mut version = 0;
            let mut users = Vec::new();
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                version = row.get::<_, i64>(0)?;
                if let Some(id) = row.get::<_, Option<String>>(1)? {
                    users.push((id, row.get(2)?));
                }
            }
            Ok(Credentials {
                version: u64::try_from(version)
                    .map_err(|_| StoreError::Corrupt(format!("credentials version {version}")))?,
                users,
            })
        })
        .await
    }

    pub(super) async fn password_hash(
        &self,
        gateway: String,
    ) -> Result<Option<String>, StoreError> {
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT password_hash FROM gateways WHERE id = ?1")?
                    .query_row([gateway], |r| r.get(0))
                    .optional()?,
            )
        })
        .await
    }

    pub(super) async fn ingest(
        &self,
        batches: Arc<[IncomingBatch]>,
        received_at: i64,
        day: i64,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        self.write(move |w| {
            let Writer { conn, points } = w;
            let result = write_tx(conn).map_err(StoreError::from).and_then(|tx| {
                let mut statements = SqliteIngest {
                    tx: &tx,
                    gaps: SqliteGaps(&tx),
                    points,
                };
                let outcomes = run_ready(ingest::store_group(
                    &mut statements,
                    &batches,
                    received_at,
                    day,
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

    pub(super) async fn update_status(
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

    pub(super) async fn record_crash_window(
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

    pub(super) async fn crash_windows(
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

    /// The highest stored `seq` of each of `gateways` that has one, and their open gaps
    /// in order.
    pub(super) async fn ack_rows(&self, gateways: Vec<String>) -> Result<AckRows, StoreError> {
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

    pub(super) async fn update_meta(
        &self,
        gateway: String,
        meta: serde_json::Value,
        received_at: i64,
    ) -> Result<bool, StoreError> {
        let json = meta.to_string();
        self.write(move |w| {
            let changed = w
                .conn
                .prepare_cached("UPDATE gateways SET meta = ?2, meta_at = ?3 WHERE id = ?1")?
                .execute(params![gateway, json, received_at])?;
            Ok(changed > 0)
        })
        .await
    }

    pub(super) async fn prune(
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

    pub(super) async fn onboarding(
        &self,
        active_since: i64,
    ) -> Result<Vec<OnboardingRow>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT e.industry, e.district, e.in_program,
                        EXISTS (SELECT 1 FROM gateways g WHERE g.credit_code = e.credit_code),
                        e.first_batch_at IS NOT NULL,
                        COALESCE(e.last_batch_at >= ?1, 0)
                 FROM enterprises e",
            )?;
            all(&mut stmt, [active_since], |r| rows::onboarding(r))
        })
        .await
    }

    pub(super) async fn on_cloud_since(&self) -> Result<Vec<(bool, i64)>, StoreError> {
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

    pub(super) async fn active_days(
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

/// `DIR/NAME`, created empty if missing and readable by the platform's user alone (plant
/// data, hashes, session digests), in `DIR` (created with mode 0700 if missing). SQLite
/// gives its `-wal` and `-shm` files the database file's mode. The error names the path.
pub fn private_file(dir: &Path, name: &str) -> Result<PathBuf, (PathBuf, std::io::Error)> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| (dir.to_owned(), e))?;
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| (path.clone(), e))?;
    Ok(path)
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "cannot switch the database to WAL mode (got {mode})"
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    Ok(())
}

/// A write transaction that takes SQLite's write lock at its start: one that read first
/// and wrote later could not wait for another process's writer (SQLite answers "database
/// is locked" at once, with a snapshot gone stale), and several platform instances may
/// share one database file.
fn write_tx(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// Applies the `migrations` the database has not had yet (its `user_version` counts them).
fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<(), StoreError> {
    let supported = migrations.len() as i64;
    // The version is read under the write lock: instances starting together migrate once.
    let tx = write_tx(conn)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > supported {
        return Err(StoreError::TooNew {
            found: current,
            supported,
        });
    }
    for (index, sql) in migrations.iter().enumerate().skip(current as usize) {
        let version = index as i64 + 1;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tracing::info!(version, "database schema migrated");
    }
    tx.commit()?;
    Ok(())
}

/// Every row of `stmt` with `params`, each mapped by `map`.
fn all<T>(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
    map: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(map(row)?);
    }
    Ok(out)
}

/// The first row of `stmt` with `params`, mapped by `map`, if there is one.
fn first<T>(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
    map: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    stmt.query(params)?.next()?.map(map).transpose()
}

fn value_columns(value: &Value) -> (i16, SqlValue) {
    let column = match value {
        Value::None => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Int(i) => SqlValue::Integer(*i),
        // Above i64::MAX: kept exactly, as text.
        Value::UInt(u) => SqlValue::Text(u.to_string()),
        Value::Float(f) => SqlValue::Real(*f),
        Value::Text(t) => SqlValue::Text(t.clone()),
    };
    (kind_of(value), column)
}

fn read_value(kind: i16, value: SqlValue) -> Result<Value, StoreError> {
    Ok(match (kind, value) {
        (KIND_NONE, _) => Value::None,
        (KIND_BOOL, SqlValue::Integer(i)) => Value::Bool(i != 0),
        (KIND_INT, SqlValue::Integer(i)) => Value::Int(i),
        (KIND_UINT, SqlValue::Text(t)) => parse_uint(&t)?,
        (KIND_FLOAT, SqlValue::Real(f)) => Value::Float(f),
        (KIND_FLOAT, SqlValue::Integer(i)) => Value::Float(i as f64),
        (KIND_TEXT, SqlValue::Text(t)) => Value::Text(t),
        (kind, value) => {
            return Err(StoreError::Corrupt(format!(
                "value of kind {kind}: {value:?}"
            )));
        }
    })
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
    points: &'t mut PointIds,
}

impl<'t> IngestTx for SqliteIngest<'t> {
    type Gaps = SqliteGaps<'t>;

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
        let mut stmt = self
            .tx
            .prepare_cached("SELECT credit_code, max_seq FROM gateways WHERE id = ?1")?;
        let mut rows = BTreeMap::new();
        for id in ids {
            let row = stmt
                .query_row([id], |r| {
                    Ok(LockedGateway {
                        credit_code: r.get(0)?,
                        max_seq: r.get(1)?,
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

/// Enrollment's statements on SQLite (the decisions are [`enroll::enroll`]'s).
struct SqliteEnroll<'t>(&'t Transaction<'t>);

impl EnrollTx for SqliteEnroll<'_> {
    async fn token(&mut self, token_sha256: &str) -> Result<Option<TokenRow>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT t.id, t.credit_code, t.expires_at, t.max_gateways, e.name
                 FROM enrollment_tokens t JOIN enterprises e ON e.credit_code = t.credit_code
                 WHERE t.token_sha256 = ?1",
            )?
            .query_row([token_sha256], |r| {
                Ok(TokenRow {
                    id: r.get(0)?,
                    credit_code: r.get(1)?,
                    expires_at: r.get(2)?,
                    max_gateways: r.get(3)?,
                    enterprise_name: r.get(4)?,
                })
            })
            .optional()?)
    }

    async fn gateway_owner(&mut self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT credit_code FROM gateways WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    async fn gateways_of_token(&mut self, token_id: i64) -> Result<u64, StoreError> {
        let used: i64 = self
            .0
            .prepare_cached("SELECT COUNT(*) FROM gateways WHERE token_id = ?1")?
            .query_row([token_id], |r| r.get(0))?;
        Ok(used.unsigned_abs())
    }

    async fn rotate(&mut self, id: &str, req: &EnrollRequest) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE gateways SET password_hash = ?2, hostname = COALESCE(?3, hostname),
                 agent_version = COALESCE(?4, agent_version), credentials_issued_at = ?5
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                req.password_hash,
                req.hostname,
                req.agent_version,
                req.now
            ])?;
        Ok(())
    }

    async fn insert_gateway(
        &mut self,
        id: &str,
        token: &TokenRow,
        req: &EnrollRequest,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO gateways (id, credit_code, name, token_id, password_hash, hostname,
                 agent_version, enrolled_at, credentials_issued_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
            )?
            .execute(params![
                id,
                token.credit_code,
                req.gateway_name,
                token.id,
                req.password_hash,
                req.hostname,
                req.agent_version,
                req.now
            ])?;
        Ok(())
    }

    async fn credentials_changed(&mut self) -> Result<(), StoreError> {
        self.0
            .prepare_cached("UPDATE credentials_version SET version = version + 1")?
            .execute([])?;
        Ok(())
    }
}
