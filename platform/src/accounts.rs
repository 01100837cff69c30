//! The accounts, sessions and API tokens: the rules, over the store (which keeps them, with
//! SQLite in their own file `accounts.sqlite3`, with PostgreSQL in the shared database, so
//! a session started on one instance is valid on all and the lockout counts failures on
//! every instance).
//!
//! - A user has one [`Role`] with its scope (bureau, a district, an integrator, an
//!   enterprise); passwords are stored as Argon2id PHC strings (the crate's default
//!   parameters: 19 MiB, 2 passes).
//! - A session is a random 256-bit token in a cookie; the database holds only its SHA-256,
//!   with the user, a CSRF token for the session's forms and an absolute expiry.
//! - An API token is a random 256-bit bearer token acting with its user's role and scope;
//!   the database holds only its SHA-256, with an optional expiry.
//! - Failed logins are recorded per user name; after [`MAX_FAILURES`] in
//!   [`FAILURE_WINDOW_MS`] further attempts are refused without checking the password.

use crate::clock::now_ms;
use crate::secret::{RandomError, new_token, sha256_hex};
use crate::store::{NewApiToken, NewSession, Store, StoreError, UserRow};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::sync::OnceLock;

/// The accounts database's file name inside the data directory (SQLite).
pub use crate::store::sqlite::ACCOUNTS_FILE_NAME as FILE_NAME;
/// How long a session lasts from login.
pub const SESSION_MS: i64 = 12 * 3_600_000;
/// Failed logins of one user name that lock it for the rest of the window.
pub const MAX_FAILURES: u32 = 5;
/// The window over which failed logins are counted.
pub const FAILURE_WINDOW_MS: i64 = 15 * 60_000;
/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Why an accounts operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The accounts' database failed: a server fault, HTTP 500.
    #[error("accounts database error: {0}")]
    Store(#[from] StoreError),
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

pub use crate::role::Role;

/// The longest an API token may be made to last.
pub const MAX_TOKEN_DAYS: u32 = 3660;

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

/// A new API token: shown once, kept only as its digest.
#[derive(Debug, Clone)]
pub struct IssuedApiToken {
    /// The bearer token.
    pub token: String,
    /// When it stops working (ms since the epoch), if it does.
    pub expires_at: Option<i64>,
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

/// The accounts; clones share the store.
#[derive(Clone, Debug)]
pub struct Accounts {
    store: Store,
}

impl Accounts {
    /// The accounts kept in `store`.
    pub fn new(store: Store) -> Accounts {
        Accounts { store }
    }

    /// Creates a user with `role`, whose scope the caller has checked exists.
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        role: &Role,
    ) -> Result<(), AccountError> {
        let username = check_new_user(username, password)?;
        let hash = hash_password(password.to_owned()).await?;
        if !self
            .store
            .insert_user(&username, &hash, role, now_ms())
            .await?
        {
            return Err(AccountError::Exists(username));
        }
        Ok(())
    }

    /// The user with this name.
    pub async fn user(&self, username: &str) -> Result<Option<UserRow>, AccountError> {
        Ok(self.store.user(username.trim()).await?)
    }

    /// Makes a bearer API token acting as `username`, lasting `days` (forever without);
    /// `None` if there is no such user.
    pub async fn create_token(
        &self,
        username: &str,
        days: Option<u32>,
    ) -> Result<Option<IssuedApiToken>, AccountError> {
        if days.is_some_and(|d| d == 0 || d > MAX_TOKEN_DAYS) {
            return Err(AccountError::Invalid(format!(
                "expires_in_days must be 1 to {MAX_TOKEN_DAYS}"
            )));
        }
        let token = new_token()?;
        let now = now_ms();
        let expires_at = days.map(|d| now + i64::from(d) * 86_400_000);
        let kept = self
            .store
            .insert_api_token(NewApiToken {
                token_sha256: sha256_hex(&token),
                username: username.trim().to_owned(),
                now,
                expires_at,
            })
            .await?;
        Ok(kept.then_some(IssuedApiToken { token, expires_at }))
    }

    /// The user a live API token acts as.
    pub async fn token_user(&self, token: &str) -> Result<Option<UserRow>, AccountError> {
        Ok(self
            .store
            .api_token_user(&sha256_hex(token), now_ms())
            .await?)
    }

    /// Checks a user name and password; on success starts a session.
    pub async fn login(&self, username: &str, password: &str) -> Result<Login, AccountError> {
        let username = username.trim().to_owned();
        let now = now_ms();
        let (failures, hash) = self
            .store
            .login_state(&username, now - FAILURE_WINDOW_MS)
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
            self.store
                .record_login_failure(&username, now, now - FAILURE_WINDOW_MS)
                .await?;
            return Ok(Login::Refused);
        }
        let token = new_token()?;
        let csrf = new_token()?;
        self.store
            .start_session(NewSession {
                token_sha256: sha256_hex(&token),
                csrf,
                username,
                now,
                expires_at: now + SESSION_MS,
            })
            .await?;
        Ok(Login::Session(token))
    }

    /// The user of a live session, if the token names one.
    pub async fn session(&self, token: &str) -> Result<Option<SessionUser>, AccountError> {
        Ok(self
            .store
            .session(&sha256_hex(token), now_ms())
            .await?
            .map(|row| SessionUser {
                username: row.user.username,
                role: row.user.role,
                csrf: row.csrf,
            }))
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str) -> Result<(), AccountError> {
        Ok(self.store.end_session(&sha256_hex(token)).await?)
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
