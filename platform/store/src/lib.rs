//! The platform's storage: ONE interface, [`Store`], over two backends: SQLite (WAL,
//! under the data directory), the embedded default for one instance, and PostgreSQL
//! ([`postgres`]) for city scale, shared by any number of instances. Everything above this
//! crate (registry, ingest, API, counts) sees only [`Store`] and the plain types below;
//! `columns` holds what both backends store alike. The schema is SQL files under
//! `migrations/`, one folder per backend. One test suite (`platform/tests/store.rs`) runs
//! against both.
//!
//! A crate of its own, below the platform's domain and above its leaves
//! (`fieldlink-platform-core`), so that Cargo refuses any import of the layers above.
//!
//! Invariants every backend keeps:
//! - a batch is identified by `(gateway, seq)`; storing one is idempotent, and a batch's
//!   samples (and their per-minute aggregates), its dedup row, its gateway's counters and
//!   its enterprise's on-cloud times commit in one transaction, so an acknowledged batch
//!   is stored exactly once;
//! - enrollment (token check, slot count, gateway insert or credential rotation) is one
//!   transaction, so two integrators cannot overrun a token's `max_gateways`;
//! - secrets are stored only as hashes (SHA-256 for tokens, mosquitto `$7$` for passwords);
//! - with several instances on one database, these hold across instances: the database
//!   enforces them (keys and row locks), never process memory.

mod accounts;
mod ack;
pub mod alarms;
mod columns;
mod configs;
mod database;
mod enroll;
mod ingest;
mod integrators;
mod monitoring;
mod numbering;
pub mod postgres;
mod profile;
mod ready;
mod rows;
mod series;
pub mod sqlite;

pub use accounts::{NewApiToken, NewSession, SessionRow};
pub use configs::{ConfigToPublish, ConfigVersion, NewConfig};
pub use database::{Database, DatabaseUrlError, redact_password};
pub use integrators::{AssignOutcome, Assignment, Integrator, NewIntegrator};
pub use monitoring::{MAX_GAP_MS, MonitoringRow};
pub use numbering::WindowNumbering;
pub use profile::{Assessment, Maturity, NewAssessment};

use fieldlink_platform_core::catalog::{District, Industry};
use fieldlink_platform_core::credit_code::CreditCode;
use fieldlink_platform_core::profile::{MaturityLevel, Size, Specialised};
use fieldlink_wire::{Ack, Quality, Sample, Status, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a storage operation failed. All are server-side faults (HTTP 500); the ingest
/// leaves the batches unacknowledged so the broker delivers them again.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error (disk full, I/O error, corruption).
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// PostgreSQL reported an error, or the connection to it failed. The message has the
    /// causes in it: tokio-postgres's own is only "db error" or "error performing TLS
    /// handshake".
    #[error("PostgreSQL: {}", with_causes(.0))]
    Postgres(tokio_postgres::Error),
    /// No PostgreSQL connection could be had from the pool (server down, all busy).
    #[error("no PostgreSQL connection: {}", with_causes(.0))]
    Pool(deadpool_postgres::PoolError),
    /// The PostgreSQL URL or pool settings are not usable: correct `--database`.
    #[error("PostgreSQL settings: {0}")]
    Config(String),
    /// The TLS settings for PostgreSQL could not be built (CA file).
    #[error(transparent)]
    Tls(#[from] fieldlink_platform_core::tls::TlsError),
    /// The PostgreSQL schema could not be migrated (e.g. the database was migrated by a
    /// newer fieldlink-platform: run that version).
    #[error("the PostgreSQL schema migration failed: {0}")]
    Migrate(String),
    /// The data directory or database file cannot be created or opened.
    #[error("cannot open the database at {path}: {error}")]
    Open {
        /// The path.
        path: PathBuf,
        /// The I/O error (in the message, so not repeated as a cause).
        error: std::io::Error,
    },
    /// The database was written by a newer fieldlink-platform; run that version, or
    /// restore a backup made before the upgrade.
    #[error(
        "the database has schema version {found}, newer than this build's {supported}: use a newer fieldlink-platform"
    )]
    TooNew {
        /// The database's schema version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// A stored value is not what this build writes (edited by hand?).
    #[error("unexpected data in the database: {0}")]
    Corrupt(String),
    /// The blocking database task panicked or was cancelled; see the logs.
    #[error("the database task failed")]
    TaskFailed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Postgres(e)
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Pool(e)
    }
}

