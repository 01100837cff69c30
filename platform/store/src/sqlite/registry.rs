//! Enterprises, tokens, gateways and enrollment on SQLite: the statements (the enroll
//! decisions are [`crate::enroll`]'s).

use super::profile::insert_assessment;
use super::{SqliteStore, all, first, write_tx};
use crate::enroll::{self, EnrollTx, TokenRow};
use crate::ready::run_ready;
use crate::rows::{self, ENTERPRISE_COLUMNS, GATEWAY_COLUMNS};
use crate::{
    Credentials, EnrollOutcome, EnrollRequest, Enterprise, Gap, Gateway, NewEnterprise, NewToken,
    StoreError,
};
use fieldlink_platform_core::profile::{Size, Specialised};
use rusqlite::{OptionalExtension, Transaction, params};

impl SqliteStore {
    pub(crate) async fn insert_enterprises(
        &self,
        enterprises: Vec<NewEnterprise>,
        now: i64,
        commit: bool,
    ) -> Result<Result<usize, Vec<String>>, StoreError> {
        self.write(move |w| {
            let tx = write_tx(&mut w.conn)?;
            let mut existing = Vec::new();
            {
                let mut exists =
                    tx.prepare_cached("SELECT 1 FROM enterprises WHERE credit_code = ?1")?;
                for e in &enterprises {
                    if exists.exists([e.credit_code.as_str()])? {
                        existing.push(e.credit_code.to_string());
                    }
                }
            }
            if !existing.is_empty() {
                return Ok(Err(existing));
            }
            if !commit {
                return Ok(Ok(enterprises.len()));
            }
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO enterprises (credit_code, name, industry, district, in_program, registered_at,
                     size, specialised)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for e in &enterprises {
                    insert.execute(params![
                        e.credit_code.as_str(),
                        e.name,
                        e.industry.code(),
                        e.district.name(),
                        e.in_program,
                        now,
                        e.size.map(Size::code),
                        e.specialised.map(Specialised::code),
                    ])?;
                }
                for e in &enterprises {
                    if let Some(assessment) = &e.maturity {
                        insert_assessment(&tx, e.credit_code.as_str(), assessment, now)?;
                    }
                }
            }
            tx.commit()?;
            Ok(Ok(enterprises.len()))
        })
        .await
    }

    pub(crate) async fn enterprises(&self) -> Result<Vec<Enterprise>, StoreError> {
        self.read(|c| {
            let sql = format!("SELECT {ENTERPRISE_COLUMNS} FROM enterprises ORDER BY credit_code");
            all(&mut c.prepare_cached(&sql)?, [], |r| rows::enterprise(r))
        })
        .await
    }

    pub(crate) async fn enterprise(
        &self,
        credit_code: String,
    ) -> Result<Option<Enterprise>, StoreError> {
        self.read(move |c| {
            let sql =
                format!("SELECT {ENTERPRISE_COLUMNS} FROM enterprises WHERE credit_code = ?1");
            first(&mut c.prepare_cached(&sql)?, [credit_code], |r| {
                rows::enterprise(r)
            })
        })
        .await
    }

    pub(crate) async fn gateways(
        &self,
        credit_code: Option<String>,
    ) -> Result<Vec<Gateway>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {GATEWAY_COLUMNS} FROM gateways g WHERE ?1 IS NULL OR g.credit_code = ?1 ORDER BY g.id"
            );
            all(&mut c.prepare_cached(&sql)?, [credit_code], |r| rows::gateway(r))
        })
        .await
    }

    pub(crate) async fn gateway(
        &self,
        id: String,
        max_gaps: u32,
    ) -> Result<Option<(Gateway, Vec<Gap>)>, StoreError> {
        self.read(move |c| {
            let sql = format!("SELECT {GATEWAY_COLUMNS} FROM gateways g WHERE g.id = ?1");
            let Some(gateway) = first(&mut c.prepare_cached(&sql)?, [&id], |r| rows::gateway(r))? else {
                return Ok(None);
            };
            let mut stmt = c.prepare_cached(
                "SELECT first_seq, last_seq FROM gaps WHERE gateway = ?1 ORDER BY first_seq LIMIT ?2",
            )?;
            let gaps = all(&mut stmt, params![id, max_gaps], |r| rows::gap(r))?;
            Ok(Some((gateway, gaps)))
        })
        .await
    }

    pub(crate) async fn insert_token(&self, token: NewToken) -> Result<bool, StoreError> {
        self.write(move |w| {
            let tx = write_tx(&mut w.conn)?;
            let known = tx
                .prepare_cached("SELECT 1 FROM enterprises WHERE credit_code = ?1")?
                .exists([&token.credit_code])?;
            if !known {
                return Ok(false);
            }
            tx.prepare_cached(
                "INSERT INTO enrollment_tokens (credit_code, token_sha256, created_at, expires_at, max_gateways)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                token.credit_code,
                token.token_sha256,
                token.created_at,
                token.expires_at,
                token.max_gateways
            ])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    pub(crate) async fn enroll(&self, req: EnrollRequest) -> Result<EnrollOutcome, StoreError> {
        self.write(move |w| {
            let tx = write_tx(&mut w.conn)?;
            let outcome = run_ready(enroll::enroll(&mut SqliteEnroll(&tx), &req))?;
            if matches!(outcome, EnrollOutcome::Enrolled { .. }) {
                tx.commit()?;
            }
            Ok(outcome)
        })
        .await
    }

    pub(crate) async fn credentials(&self) -> Result<Credentials, StoreError> {
        self.read(|c| {
            // One statement: the version and the gateways from one snapshot.
            let mut stmt = c.prepare_cached(
                "SELECT v.version, g.id, g.password_hash
                 FROM credentials_version v LEFT JOIN gateways g ON 1 = 1 ORDER BY g.id",
            )?;
            let mut version = 0;
            let mut users = Vec::new();
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                version = row.get::<_, i64>(0)?;
                if let Some(id) = row.get::<_, Option<String>>(1)? {
                    users.push((id, row.get(2)?));
                }
            }
            Ok(Credentials {
                version: u64::try_from(version)
                    .map_err(|_| StoreError::Corrupt(format!("credentials version {version}")))?,
                users,
            })
        })
        .await
    }

    pub(crate) async fn password_hash(
        &self,
        gateway: String,
    ) -> Result<Option<String>, StoreError> {
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT password_hash FROM gateways WHERE id = ?1")?
                    .query_row([gateway], |r| r.get(0))
                    .optional()?,
            )
        })
        .await
    }
}

