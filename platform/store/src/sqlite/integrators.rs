//! Integrators, assignments and data sharing on SQLite: the statements.

use super::{SqliteStore, all, first, write_tx};
use crate::StoreError;
use crate::integrators::{AssignOutcome, Assignment, Integrator, NewIntegrator};
use crate::numbering::WindowNumbering;
use crate::rows;
use rusqlite::params;
use std::collections::HashMap;

impl SqliteStore {
    pub(crate) async fn insert_integrator(
        &self,
        i: NewIntegrator,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.write(move |w| {
            Ok(w.conn.execute(
                "INSERT INTO integrators (credit_code, name, contact, registered_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (credit_code) DO NOTHING",
                params![i.credit_code.as_str(), i.name, i.contact, now],
            )? > 0)
        })
        .await
    }

    pub(crate) async fn integrators(&self) -> Result<Vec<Integrator>, StoreError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {} FROM integrators ORDER BY credit_code",
                rows::INTEGRATOR_COLUMNS
            );
            all(&mut c.prepare_cached(&sql)?, [], |r| rows::integrator(r))
        })
        .await
    }

    pub(crate) async fn integrator(
        &self,
        credit_code: String,
    ) -> Result<Option<Integrator>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {} FROM integrators WHERE credit_code = ?1",
                rows::INTEGRATOR_COLUMNS
            );
            first(&mut c.prepare_cached(&sql)?, [credit_code], |r| {
                rows::integrator(r)
            })
        })
        .await
    }

    pub(crate) async fn assign(
        &self,
        enterprise: String,
        integrator: String,
        now: i64,
    ) -> Result<AssignOutcome, StoreError> {
        self.write(move |w| {
            let tx = write_tx(&mut w.conn)?;
            let current: Option<Option<String>> = first(
                &mut tx
                    .prepare_cached("SELECT integrator FROM enterprises WHERE credit_code = ?1")?,
                [&enterprise],
                |r| Ok(r.get::<_, Option<String>>(0)?),
            )?;
            let Some(current) = current else {
                return Ok(AssignOutcome::NoEnterprise);
            };
            let known = tx
                .prepare_cached("SELECT 1 FROM integrators WHERE credit_code = ?1")?
                .exists([&integrator])?;
            if !known {
                return Ok(AssignOutcome::NoIntegrator);
            }
            if current.as_deref() == Some(integrator.as_str()) {
                return Ok(AssignOutcome::Unchanged);
            }
            tx.execute(
                "UPDATE enterprises SET integrator = ?2, assigned_at = ?3 WHERE credit_code = ?1",
                params![enterprise, integrator, now],
            )?;
            tx.execute(
                "INSERT INTO assignments (enterprise, integrator, assigned_at) VALUES (?1, ?2, ?3)",
                params![enterprise, integrator, now],
            )?;
            tx.commit()?;
            Ok(AssignOutcome::Assigned)
        })
        .await
    }

    pub(crate) async fn assignments(
        &self,
        enterprise: String,
    ) -> Result<Vec<Assignment>, StoreError> {
        self.read(move |c| {
            all(
                &mut c.prepare_cached(
                    "SELECT integrator, assigned_at FROM assignments WHERE enterprise = ?1
                     ORDER BY assigned_at",
                )?,
                [enterprise],
                |r| rows::assignment(r),
            )
        })
        .await
    }

    pub(crate) async fn set_share_data_with_bureau(
        &self,
        enterprise: String,
        share: bool,
    ) -> Result<bool, StoreError> {
        self.write(move |w| {
            Ok(w.conn.execute(
                "UPDATE enterprises SET share_data_with_bureau = ?2 WHERE credit_code = ?1",
                params![enterprise, share],
            )? > 0)
        })
        .await
    }

    pub(crate) async fn numbering_since(
        &self,
        since: i64,
    ) -> Result<Vec<WindowNumbering>, StoreError> {
        self.read(move |c| {
            let mut crashes: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
            for (gateway, first, last) in all(
                &mut c.prepare_cached("SELECT gateway, first_seq, last_seq FROM crash_windows")?,
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )? {
                crashes
                    .entry(gateway)
                    .or_default()
                    .push((first.unsigned_abs(), last.unsigned_abs()));
            }
            all(
                &mut c.prepare_cached(
                    "SELECT gateway, COUNT(*), SUM(samples), MIN(seq), MAX(seq) FROM batches
                     WHERE received_at >= ?1 GROUP BY gateway ORDER BY gateway",
                )?,
                [since],
                |r| rows::window_numbering(r, &crashes),
            )
        })
        .await
    }
}