/// `e`'s message followed by its causes', each after a colon; a cause whose message the
/// text already ends with is left out (deadpool, for one, has its cause in its message).
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

/// A user as stored: name and role (a type of the crate's root, so that the row mappers
/// and the accounts' statements do not import each other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// The user name.
    pub username: String,
    /// The role and its scope.
    pub role: fieldlink_platform_core::role::Role,
}

/// An enterprise to register (already validated).
#[derive(Debug, Clone)]
pub struct NewEnterprise {
    /// Its credit code.
    pub credit_code: CreditCode,
    /// Its registered name.
    pub name: String,
    /// Its industry.
    pub industry: Industry,
    /// Its district or zone.
    pub district: District,
    /// On the city's list of enterprises being transformed.
    pub in_program: bool,
    /// Above or below designated size, if known.
    pub size: Option<Size>,
    /// Its specialised class, if known.
    pub specialised: Option<Specialised>,
    /// A maturity assessment to record with it.
    pub maturity: Option<NewAssessment>,
}

/// A registered enterprise and its on-cloud times.
#[derive(Debug, Clone)]
pub struct Enterprise {
    /// Its credit code.
    pub credit_code: String,
    /// Its registered name.
    pub name: String,
    /// Its industry.
    pub industry: Industry,
    /// Its district or zone.
    pub district: District,
    /// On the city's list of enterprises being transformed.
    pub in_program: bool,
    /// When it was registered (ms since the epoch).
    pub registered_at: i64,
    /// When the first batch of any of its gateways arrived: on the cloud since then.
    pub first_batch_at: Option<i64>,
    /// When the latest batch of any of its gateways arrived.
    pub last_batch_at: Option<i64>,
    /// The integrator it is assigned to now, by credit code.
    pub integrator: Option<String>,
    /// When that assignment was made (ms since the epoch).
    pub assigned_at: Option<i64>,
    /// The enterprise lets the bureau (and its district) see its sample values.
    pub share_data_with_bureau: bool,
    /// Above or below designated size; `None` until recorded.
    pub size: Option<Size>,
    /// Its specialised class; `None` until recorded.
    pub specialised: Option<Specialised>,
    /// Its current maturity: the newest assessment by `assessed_at`, if any.
    pub maturity: Option<Maturity>,
}

/// The latest retained status of a gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayStatus {
    /// The status payload.
    pub status: Status,
    /// When the platform received it (ms since the epoch).
    pub received_at: i64,
}

impl GatewayStatus {
    /// True if the gateway's latest status says online.
    pub fn online(&self) -> bool {
        self.status.state == fieldlink_wire::GatewayState::Online
    }
}

/// An enrolled gateway.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Its id: MQTT username and topic level.
    pub id: String,
    /// Its enterprise's credit code.
    pub credit_code: String,
    /// The name it was enrolled under.
    pub name: String,
    /// The host name it reported at enrollment.
    pub hostname: Option<String>,
    /// The agent version it reported at enrollment.
    pub agent_version: Option<String>,
    /// First enrollment.
    pub enrolled_at: i64,
    /// Latest enrollment (credential rotation).
    pub credentials_issued_at: i64,
    /// Its first batch's arrival.
    pub first_batch_at: Option<i64>,
    /// Its latest batch's arrival.
    pub last_batch_at: Option<i64>,
    /// Batches stored.
    pub batches: u64,
    /// Samples stored (before pruning).
    pub samples: u64,
    /// The highest `seq` received.
    pub max_seq: Option<u64>,
    /// Batches missing between received ones (open gaps).
    pub missing_batches: u64,
    /// Its latest retained status, if any.
    pub status: Option<GatewayStatus>,
    /// Its latest retained catalogue (the `meta` payload), if any.
    pub meta: Option<serde_json::Value>,
}

