//! The SQLite backend: one file, `platform.sqlite3`, in WAL mode with `synchronous=FULL`
//! (a committed transaction survives power loss, which is what acknowledging a batch after
//! its commit promises).
//!
//! rusqlite is synchronous: one writer connection (SQLite has a single writer anyway) and
//! one reader connection (WAL lets reads run beside the writer), each behind a mutex and
//! used only inside `spawn_blocking`. The writer keeps a cache of point ids, cleared
//! whenever a transaction does not commit, and each gateway's role points by the version
//! read with the gateway's row.
//!
//! Schema changes are numbered migrations in [`MIGRATIONS`], applied in order at open and
//! recorded in `PRAGMA user_version`.

use crate::StoreError;
use crate::columns::{
    KIND_BOOL, KIND_FLOAT, KIND_INT, KIND_NONE, KIND_TEXT, KIND_UINT, kind_of, parse_uint,
};
use crate::monitoring::RoleCache;
use fieldlink_wire::Value;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, Row, Transaction, TransactionBehavior};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

mod alarms;
mod batches;
mod configs;
mod integrators;
mod monitoring;
mod profile;
mod reads;
mod registry;
mod upkeep;

/// The database file's name inside the data directory.
pub const FILE_NAME: &str = "platform.sqlite3";
/// The accounts' database file's name inside the data directory.
pub const ACCOUNTS_FILE_NAME: &str = "accounts.sqlite3";

/// The schema, one migration per version (version = index + 1), as SQL files beside the
/// PostgreSQL ones (`platform/store/migrations/`).
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/V1__initial.sql"),
    include_str!("../../migrations/sqlite/V2__sample_minutes.sql"),
    include_str!("../../migrations/sqlite/V3__gap_reports.sql"),
    include_str!("../../migrations/sqlite/V4__credentials_version.sql"),
    include_str!("../../migrations/sqlite/V5__crash_windows.sql"),
    include_str!("../../migrations/sqlite/V6__integrators.sql"),
    include_str!("../../migrations/sqlite/V7__gateway_configs.sql"),
    include_str!("../../migrations/sqlite/V8__alarms.sql"),
    include_str!("../../migrations/sqlite/V9__enterprise_profile.sql"),
    include_str!("../../migrations/sqlite/V10__monitoring.sql"),
];

/// The accounts' schema, one migration per version, in `accounts.sqlite3`.
const ACCOUNTS_MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite-accounts/V1__accounts.sql"),
    include_str!("../../migrations/sqlite-accounts/V2__roles.sql"),
];

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
    /// Each gateway's role points by `roles_version` (see [`crate::monitoring`]).
    roles: RoleCache,
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
                    roles: HashMap::new(),
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
