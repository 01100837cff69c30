//! The accounts' statements on PostgreSQL (the shared database's `users`, `sessions` and
//! `login_failures`).

use super::{NewSession, SessionRow};
use crate::StoreError;
use crate::postgres::PostgresStore;

impl PostgresStore {
    pub(crate) async fn insert_user(
        &self,
        username: String,
        hash: String,
        credit_code: Option<String>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let inserted = self
            .client()
            .await?
            .execute(
                "INSERT INTO users (username, password_hash, credit_code, created_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO NOTHING",
                &[&username, &hash, &credit_code, &now],
            )
            .await?;
        Ok(inserted > 0)
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
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT u.username, u.credit_code, s.csrf FROM sessions s
                 JOIN users u ON u.id = s.user_id WHERE s.token_sha256 = $1 AND s.expires_at > $2",
                &[&digest, &now],
            )
            .await?
            .map(|r| SessionRow {
                username: r.get(0),
                credit_code: r.get(1),
                csrf: r.get(2),
            }))
    }

    pub(crate) async fn end_session(&self, digest: String) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute("DELETE FROM sessions WHERE token_sha256 = $1", &[&digest])
            .await?;
        Ok(())
    }
}
