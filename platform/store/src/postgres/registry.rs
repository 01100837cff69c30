//! Enterprises, tokens, gateways and enrollment on PostgreSQL: the statements (the enroll
//! decisions are [`crate::enroll`]'s).

use super::PostgresStore;
use crate::enroll::{self, EnrollTx, TokenRow};
use crate::rows::{self, ENTERPRISE_COLUMNS, GATEWAY_COLUMNS};
use crate::{
    Credentials, EnrollOutcome, EnrollRequest, Enterprise, Gap, Gateway, NewAssessment,
    NewEnterprise, NewToken, StoreError,
};
use fieldlink_platform_core::profile::{Size, Specialised};

impl PostgresStore {
    pub(crate) async fn insert_enterprises(
        &self,
        enterprises: Vec<NewEnterprise>,
        now: i64,
        commit: bool,
    ) -> Result<Result<usize, Vec<String>>, StoreError> {
        let codes: Vec<&str> = enterprises.iter().map(|e| e.credit_code.as_str()).collect();
        let names: Vec<&str> = enterprises.iter().map(|e| e.name.as_str()).collect();
        let industries: Vec<&str> = enterprises.iter().map(|e| e.industry.code()).collect();
        let districts: Vec<&str> = enterprises.iter().map(|e| e.district.name()).collect();
        let in_program: Vec<bool> = enterprises.iter().map(|e| e.in_program).collect();
        let sizes: Vec<Option<&str>> = enterprises.iter().map(|e| e.size.map(Size::code)).collect();
        let specialised: Vec<Option<&str>> = enterprises
            .iter()
            .map(|e| e.specialised.map(Specialised::code))
            .collect();
        let assessed: Vec<(&str, &NewAssessment)> = enterprises
            .iter()
            .filter_map(|e| Some((e.credit_code.as_str(), e.maturity.as_ref()?)))
            .collect();
        let assessed_codes: Vec<&str> = assessed.iter().map(|(c, _)| *c).collect();
        let levels: Vec<i16> = assessed
            .iter()
            .map(|(_, a)| i16::from(a.level.get()))
            .collect();
        let assessed_at: Vec<i64> = assessed.iter().map(|(_, a)| a.assessed_at).collect();
        let assessors: Vec<&str> = assessed.iter().map(|(_, a)| a.assessor.as_str()).collect();
        let enterprise_columns = (&codes, &names, &industries, &districts, &in_program);
        let classes = (&sizes, &specialised);
        let assessments = (&assessed_codes, &levels, &assessed_at, &assessors);
        self.retrying("insert enterprises", |mut client| async move {
            let (codes, names, industries, districts, in_program) = enterprise_columns;
            let (sizes, specialised) = classes;
            let (assessed_codes, levels, assessed_at, assessors) = assessments;
            let tx = client.transaction().await?;
            let existing: Vec<String> = tx
                .query(
                    "SELECT credit_code FROM enterprises WHERE credit_code = ANY($1) ORDER BY credit_code",
                    &[codes],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !existing.is_empty() {
                return Ok(Err(existing));
            }
            if !commit {
                return Ok(Ok(codes.len()));
            }
            tx.execute(
                "INSERT INTO enterprises (credit_code, name, industry, district, in_program, registered_at,
                 size, specialised)
                 SELECT c, n, i, d, p, $6, s, sp
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $7::text[], $8::text[])
                 AS u(c, n, i, d, p, s, sp)",
                &[codes, names, industries, districts, in_program, &now, sizes, specialised],
            )
            .await?;
            // A new enterprise's one assessment is its current maturity.
            tx.execute(
                "INSERT INTO maturity_assessments (credit_code, level, assessed_at, assessor, recorded_at)
                 SELECT c, l, a, r, $5 FROM unnest($1::text[], $2::int2[], $3::int8[], $4::text[])
                 AS u(c, l, a, r)",
                &[assessed_codes, levels, assessed_at, assessors, &now],
            )
            .await?;
            tx.execute(
                "UPDATE enterprises e SET maturity_level = u.l, maturity_assessed_at = u.a
                 FROM unnest($1::text[], $2::int2[], $3::int8[]) AS u(c, l, a)
                 WHERE e.credit_code = u.c",
                &[assessed_codes, levels, assessed_at],
            )
            .await?;
            tx.commit().await?;
            Ok(Ok(codes.len()))
        })
        .await
    }

    pub(crate) async fn enterprises(&self) -> Result<Vec<Enterprise>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {ENTERPRISE_COLUMNS} FROM enterprises ORDER BY credit_code");
        let rows = client
            .query(&client.prepare_cached(&sql).await?, &[])
            .await?;
        rows.iter().map(rows::enterprise).collect()
    }

    pub(crate) async fn enterprise(
        &self,
        credit_code: String,
    ) -> Result<Option<Enterprise>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {ENTERPRISE_COLUMNS} FROM enterprises WHERE credit_code = $1");
        let row = client
            .query_opt(&client.prepare_cached(&sql).await?, &[&credit_code])
            .await?;
        row.as_ref().map(rows::enterprise).transpose()
    }

    pub(crate) async fn gateways(
        &self,
        credit_code: Option<String>,
    ) -> Result<Vec<Gateway>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {GATEWAY_COLUMNS} FROM gateways g WHERE $1::text IS NULL OR g.credit_code = $1 ORDER BY g.id"
        );
        let rows = client
            .query(&client.prepare_cached(&sql).await?, &[&credit_code])
            .await?;
        rows.iter().map(rows::gateway).collect()
    }

    pub(crate) async fn gateway(
        &self,
        id: String,
        max_gaps: u32,
    ) -> Result<Option<(Gateway, Vec<Gap>)>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {GATEWAY_COLUMNS} FROM gateways g WHERE g.id = $1");
        let Some(row) = client
            .query_opt(&client.prepare_cached(&sql).await?, &[&id])
            .await?
        else {
            return Ok(None);
        };
        let gateway = rows::gateway(&row)?;
        let gaps = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT first_seq, last_seq FROM gaps WHERE gateway = $1 ORDER BY first_seq LIMIT $2",
                    )
                    .await?,
                &[&id, &i64::from(max_gaps)],
            )
            .await?
            .iter()
            .map(rows::gap)
            .collect::<Result<_, _>>()?;
        Ok(Some((gateway, gaps)))
    }

    pub(crate) async fn insert_token(&self, token: NewToken) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let max_gateways = i32::try_from(token.max_gateways).unwrap_or(i32::MAX);
        let inserted = client
            .execute(
                "INSERT INTO enrollment_tokens (credit_code, token_sha256, created_at, expires_at, max_gateways)
                 SELECT credit_code, $2, $3, $4, $5 FROM enterprises WHERE credit_code = $1",
                &[
                    &token.credit_code,
                    &token.token_sha256,
                    &token.created_at,
                    &token.expires_at,
                    &max_gateways,
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    pub(crate) async fn enroll(&self, req: EnrollRequest) -> Result<EnrollOutcome, StoreError> {
        let req = &req;
        self.retrying("enroll", |mut client| async move {
            let tx = client.transaction().await?;
            let outcome = enroll::enroll(&mut PostgresEnroll(&tx), req).await?;
            if matches!(outcome, EnrollOutcome::Enrolled { .. }) {
                tx.commit().await?;
            }
            Ok(outcome)
        })
        .await
    }

    pub(crate) async fn credentials(&self) -> Result<Credentials, StoreError> {
        let client = self.client().await?;
        // One statement: the version and the gateways from one snapshot.
        let rows = client
            .query(
                "SELECT v.version, g.id, g.password_hash
                 FROM credentials_version v LEFT JOIN gateways g ON true ORDER BY g.id",
                &[],
            )
            .await?;
        let version: i64 = rows.first().map_or(0, |r| r.get(0));
        Ok(Credentials {
            version: u64::try_from(version)
                .map_err(|_| StoreError::Corrupt(format!("credentials version {version}")))?,
            users: rows
                .iter()
                .filter_map(|r| Some((r.get::<_, Option<String>>(1)?, r.get(2))))
                .collect(),
        })
    }

    pub(crate) async fn password_hash(
        &self,
        gateway: String,
    ) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT password_hash FROM gateways WHERE id = $1")
            .await?;
        Ok(client
            .query_opt(&stmt, &[&gateway])
            .await?
            .map(|r| r.get(0)))
    }
}