/// A range of `seq` never received, between batches that were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Gap {
    /// The first missing `seq`.
    pub first_seq: u64,
    /// The last missing `seq`.
    pub last_seq: u64,
}

impl Gap {
    /// The batches missing in it.
    pub fn missing_batches(&self) -> u64 {
        self.last_seq - self.first_seq + 1
    }
}

/// Sequence numbers a gateway's agent reserved but had not made durable when it stopped
/// uncleanly (its status's `resumed_after_crash`): never counted as missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CrashWindow {
    /// The first skipped `seq`.
    pub first_seq: u64,
    /// The last skipped `seq`.
    pub last_seq: u64,
    /// When the platform learnt of it (ms since the epoch).
    pub recorded_at: i64,
}

/// An open gap reported once as stale: still missing a while after it was detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleGap {
    /// The gateway.
    pub gateway: String,
    /// The range still missing.
    pub gap: Gap,
    /// When its batches were first found missing (ms since the epoch).
    pub detected_at: i64,
}

/// The open gaps of every gateway, as the database has them (the same on every instance).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpenGaps {
    /// Open gaps.
    pub gaps: u64,
    /// Batches missing in them.
    pub missing_batches: u64,
}

/// The latest value of one point.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestValue {
    /// The device.
    pub device: String,
    /// The point.
    pub point: String,
    /// When it was read (ms since the epoch).
    pub ts: i64,
    /// The value.
    pub value: Value,
    /// Its quality.
    pub quality: Quality,
}

/// A point by its gateway, device and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesPoint {
    /// The gateway id.
    pub gateway: String,
    /// The device.
    pub device: String,
    /// The point.
    pub point: String,
}

/// One time bucket of a point's numeric samples (the chart's downsampling).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SeriesBucket {
    /// The bucket's start (ms since the epoch).
    pub start: i64,
    /// The smallest value in the bucket.
    pub min: f64,
    /// The largest value in the bucket.
    pub max: f64,
    /// The mean of the bucket's values.
    pub avg: f64,
    /// How many samples the bucket holds.
    pub count: u64,
}

/// A new enrollment token, by its hash.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The enterprise it enrolls gateways for.
    pub credit_code: String,
    /// SHA-256 of the token (hex).
    pub token_sha256: String,
    /// When it was issued.
    pub created_at: i64,
    /// When it stops working.
    pub expires_at: i64,
    /// How many gateways it may enroll.
    pub max_gateways: u32,
}

/// An enrollment to carry out.
#[derive(Debug, Clone)]
pub struct EnrollRequest {
    /// SHA-256 of the presented token (hex).
    pub token_sha256: String,
    /// The gateway's name within its enterprise.
    pub gateway_name: String,
    /// Reported host name.
    pub hostname: Option<String>,
    /// Reported agent version.
    pub agent_version: Option<String>,
    /// The new MQTT password's mosquitto hash.
    pub password_hash: String,
    /// Now.
    pub now: i64,
}

/// The gateways' broker credentials as of one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Raised by every enrollment: a larger version is a newer view.
    pub version: u64,
    /// Each gateway's MQTT username and password hash, by username.
    pub users: Vec<(String, String)>,
}

/// What an enrollment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// The gateway is enrolled (`rotated`: it was already, and got new credentials).
    Enrolled {
        /// Its id.
        gateway_id: String,
        /// Its enterprise's credit code.
        credit_code: String,
        /// Its enterprise's name.
        enterprise_name: String,
        /// True if this re-enrolled an existing gateway.
        rotated: bool,
    },
    /// No token has this hash.
    UnknownToken,
    /// The token expired at this time.
    Expired {
        /// Its expiry.
        expires_at: i64,
    },
    /// The token has enrolled its maximum of gateways.
    UsedUp {
        /// The maximum.
        max_gateways: u32,
    },
}

