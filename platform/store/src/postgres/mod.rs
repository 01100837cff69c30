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
//! - The only process memory is a cache of point ids (immutable once created), the set
//!   of partitions known to exist, and each gateway's role points by the `roles_version`
//!   they were read at (used only by a transaction that read that version under the
//!   gateway's lock), all safe to lose.

use crate::StoreError;
use crate::columns::{
    KIND_BOOL, KIND_FLOAT, KIND_INT, KIND_NONE, KIND_TEXT, KIND_UINT, parse_uint,
};
use crate::monitoring::RoleCache;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use fieldlink_wire::Value;
use std::collections::{BTreeSet, HashMap};
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

mod alarms;
mod batches;
mod configs;
mod integrators;
mod monitoring;
mod profile;
mod reads;
mod registry;
mod upkeep;

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
    /// Each gateway's role points as of a `roles_version` (what that version's roles were
    /// stays true; a transaction uses them only when it read that version).
    roles: Mutex<RoleCache>,
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
                roles: Mutex::new(HashMap::new()),
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

    fn roles(&self) -> std::sync::MutexGuard<'_, RoleCache> {
        self.inner
            .roles
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
}

/// A point by gateway, device and name, as cached.
type CachedPoint = (String, Arc<str>, Arc<str>);

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
