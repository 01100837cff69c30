//! The web UI's accounts and sessions. With SQLite they are in their own file,
//! `accounts.sqlite3`, beside the data (so the data store's single writer is untouched by
//! logins); with PostgreSQL in the shared database (tables `users`, `sessions`,
//! `login_failures` of its migrations), so a session started on one instance is valid on
//! all, and the lockout counts failures on every instance.
//!
//! - A user is a bureau user or one enterprise's user ([`Role`]); passwords are stored as
//!   Argon2id PHC strings (the crate's default parameters: 19 MiB, 2 passes).
//! - A session is a random 256-bit token in a cookie; the database holds only its SHA-256,
//!   with the user, a CSRF token for the session's forms and an absolute expiry.
//! - Failed logins are recorded per user name; after [`MAX_FAILURES`] in
//!   [`FAILURE_WINDOW_MS`] further attempts are refused without checking the password.

use crate::clock::now_ms;
use crate::credit_code::CreditCode;
use crate::secret::{RandomError, new_token, sha256_hex};
use crate::store::Store;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The accounts database's file name inside the data directory.
pub const FILE_NAME: &str = "accounts.sqlite3";
/// How long a session lasts from login.
pub const SESSION_MS: i64 = 12 * 3_600_000;
/// Failed logins of one user name that lock it for the rest of the window.
pub const MAX_FAILURES: u32 = 5;
/// The window over which failed logins are counted.
pub const FAILURE_WINDOW_MS: i64 = 15 * 60_000;
/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    credit_code   TEXT,
    created_at    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 TEXT PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf         TEXT NOT NULL,
    expires_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS login_failures (
    username TEXT NOT NULL,
    at       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_by_user ON login_failures (username, at);
";

/// Why an accounts operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The accounts database failed (disk, corruption): a server fault, HTTP 500.
    #[error("accounts database error: {0}")]
    Sqlite(rusqlite::Error),
    /// PostgreSQL failed: a server fault, HTTP 500.
    #[error("accounts database error: {}", crate::store::with_causes(.0))]
    Postgres(tokio_postgres::Error),
    /// No PostgreSQL connection: a server fault, HTTP 500.
    #[error("accounts database error: {}", crate::store::with_causes(.0))]
    Pool(deadpool_postgres::PoolError),
    /// The data directory cannot be created: fix its permissions.
    #[error("cannot open the accounts database at {path}: {error}")]
    Open {
        /// The path.
        path: PathBuf,
        /// The I/O error (in the message, so not repeated as a cause).
        error: std::io::Error,
    },
    /// No random session token or salt could be made: fix the host.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// Hashing failed (should not happen with the default parameters): a server fault.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The user name is taken: choose another (HTTP 409).
    #[error("user {0:?} exists")]
    Exists(String),
    /// The user name or password is not acceptable: the message says why (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// The blocking database task panicked: see the logs.
    #[error("the accounts database task failed")]
    TaskFailed,
}

impl From<rusqlite::Error> for AccountError {
    fn from(e: rusqlite::Error) -> Self {
        AccountError::Sqlite(e)
    }
}

impl From<tokio_postgres::Error> for AccountError {
    fn from(e: tokio_postgres::Error) -> Self {
        AccountError::Postgres(e)
    }
}

impl From<deadpool_postgres::PoolError> for AccountError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        AccountError::Pool(e)
    }
}

/// What a user may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The bureau: every enterprise, the dashboard and the bureau's API reads.
    Bureau,
    /// One enterprise (by credit code): its own pages only.
    Enterprise(String),
}

impl Role {
    /// True if this role may see the enterprise with `credit_code`.
    pub fn may_see(&self, credit_code: &str) -> bool {
        match self {
            Role::Bureau => true,
            Role::Enterprise(own) => own == credit_code,
        }
    }
}

/// A logged-in user, as a session resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// The user name.
    pub username: String,
    /// What the user may see.
    pub role: Role,
    /// The session's CSRF token, required in every form the session posts.
    pub csrf: String,
}

