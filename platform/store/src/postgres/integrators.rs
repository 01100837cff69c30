//! Integrators, assignments and data sharing on PostgreSQL: the statements.

use super::PostgresStore;
use crate::StoreError;
use crate::integrators::{AssignOutcome, Assignment, Integrator, NewIntegrator};
use crate::numbering::WindowNumbering;
use crate::rows::{self, INTEGRATOR_COLUMNS};
use std::collections::HashMap;

impl PostgresStore {
    pub(crate) async fn insert_integrator(
        &self,
        i: NewIntegrator,
        now: i64,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "INSERT INTO integrators (credit_code, name, contact, registered_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (credit_code) DO NOTHING",
                &[&i.credit_code.as_str(), &i.name, &i.contact, &now],
            )
            .await?
            > 0)
    }

    pub(crate) async fn integrators(&self) -> Result<Vec<Integrator>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {INTEGRATOR_COLUMNS} FROM integrators ORDER BY credit_code");
        let rows = client
            .query(&client.prepare_cached(&sql).await?, &[])
            .await?;
        rows.iter().map(rows::integrator).collect()
    }

    pub(crate) async fn integrator(
        &self,
        credit_code: String,
    ) -> Result<Option<Integrator>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {INTEGRATOR_COLUMNS} FROM integrators WHERE credit_code = $1");
        let row = client
            .query_opt(&client.prepare_cached(&sql).await?, &[&credit_code])
            .await?;
        row.as_ref().map(rows::integrator).transpose()
    }

    pub(crate) async fn assign(
        &self,
        enterprise: String,
        integrator: String,
        now: i64,
    ) -> Result<AssignOutcome, StoreError> {
        let (enterprise, integrator) = (&enterprise, &integrator);
        self.retrying("assign", |mut client| async move {
            let tx = client.transaction().await?;
            // The row lock orders concurrent assignments of one enterprise, so the history
            // and the current assignment agree.
            let Some(row) = tx
                .query_opt(
                    "SELECT integrator FROM enterprises WHERE credit_code = $1 FOR UPDATE",
                    &[enterprise],
                )
                .await?
            else {
                return Ok(AssignOutcome::NoEnterprise);
            };
            let current: Option<String> = row.try_get(0)?;
            let known = tx
                .query_opt(
                    "SELECT 1 FROM integrators WHERE credit_code = $1",
                    &[integrator],
                )
                .await?
                .is_some();
            if !known {
                return Ok(AssignOutcome::NoIntegrator);
            }
            if current.as_ref() == Some(integrator) {
                return Ok(AssignOutcome::Unchanged);
            }
            tx.execute(
                "UPDATE enterprises SET integrator = $2, assigned_at = $3 WHERE credit_code = $1",
                &[enterprise, integrator, &now],
            )
            .await?;
            tx.execute(
                "INSERT INTO assignments (enterprise, integrator, assigned_at) VALUES ($1, $2, $3)",
                &[enterprise, integrator, &now],
            )
            .await?;
            tx.commit().await?;
            Ok(AssignOutcome::Assigned)
        })
        .await
    }

    pub(crate) async fn assignments(
        &self,
        enterprise: String,
    ) -> Result<Vec<Assignment>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT integrator, assigned_at FROM assignments WHERE enterprise = $1
                 ORDER BY assigned_at",
                &[&enterprise],
            )
            .await?;
        rows.iter().map(rows::assignment).collect()
    }

    pub(crate) async fn set_share_data_with_bureau(
        &self,
        enterprise: String,
        share: bool,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "UPDATE enterprises SET share_data_with_bureau = $2 WHERE credit_code = $1",
                &[&enterprise, &share],
            )
            .await?
            > 0)
    }

    pub(crate) async fn numbering_since(
        &self,
        since: i64,
    ) -> Result<Vec<WindowNumbering>, StoreError> {
        let client = self.client().await?;
        let mut crashes: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
        for r in client
            .query(
                "SELECT gateway, first_seq, last_seq FROM crash_windows",
                &[],
            )
            .await?
        {
            let (gateway, first, last): (String, i64, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            crashes
                .entry(gateway)
                .or_default()
                .push((first.unsigned_abs(), last.unsigned_abs()));
        }
        let rows = client
            .query(
                "SELECT gateway, COUNT(*), CAST(SUM(samples) AS BIGINT), MIN(seq), MAX(seq)
                 FROM batches WHERE received_at >= $1 GROUP BY gateway ORDER BY gateway",
                &[&since],
            )
            .await?;
        rows.iter()
            .map(|r| rows::window_numbering(r, &crashes))
            .collect()
    }
}