/// A decoded batch whose `gateway` matches its topic, ready to store.
#[derive(Debug, Clone)]
pub struct IncomingBatch {
    /// The gateway id.
    pub gateway: String,
    /// The batch's `seq`.
    pub seq: u64,
    /// Its samples.
    pub samples: Vec<Sample>,
}

/// What storing one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Stored; `gap` is set when this batch revealed missing batches, `filled` when it
    /// was one of them.
    Stored {
        /// Samples stored.
        samples: u64,
        /// Newly missing `seq` range, if the batch jumped ahead.
        gap: Option<Gap>,
        /// A late batch: it was missing in an open gap, which it now (partly) fills.
        filled: bool,
    },
    /// `(gateway, seq)` was stored before: dropped.
    Duplicate,
    /// The gateway is not enrolled: dropped.
    UnknownGateway,
}

/// One enterprise's onboarding state and classes, the input of the counts and of the
/// plan's targets.
#[derive(Debug, Clone, Copy)]
pub struct OnboardingRow {
    /// Its industry.
    pub industry: Industry,
    /// Its district.
    pub district: District,
    /// On the program's list.
    pub in_program: bool,
    /// Has at least one enrolled gateway.
    pub enrolled: bool,
    /// Has delivered a batch.
    pub on_cloud: bool,
    /// Delivered a batch since the `active_since` asked for.
    pub active: bool,
    /// Above or below designated size, if known.
    pub size: Option<Size>,
    /// Its specialised class, if known.
    pub specialised: Option<Specialised>,
    /// Its current maturity level, if assessed.
    pub maturity: Option<MaturityLevel>,
}

/// A day on which an enterprise delivered at least one batch.
#[derive(Debug, Clone, Copy)]
pub struct ActiveDay {
    /// The day number in the program's time zone.
    pub day: i64,
    /// The enterprise is on the program's list.
    pub in_program: bool,
    /// An index identifying the enterprise within one answer.
    pub enterprise: u32,
}

/// What a backend reads for [`Store::acks`]: each gateway's highest stored `seq`, and the
/// open gaps `(gateway, first, last)` of those gateways, in order.
type AckRows = (Vec<(String, i64)>, Vec<(String, i64, i64)>);