/// Enrollment's statements on SQLite (the decisions are [`enroll::enroll`]'s).
struct SqliteEnroll<'t>(&'t Transaction<'t>);

impl EnrollTx for SqliteEnroll<'_> {
    async fn token(&mut self, token_sha256: &str) -> Result<Option<TokenRow>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT t.id, t.credit_code, t.expires_at, t.max_gateways, e.name
                 FROM enrollment_tokens t JOIN enterprises e ON e.credit_code = t.credit_code
                 WHERE t.token_sha256 = ?1",
            )?
            .query_row([token_sha256], |r| {
                Ok(TokenRow {
                    id: r.get(0)?,
                    credit_code: r.get(1)?,
                    expires_at: r.get(2)?,
                    max_gateways: r.get(3)?,
                    enterprise_name: r.get(4)?,
                })
            })
            .optional()?)
    }

    async fn gateway_owner(&mut self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT credit_code FROM gateways WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    async fn gateways_of_token(&mut self, token_id: i64) -> Result<u64, StoreError> {
        let used: i64 = self
            .0
            .prepare_cached("SELECT COUNT(*) FROM gateways WHERE token_id = ?1")?
            .query_row([token_id], |r| r.get(0))?;
        Ok(used.unsigned_abs())
    }

    async fn rotate(&mut self, id: &str, req: &EnrollRequest) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE gateways SET password_hash = ?2, hostname = COALESCE(?3, hostname),
                 agent_version = COALESCE(?4, agent_version), credentials_issued_at = ?5
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                req.password_hash,
                req.hostname,
                req.agent_version,
                req.now
            ])?;
        Ok(())
    }

    async fn insert_gateway(
        &mut self,
        id: &str,
        token: &TokenRow,
        req: &EnrollRequest,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO gateways (id, credit_code, name, token_id, password_hash, hostname,
                 agent_version, enrolled_at, credentials_issued_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
            )?
            .execute(params![
                id,
                token.credit_code,
                req.gateway_name,
                token.id,
                req.password_hash,
                req.hostname,
                req.agent_version,
                req.now
            ])?;
        Ok(())
    }

    async fn credentials_changed(&mut self) -> Result<(), StoreError> {
        self.0
            .prepare_cached("UPDATE credentials_version SET version = version + 1")?
            .execute([])?;
        Ok(())
    }
}