/// Enrollment's statements on PostgreSQL (the decisions are [`enroll::enroll`]'s). The
/// token's row lock makes enrollments on one token take turns, so its `max_gateways`
/// holds across instances.
struct PostgresEnroll<'t, 'c>(&'t deadpool_postgres::Transaction<'c>);

impl EnrollTx for PostgresEnroll<'_, '_> {
    async fn token(&mut self, token_sha256: &str) -> Result<Option<TokenRow>, StoreError> {
        let row = self
            .0
            .query_opt(
                "SELECT t.id, t.credit_code, t.expires_at, t.max_gateways, e.name
                 FROM enrollment_tokens t JOIN enterprises e ON e.credit_code = t.credit_code
                 WHERE t.token_sha256 = $1 FOR UPDATE OF t",
                &[&token_sha256],
            )
            .await?;
        Ok(row.map(|r| TokenRow {
            id: r.get(0),
            credit_code: r.get(1),
            expires_at: r.get(2),
            max_gateways: u32::try_from(r.get::<_, i32>(3)).unwrap_or(0),
            enterprise_name: r.get(4),
        }))
    }

    async fn gateway_owner(&mut self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .query_opt(
                "SELECT credit_code FROM gateways WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await?
            .map(|r| r.get(0)))
    }

    async fn gateways_of_token(&mut self, token_id: i64) -> Result<u64, StoreError> {
        let used: i64 = self
            .0
            .query_one(
                "SELECT COUNT(*) FROM gateways WHERE token_id = $1",
                &[&token_id],
            )
            .await?
            .get(0);
        Ok(used.unsigned_abs())
    }

    async fn rotate(&mut self, id: &str, req: &EnrollRequest) -> Result<(), StoreError> {
        self.0
            .execute(
                "UPDATE gateways SET password_hash = $2, hostname = COALESCE($3, hostname),
                 agent_version = COALESCE($4, agent_version), credentials_issued_at = $5
                 WHERE id = $1",
                &[
                    &id,
                    &req.password_hash,
                    &req.hostname,
                    &req.agent_version,
                    &req.now,
                ],
            )
            .await?;
        Ok(())
    }

    async fn insert_gateway(
        &mut self,
        id: &str,
        token: &TokenRow,
        req: &EnrollRequest,
    ) -> Result<(), StoreError> {
        self.0
            .execute(
                "INSERT INTO gateways (id, credit_code, name, token_id, password_hash, hostname,
                 agent_version, enrolled_at, credentials_issued_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                &[
                    &id,
                    &token.credit_code,
                    &req.gateway_name,
                    &token.id,
                    &req.password_hash,
                    &req.hostname,
                    &req.agent_version,
                    &req.now,
                ],
            )
            .await?;
        Ok(())
    }

    async fn credentials_changed(&mut self) -> Result<(), StoreError> {
        self.0
            .execute("UPDATE credentials_version SET version = version + 1", &[])
            .await?;
        Ok(())
    }
}