/// The storage backend. One variant per backend; every method is the same contract.
#[derive(Clone, Debug)]
pub enum Store {
    /// SQLite in WAL mode (the embedded default).
    Sqlite(sqlite::SqliteStore),
    /// PostgreSQL (city scale, several instances).
    Postgres(postgres::PostgresStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}
pub(crate) use dispatch;

impl Store {
    /// Opens the configured database (SQLite in `data_dir`, or PostgreSQL) and applies
    /// pending schema migrations.
    pub async fn open(database: &Database, data_dir: &Path) -> Result<Store, StoreError> {
        match database {
            Database::Sqlite => {
                let dir = data_dir.to_owned();
                let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&dir))
                    .await
                    .map_err(|_| StoreError::TaskFailed)??;
                tracing::info!(path = %sqlite::SqliteStore::path_in(data_dir).display(), "database open (SQLite)");
                Ok(Store::Sqlite(store))
            }
            Database::Postgres { url, ca_file } => {
                let store = postgres::PostgresStore::open(url, ca_file.as_deref()).await?;
                tracing::info!(url = %redact_password(url), "database open (PostgreSQL)");
                Ok(Store::Postgres(store))
            }
        }
    }

    /// Registers enterprises in one transaction: all or none. `Ok(Err(codes))` lists the
    /// ones already registered (and nothing was stored). With `commit` false nothing is
    /// stored in any case (a check only).
    pub async fn insert_enterprises(
        &self,
        enterprises: Vec<NewEnterprise>,
        now: i64,
        commit: bool,
    ) -> Result<Result<usize, Vec<String>>, StoreError> {
        dispatch!(self, s => s.insert_enterprises(enterprises, now, commit).await)
    }

    /// All enterprises, by credit code.
    pub async fn enterprises(&self) -> Result<Vec<Enterprise>, StoreError> {
        dispatch!(self, s => s.enterprises().await)
    }

    /// One enterprise.
    pub async fn enterprise(&self, credit_code: &str) -> Result<Option<Enterprise>, StoreError> {
        dispatch!(self, s => s.enterprise(credit_code.to_owned()).await)
    }

    /// Gateways, all of them or one enterprise's, by id.
    pub async fn gateways(&self, credit_code: Option<&str>) -> Result<Vec<Gateway>, StoreError> {
        dispatch!(self, s => s.gateways(credit_code.map(str::to_owned)).await)
    }

    /// One gateway and its open gaps (the first `max_gaps`).
    pub async fn gateway(
        &self,
        id: &str,
        max_gaps: u32,
    ) -> Result<Option<(Gateway, Vec<Gap>)>, StoreError> {
        dispatch!(self, s => s.gateway(id.to_owned(), max_gaps).await)
    }

    /// The latest value of each of a gateway's points.
    pub async fn latest_values(&self, gateway: &str) -> Result<Vec<LatestValue>, StoreError> {
        dispatch!(self, s => s.latest_values(gateway.to_owned()).await)
    }

    /// One point's numeric samples read in `[from, to)`, reduced to min/max/mean per bucket
    /// of `bucket_ms` (buckets without samples are absent), oldest first. When `from`, `to`
    /// and `bucket_ms` are whole minutes it reads per-minute aggregates, not the samples.
    pub async fn series(
        &self,
        point: SeriesPoint,
        from: i64,
        to: i64,
        bucket_ms: i64,
    ) -> Result<Vec<SeriesBucket>, StoreError> {
        dispatch!(self, s => s.series(point, from, to, bucket_ms).await)
    }

    /// Stores a token hash; false if the enterprise is not registered.
    pub async fn insert_token(&self, token: NewToken) -> Result<bool, StoreError> {
        dispatch!(self, s => s.insert_token(token).await)
    }

    /// Enrolls (or re-enrolls) a gateway, in one transaction.
    pub async fn enroll(&self, request: EnrollRequest) -> Result<EnrollOutcome, StoreError> {
        dispatch!(self, s => s.enroll(request).await)
    }

    /// Every gateway's MQTT username and password hash, by username, with their version.
    pub async fn credentials(&self) -> Result<Credentials, StoreError> {
        dispatch!(self, s => s.credentials().await)
    }

    /// One gateway's MQTT password hash, if it is enrolled.
    pub async fn password_hash(&self, gateway: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, s => s.password_hash(gateway.to_owned()).await)
    }

    /// Stores a group of batches in one transaction, with their monitoring figures; one
    /// outcome per batch, in order. Days are local to `utc_offset_minutes` (east of UTC).
    pub async fn ingest(
        &self,
        batches: Arc<[IncomingBatch]>,
        received_at: i64,
        utc_offset_minutes: i32,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        dispatch!(self, s => s.ingest(batches, received_at, utc_offset_minutes).await)
    }

    /// Records a gateway's retained status; false if the gateway is not enrolled.
    pub async fn update_status(
        &self,
        gateway: &str,
        status: Status,
        received_at: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.update_status(gateway.to_owned(), status, received_at).await)
    }

    /// Records a crash window of a gateway (idempotent) and takes it out of its open gaps,
    /// in one transaction; `None` if the gateway is not enrolled, else whether it is new.
    pub async fn record_crash_window(
        &self,
        gateway: &str,
        window: (u64, u64),
        now: i64,
    ) -> Result<Option<bool>, StoreError> {
        let (Ok(first), Ok(last)) = (i64::try_from(window.0), i64::try_from(window.1)) else {
            return Err(StoreError::Corrupt(format!(
                "crash window {window:?} out of range"
            )));
        };
        dispatch!(self, s => s.record_crash_window(gateway.to_owned(), first, last, now).await)
    }

    /// A gateway's crash windows, the oldest first (at most `limit`).
    pub async fn crash_windows(
        &self,
        gateway: &str,
        limit: u32,
    ) -> Result<Vec<CrashWindow>, StoreError> {
        dispatch!(self, s => s.crash_windows(gateway.to_owned(), limit).await)
    }

    /// The gateways with a gap detected at or after `since` (ms since the epoch) still
    /// open, at most `limit`: their acks go out again, since a gateway whose resends were
    /// lost too gets no ack until its next batch is stored.
    pub async fn gateways_with_recent_gaps(
        &self,
        since: i64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        dispatch!(self, s => s.gateways_with_recent_gaps(since, limit).await)
    }

    /// The acks of the gateways among `gateways` that have stored batches: what the
    /// platform holds of each one's numbering, from the database (the same on every
    /// instance).
    pub async fn acks(&self, gateways: Vec<String>) -> Result<Vec<(String, Ack)>, StoreError> {
        let (max_seqs, gaps) = dispatch!(self, s => s.ack_rows(gateways).await)?;
        let mut gaps_of: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
        for (gateway, first, last) in gaps {
            gaps_of.entry(gateway).or_default().push((first, last));
        }
        Ok(max_seqs
            .into_iter()
            .map(|(gateway, max_seq)| {
                let gaps = gaps_of.remove(&gateway).unwrap_or_default();
                let ack = ack::ack_of(max_seq, &gaps);
                (gateway, ack)
            })
            .collect())
    }

    /// Records a gateway's retained catalogue and gives its points the catalogue's roles
    /// (a point whose role changes has its stored samples processed again for monitoring,
    /// on days local to `utc_offset_minutes`); false if the gateway is not enrolled.
    pub async fn update_meta(
        &self,
        gateway: &str,
        meta: serde_json::Value,
        received_at: i64,
        utc_offset_minutes: i32,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.update_meta(gateway.to_owned(), meta, received_at, utc_offset_minutes).await)
    }

    /// The monitoring figures of the local days `from_day..=to_day`, per industry, district
    /// and day, over the enterprises that reported (at most one row read per enterprise and
    /// day).
    pub async fn monitoring(
        &self,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<MonitoringRow>, StoreError> {
        dispatch!(self, s => s.monitoring(from_day, to_day).await)
    }

    /// Deletes samples read before `samples_before`, and dedup rows received and gaps
    /// detected before `batches_before`; returns the samples deleted.
    pub async fn prune(&self, samples_before: i64, batches_before: i64) -> Result<u64, StoreError> {
        dispatch!(self, s => s.prune(samples_before, batches_before).await)
    }

    /// Marks the open gaps detected before `detected_before` and not reported yet as
    /// reported at `now`, and returns them: each gap is returned once, to whichever
    /// instance asks first (the oldest first, at most `limit`).
    pub async fn report_stale_gaps(
        &self,
        detected_before: i64,
        now: i64,
        limit: u32,
    ) -> Result<Vec<StaleGap>, StoreError> {
        dispatch!(self, s => s.report_stale_gaps(detected_before, now, limit).await)
    }

    /// The open gaps of all gateways together.
    pub async fn open_gaps(&self) -> Result<OpenGaps, StoreError> {
        dispatch!(self, s => s.open_gaps().await)
    }

    /// Every enterprise's onboarding state; active means a batch at or after `active_since`.
    pub async fn onboarding(&self, active_since: i64) -> Result<Vec<OnboardingRow>, StoreError> {
        dispatch!(self, s => s.onboarding(active_since).await)
    }

    /// When each on-cloud enterprise came on the cloud: (in_program, first_batch_at).
    pub async fn on_cloud_since(&self) -> Result<Vec<(bool, i64)>, StoreError> {
        dispatch!(self, s => s.on_cloud_since().await)
    }

    /// The days in `[from_day, to_day]` on which the enterprise `credit_code` delivered
    /// batches.
    pub async fn days_with_data(
        &self,
        credit_code: &str,
        from_day: i64,
        to_day: i64,
    ) -> Result<u64, StoreError> {
        dispatch!(self, s => s.days_with_data(credit_code.to_owned(), from_day, to_day).await)
    }

    /// The days in `[from_day, to_day]` on which enterprises delivered batches.
    pub async fn active_days(
        &self,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<ActiveDay>, StoreError> {
        dispatch!(self, s => s.active_days(from_day, to_day).await)
    }
}
