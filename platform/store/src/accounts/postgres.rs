//! The accounts' statements on PostgreSQL (the shared database's `users`, `sessions` and
//! `login_failures`).

use super::{NewApiToken, NewSession, SessionRow};
use crate::StoreError;
use crate::UserRow;
use crate::postgres::PostgresStore;
use crate::rows::{self, Columns, USER_COLUMNS};

impl PostgresStore {
    pub(crate) async fn insert_user(
        &self,
        username: String,
        hash: String,
        role: &'static str,
        scope: Option<String>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let inserted = self
            .client()
            .await?
            .execute(
                "INSERT INTO users (username, password_hash, role, scope, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username) DO NOTHING",
                &[&username, &hash, &role, &scope, &now],
            )
            .await?;
        Ok(inserted > 0)
    }

    pub(crate) async fn user(&self, username: String) -> Result<Option<UserRow>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.username = $1");
        let row = self.client().await?.query_opt(&sql, &[&username]).await?;
        row.as_ref().map(rows::user).transpose()
    }

    pub(crate) async fn insert_api_token(&self, t: NewApiToken) -> Result<bool, StoreError> {
        let inserted = self
            .client()
            .await?
            .execute(
                "INSERT INTO api_tokens (token_sha256, user_id, created_at, expires_at)
                 SELECT $1, id, $2, $3 FROM users WHERE username = $4",
                &[&t.token_sha256, &t.now, &t.expires_at, &t.username],
            )
            .await?;
        Ok(inserted > 0)
    }

    pub(crate) async fn api_token_user(
        &self,
        digest: String,
        now: i64,
    ) -> Result<Option<UserRow>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_sha256 = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)"
        );
        let row = self
            .client()
            .await?
            .query_opt(&sql, &[&digest, &now])
            .await?;
        row.as_ref().map(rows::user).transpose()
    }

    pub(crate) async fn login_state(
        &self,
        username: String,
        since: i64,
    ) -> Result<(u32, Option<String>), StoreError> {
        let client = self.client().await?;
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

    pub(crate) async fn record_login_failure(
        &self,
        username: String,
        now: i64,
        expired: i64,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
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

    pub(crate) async fn start_session(&self, s: NewSession) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("DELETE FROM sessions WHERE expires_at <= $1", &[&s.now])
            .await?;
        tx.execute(
            "DELETE FROM login_failures WHERE username = $1",
            &[&s.username],
        )
        .await?;
        tx.execute(
            "INSERT INTO sessions (token_sha256, user_id, csrf, expires_at)
             SELECT $1, id, $2, $3 FROM users WHERE username = $4",
            &[&s.token_sha256, &s.csrf, &s.expires_at, &s.username],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn session(
        &self,
        digest: String,
        now: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, s.csrf FROM sessions s
             JOIN users u ON u.id = s.user_id WHERE s.token_sha256 = $1 AND s.expires_at > $2"
        );
        let row = self
            .client()
            .await?
            .query_opt(&sql, &[&digest, &now])
            .await?;
        row.map(|r| {
            Ok(SessionRow {
                user: rows::user(&r)?,
                csrf: r.text(3)?,
            })
        })
        .transpose()
    }

    pub(crate) async fn end_session(&self, digest: String) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute("DELETE FROM sessions WHERE token_sha256 = $1", &[&digest])
            .await?;
        Ok(())
    }
}
