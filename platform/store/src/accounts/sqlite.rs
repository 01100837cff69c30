//! The accounts' statements on SQLite (`accounts.sqlite3`).

use super::{NewApiToken, NewSession, SessionRow};
use crate::StoreError;
use crate::UserRow;
use crate::rows::{self, USER_COLUMNS};
use crate::sqlite::SqliteStore;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

impl SqliteStore {
    pub(crate) async fn insert_user(
        &self,
        username: String,
        hash: String,
        role: &'static str,
        scope: Option<String>,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.accounts(move |c| {
            Ok(c.execute(
                "INSERT INTO users (username, password_hash, role, scope, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (username) DO NOTHING",
                params![username, hash, role, scope, now],
            )? > 0)
        })
        .await
    }

    pub(crate) async fn user(&self, username: String) -> Result<Option<UserRow>, StoreError> {
        self.accounts(move |c| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.username = ?1");
            c.query_row(&sql, [username], |r| Ok(rows::user(r)))
                .optional()?
                .transpose()
        })
        .await
    }

    pub(crate) async fn insert_api_token(&self, t: NewApiToken) -> Result<bool, StoreError> {
        self.accounts(move |c| {
            Ok(c.execute(
                "INSERT INTO api_tokens (token_sha256, user_id, created_at, expires_at)
                 SELECT ?1, id, ?2, ?3 FROM users WHERE username = ?4",
                params![t.token_sha256, t.now, t.expires_at, t.username],
            )? > 0)
        })
        .await
    }

    pub(crate) async fn api_token_user(
        &self,
        digest: String,
        now: i64,
    ) -> Result<Option<UserRow>, StoreError> {
        self.accounts(move |c| {
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.token_sha256 = ?1 AND (t.expires_at IS NULL OR t.expires_at > ?2)"
            );
            c.query_row(&sql, params![digest, now], |r| Ok(rows::user(r)))
                .optional()?
                .transpose()
        })
        .await
    }

    pub(crate) async fn login_state(
        &self,
        username: String,
        since: i64,
    ) -> Result<(u32, Option<String>), StoreError> {
        self.accounts(move |c| {
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

    pub(crate) async fn record_login_failure(
        &self,
        username: String,
        now: i64,
        expired: i64,
    ) -> Result<(), StoreError> {
        self.accounts(move |c| {
            c.execute(
                "INSERT INTO login_failures (username, at) VALUES (?1, ?2)",
                params![username, now],
            )?;
            c.execute("DELETE FROM login_failures WHERE at <= ?1", [expired])?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn start_session(&self, s: NewSession) -> Result<(), StoreError> {
        self.accounts(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", [s.now])?;
            tx.execute(
                "DELETE FROM login_failures WHERE username = ?1",
                [&s.username],
            )?;
            tx.execute(
                "INSERT INTO sessions (token_sha256, user_id, csrf, expires_at)
                 SELECT ?1, id, ?2, ?3 FROM users WHERE username = ?4",
                params![s.token_sha256, s.csrf, s.expires_at, s.username],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn session(
        &self,
        digest: String,
        now: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        self.accounts(move |c| {
            let sql = format!(
                "SELECT {USER_COLUMNS}, s.csrf FROM sessions s
                 JOIN users u ON u.id = s.user_id WHERE s.token_sha256 = ?1 AND s.expires_at > ?2"
            );
            c.query_row(&sql, params![digest, now], |r| {
                Ok(rows::user(r).and_then(|user| {
                    Ok(SessionRow {
                        user,
                        csrf: r.get(3)?,
                    })
                }))
            })
            .optional()?
            .transpose()
        })
        .await
    }

    pub(crate) async fn end_session(&self, digest: String) -> Result<(), StoreError> {
        self.accounts(move |c| {
            c.execute("DELETE FROM sessions WHERE token_sha256 = ?1", [digest])?;
            Ok(())
        })
        .await
    }
}
