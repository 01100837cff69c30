//! The accounts as stored: users (with their password hash, role and scope), sessions (by
//! the SHA-256 of their token), bearer API tokens acting as a user (likewise) and failed
//! logins. With SQLite they live in their own file, `accounts.sqlite3`, beside the data (so
//! logins never wait on the data's single writer); with PostgreSQL in the shared database
//! (tables `users`, `sessions`, `login_failures`), so a session started on one instance is
//! valid on all and the lockout counts the failures of every instance. Hashing, lockout and
//! session lifetimes are decided above, in the platform's `accounts`.

mod postgres;
mod sqlite;

use crate::{Store, StoreError, UserRow, dispatch};
use fieldlink_platform_core::role::Role;

/// A user as a live session names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The user.
    pub user: UserRow,
    /// The session's CSRF token.
    pub csrf: String,
}

/// A bearer API token to keep for a user.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    /// SHA-256 of the token (hex).
    pub token_sha256: String,
    /// The user it acts as, by name.
    pub username: String,
    /// When it was made.
    pub now: i64,
    /// When it stops working, if it does.
    pub expires_at: Option<i64>,
}

/// A session to start.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// SHA-256 of the session's token (hex).
    pub token_sha256: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// The user, by name.
    pub username: String,
    /// Now: sessions that expired before it are dropped.
    pub now: i64,
    /// When the session ends.
    pub expires_at: i64,
}

impl Store {
    /// Stores a user; false if the name is taken.
    pub async fn insert_user(
        &self,
        username: &str,
        password_hash: &str,
        role: &Role,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (username, hash) = (username.to_owned(), password_hash.to_owned());
        let (kind, scope) = (role.kind(), role.scope().map(str::to_owned));
        dispatch!(self, s => s.insert_user(username, hash, kind, scope, now).await)
    }

    /// The user with this name.
    pub async fn user(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        dispatch!(self, s => s.user(username.to_owned()).await)
    }

    /// Keeps an API token; false if its user does not exist.
    pub async fn insert_api_token(&self, token: NewApiToken) -> Result<bool, StoreError> {
        dispatch!(self, s => s.insert_api_token(token).await)
    }

    /// The user a live API token with this digest acts as.
    pub async fn api_token_user(
        &self,
        token_sha256: &str,
        now: i64,
    ) -> Result<Option<UserRow>, StoreError> {
        dispatch!(self, s => s.api_token_user(token_sha256.to_owned(), now).await)
    }

    /// The user's failed logins since `since`, and the user's password hash if known.
    pub async fn login_state(
        &self,
        username: &str,
        since: i64,
    ) -> Result<(u32, Option<String>), StoreError> {
        dispatch!(self, s => s.login_state(username.to_owned(), since).await)
    }

    /// Records a failed login at `now` and forgets those before `expired`.
    pub async fn record_login_failure(
        &self,
        username: &str,
        now: i64,
        expired: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.record_login_failure(username.to_owned(), now, expired).await)
    }

    /// Starts a session (the user's failed logins are forgotten, expired sessions dropped).
    pub async fn start_session(&self, session: NewSession) -> Result<(), StoreError> {
        dispatch!(self, s => s.start_session(session).await)
    }

    /// The user of the live session with this token digest.
    pub async fn session(
        &self,
        token_sha256: &str,
        now: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        dispatch!(self, s => s.session(token_sha256.to_owned(), now).await)
    }

    /// Ends the session with this token digest.
    pub async fn end_session(&self, token_sha256: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.end_session(token_sha256.to_owned()).await)
    }
}