/// The outcome of a login attempt.
#[derive(Debug)]
pub enum Login {
    /// Logged in: set this session token as the cookie.
    Session(String),
    /// Wrong user name or password (not told apart).
    Refused,
    /// Too many failures for this user name lately: try again later.
    Locked,
}

/// The accounts store; clones share the connection or pool.
#[derive(Clone)]
pub struct Accounts {
    backend: Backend,
}

/// Where the accounts live.
#[derive(Clone)]
enum Backend {
    /// `accounts.sqlite3` in the data directory.
    Sqlite(Arc<Mutex<Connection>>),
    /// The shared PostgreSQL database.
    Postgres(deadpool_postgres::Pool),
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Accounts")
    }
}

impl Accounts {
    /// The accounts beside `store`: in PostgreSQL's database when the store is there,
    /// else in `DIR/accounts.sqlite3`.
    pub async fn for_store(store: &Store, dir: &Path) -> Result<Accounts, AccountError> {
        match store {
            Store::Postgres(pg) => Ok(Accounts {
                backend: Backend::Postgres(pg.pool().clone()),
            }),
            Store::Sqlite(_) => {
                let dir = dir.to_owned();
                tokio::task::spawn_blocking(move || Accounts::open(&dir))
                    .await
                    .map_err(|_| AccountError::TaskFailed)?
            }
        }
    }

    /// Opens (creating if needed) `DIR/accounts.sqlite3`.
    pub fn open(dir: &Path) -> Result<Accounts, AccountError> {
        let path = crate::store::sqlite::private_file(dir, FILE_NAME)
            .map_err(|(path, error)| AccountError::Open { path, error })?;
        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Accounts {
            backend: Backend::Sqlite(Arc::new(Mutex::new(conn))),
        })
    }

    /// Creates a user: a bureau user, or the user of the (validated, registered)
    /// enterprise `credit_code`.
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        credit_code: Option<&CreditCode>,
    ) -> Result<(), AccountError> {
        let username = check_new_user(username, password)?;
        let hash = hash_password(password.to_owned()).await?;
        let credit_code = credit_code.map(|c| c.as_str().to_owned());
        if !self
            .backend
            .insert_user(username.clone(), hash, credit_code, now_ms())
            .await?
        {
            return Err(AccountError::Exists(username));
        }
        Ok(())
    }

    /// Checks a user name and password; on success starts a session.
    pub async fn login(&self, username: &str, password: &str) -> Result<Login, AccountError> {
        let username = username.trim().to_owned();
        let now = now_ms();
        let (failures, hash) = self
            .backend
            .failures_and_hash(username.clone(), now - FAILURE_WINDOW_MS)
            .await?;
        if failures >= MAX_FAILURES {
            return Ok(Login::Locked);
        }
        // An unknown user costs the same hash check, so timing does not reveal names.
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| dummy_hash().to_owned());
        let password = password.to_owned();
        let verified = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .map_err(|_| AccountError::TaskFailed)?;
        if !(known && verified) {
            self.backend
                .record_failure(username, now, now - FAILURE_WINDOW_MS)
                .await?;
            return Ok(Login::Refused);
        }
        let token = new_token()?;
        let csrf = new_token()?;
        let digest = sha256_hex(&token);
        self.backend
            .start_session(digest, csrf, username, now, now + SESSION_MS)
            .await?;
        Ok(Login::Session(token))
    }

    /// The user of a live session, if the token names one.
    pub async fn session(&self, token: &str) -> Result<Option<SessionUser>, AccountError> {
        self.backend.session(sha256_hex(token), now_ms()).await
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str) -> Result<(), AccountError> {
        self.backend.end_session(sha256_hex(token)).await
    }
}

/// The role of a user with this enterprise, or none (the bureau).
fn role(credit_code: Option<String>) -> Role {
    match credit_code {
        Some(code) => Role::Enterprise(code),
        None => Role::Bureau,
    }
}

