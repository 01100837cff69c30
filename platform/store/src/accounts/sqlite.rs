//! The accounts' statements on SQLite (`accounts.sqlite3`).

use super::{NewSession, SessionRow};
use crate::StoreError;
use crate::sqlite::SqliteStore;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

impl SqliteStore {
    pub(crate) async fn insert_user(
        &self,
        username: String,
        hash: String,
        credit_code: Option<String>,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.accounts(move |c| {
            Ok(c.execute(
                "INSERT INTO users (username, password_hash, credit_code, created_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (username) DO NOTHING",
                params![username, hash, credit_code, now],
            )? > 0)
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
            Ok(c.query_row(
                "SELECT u.username, u.credit_code, s.csrf FROM sessions s
                 JOIN users u ON u.id = s.user_id WHERE s.token_sha256 = ?1 AND s.expires_at > ?2",
                params![digest, now],
                |r| {
                    Ok(SessionRow {
                        username: r.get(0)?,
                        credit_code: r.get(1)?,
                        csrf: r.get(2)?,
                    })
                },
            )
            .optional()?)
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