/// The statements of the accounts, one method each, on either backend.
impl Backend {
    async fn sqlite<T: Send + 'static>(
        conn: &Arc<Mutex<Connection>>,
        f: impl FnOnce(&mut Connection) -> Result<T, AccountError> + Send + 'static,
    ) -> Result<T, AccountError> {
        let conn = conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|_| AccountError::TaskFailed)?
    }

    /// Inserts a user; false if the name is taken.
    async fn insert_user(
        &self,
        username: String,
        hash: String,
        credit_code: Option<String>,
        now: i64,
    ) -> Result<bool, AccountError> {
        let inserted = match self {
            Backend::Sqlite(conn) => {
                Self::sqlite(conn, move |c| {
                    Ok(c.execute(
                        "INSERT INTO users (username, password_hash, credit_code, created_at)
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (username) DO NOTHING",
                        params![username, hash, credit_code, now],
                    )? as u64)
                })
                .await?
            }
            Backend::Postgres(pool) => {
                pool.get()
                    .await?
                    .execute(
                        "INSERT INTO users (username, password_hash, credit_code, created_at)
                         VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO NOTHING",
                        &[&username, &hash, &credit_code, &now],
                    )
                    .await?
            }
        };
        Ok(inserted > 0)
    }

    /// The user's failed logins since `since`, and the user's password hash if known.
    async fn failures_and_hash(
        &self,
        username: String,
        since: i64,
    ) -> Result<(u32, Option<String>), AccountError> {
        match self {
            Backend::Sqlite(conn) => {
                Self::sqlite(conn, move |c| {
                    let failures: u32 = c.query_row(
                        "SELECT COUNT(*) FROM login_failures WHERE username = ?1 AND at > ?2",
                        params![username, since],
                        |r| r.get(0),
                    )?;
                    let hash: Option<String> = c
                        .query_row(
                            "SELECT password_hash FROM users WHERE username = ?1",
                            [&username],
                            |r| r.get(0),
                        )
                        .optional()?;
                    Ok((failures, hash))
                })
                .await
            }
            Backend::Postgres(pool) => {
                let client = pool.get().await?;
                let failures: i64 = client
                    .query_one(
                        "SELECT COUNT(*) FROM login_failures WHERE username = $1 AND at > $2",
                        &[&username, &since],
                    )
                    .await?
                    .get(0);
                let hash = client
                    .query_opt(
                        "SELECT password_hash FROM users WHERE username = $1",
                        &[&username],
                    )
                    .await?
                    .map(|r| r.get(0));
                Ok((u32::try_from(failures).unwrap_or(u32::MAX), hash))
            }
        }
    }

    /// Records a failed login and forgets those older than `expired`.
    async fn record_failure(
        &self,
        username: String,
        now: i64,
        expired: i64,
    ) -> Result<(), AccountError> {
        match self {
            Backend::Sqlite(conn) => {
                Self::sqlite(conn, move |c| {
                    c.execute(
                        "INSERT INTO login_failures (username, at) VALUES (?1, ?2)",
                        params![username, now],
                    )?;
                    c.execute("DELETE FROM login_failures WHERE at <= ?1", [expired])?;
                    Ok(())
                })
                .await
            }
            Backend::Postgres(pool) => {
                let client = pool.get().await?;
                client
                    .execute(
                        "INSERT INTO login_failures (username, at) VALUES ($1, $2)",
                        &[&username, &now],
                    )
                    .await?;
                client
                    .execute("DELETE FROM login_failures WHERE at <= $1", &[&expired])
                    .await?;
                Ok(())
            }
        }
    }

    /// Starts a session for the user (whose failures are forgotten) and drops expired ones.
    async fn start_session(
        &self,
        digest: String,
        csrf: String,
        username: String,
        now: i64,
        expires_at: i64,
    ) -> Result<(), AccountError> {
        match self {
            Backend::Sqlite(conn) => {
                Self::sqlite(conn, move |c| {
                    let tx = c.transaction()?;
                    tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
                    tx.execute(
                        "DELETE FROM login_failures WHERE username = ?1",
                        [&username],
                    )?;
                    tx.execute(
                        "INSERT INTO sessions (token_sha256, user_id, csrf, expires_at)
                         SELECT ?1, id, ?2, ?3 FROM users WHERE username = ?4",
                        params![digest, csrf, expires_at, username],
                    )?;
                    tx.commit()?;
                    Ok(())
                })
                .await
            }
            Backend::Postgres(pool) => {
                let mut client = pool.get().await?;
                let tx = client.transaction().await?;
                tx.execute("DELETE FROM sessions WHERE expires_at <= $1", &[&now])
                    .await?;
                tx.execute(
                    "DELETE FROM login_failures WHERE username = $1",
                    &[&username],
                )
                .await?;
                tx.execute(
                    "INSERT INTO sessions (token_sha256, user_id, csrf, expires_at)
                     SELECT $1, id, $2, $3 FROM users WHERE username = $4",
                    &[&digest, &csrf, &expires_at, &username],
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// The user of the live session with this token digest.
    async fn session(&self, digest: String, now: i64) -> Result<Option<SessionUser>, AccountError> {
        match self {
            Backend::Sqlite(conn) => {
                Self::sqlite(conn, move |c| {
                    Ok(c.query_row(
                        "SELECT u.username, u.credit_code, s.csrf FROM sessions s
                         JOIN users u ON u.id = s.user_id WHERE s.token_sha256 = ?1 AND s.expires_at > ?2",
                        params![digest, now],
                        |r| {
                        Ok(SessionUser {
                            username: r.get(0)?,
                            role: role(r.get(1)?),
                            csrf: r.get(2)?,
                        })
                    })
                    .optional()?)
                })
                .await
            }
            Backend::Postgres(pool) => Ok(pool
                .get()
                .await?
                .query_opt(
                    "SELECT u.username, u.credit_code, s.csrf FROM sessions s
                     JOIN users u ON u.id = s.user_id WHERE s.token_sha256 = $1 AND s.expires_at > $2",
                    &[&digest, &now],
                )
                .await?
                .map(|r| SessionUser {
                    username: r.get(0),
                    role: role(r.get(1)),
                    csrf: r.get(2),
                })),
        }
    }

    /// Deletes the session with this token digest.
    async fn end_session(&self, digest: String) -> Result<(), AccountError> {
        match self {
            Backend::Sqlite(conn) => {
                Self::sqlite(conn, move |c| {
                    c.execute("DELETE FROM sessions WHERE token_sha256 = ?1", [digest])?;
                    Ok(())
                })
                .await
            }
            Backend::Postgres(pool) => {
                pool.get()
                    .await?
                    .execute("DELETE FROM sessions WHERE token_sha256 = $1", &[&digest])
                    .await?;
                Ok(())
            }
        }
    }
}

/// Validates a new user's name and password, giving the name as stored (trimmed).
pub fn check_new_user(username: &str, password: &str) -> Result<String, AccountError> {
    let username = check_username(username)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(username)
}

/// A user name: 3 to 64 letters, digits, `.`, `_`, `-` or `@`.
fn check_username(username: &str) -> Result<String, AccountError> {
    let name = username.trim();
    let ok = (3..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(AccountError::Invalid(
            "the user name must be 3 to 64 letters, digits, '.', '_', '-' or '@'".to_owned(),
        ))
    }
}

async fn hash_password(password: String) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hash(e.to_string()))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AccountError::Hash(e.to_string()))
    })
    .await
    .map_err(|_| AccountError::TaskFailed)?
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A fixed Argon2id hash that no password given at login matches in practice.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        SaltString::encode_b64(b"fieldlink-dummy!")
            .ok()
            .and_then(|salt| {
                Argon2::default()
                    .hash_password(b"not a password anyone has", &salt)
                    .ok()
                    .map(|h| h.to_string())
            })
            .unwrap_or_default()
    })
}
