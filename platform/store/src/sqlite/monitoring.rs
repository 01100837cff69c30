//! Industry monitoring on SQLite: the statements (the decisions are
//! [`crate::monitoring`]'s), and the read of the monitoring statistics.

use super::{SqliteStore, all, read_value};
use crate::StoreError;
use crate::columns::{numeric, parse_district, parse_industry};
use crate::monitoring::chain::{Around, PointState, Reading};
use crate::monitoring::{
    EnterpriseDays, MachineDay, MonitorTx, MonitoringRow, RoleCache, RolePoint, Roles, parse_role,
    role_code,
};
use fieldlink_wire::PointRole;
use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, Row, Transaction, params};
use std::collections::HashMap;
use std::sync::Arc;

/// The statement reading a point's readings (good samples with a number) with `$filter`.
macro_rules! readings_where {
    ($filter:literal) => {
        concat!(
            "SELECT ts, kind, value FROM samples WHERE point_id = ?1 AND quality = 0 ",
            "AND kind BETWEEN 1 AND 4 AND ",
            $filter
        )
    };
}

impl SqliteStore {
    pub(crate) async fn monitoring(
        &self,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<MonitoringRow>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT e.industry, e.district, d.day, COUNT(*), SUM(1 - e.share_data_with_bureau),
                   SUM(d.machines), SUM(d.running_ms), SUM(d.observed_ms), SUM(d.energy_kwh),
                   SUM(d.output)
                 FROM monitoring_enterprise_days d JOIN enterprises e ON e.credit_code = d.credit_code
                 WHERE d.day BETWEEN ?1 AND ?2 AND d.machines > 0
                 GROUP BY e.industry, e.district, d.day",
            )?;
            all(&mut stmt, params![from_day, to_day], |r| {
                Ok(MonitoringRow {
                    industry: parse_industry(&r.get::<_, String>(0)?)?,
                    district: parse_district(&r.get::<_, String>(1)?)?,
                    day: r.get(2)?,
                    enterprises: r.get::<_, i64>(3)?.unsigned_abs(),
                    not_sharing: r.get::<_, i64>(4)?.unsigned_abs(),
                    machines: r.get::<_, i64>(5)?.unsigned_abs(),
                    running_ms: r.get(6)?,
                    observed_ms: r.get(7)?,
                    energy_kwh: r.get(8)?,
                    output: r.get(9)?,
                })
            })
        })
        .await
    }
}

/// A reading from a row of [`readings_where`]; `None` for a value that is no number.
fn reading(r: &Row<'_>) -> Result<Option<Reading>, StoreError> {
    let ts: i64 = r.get(0)?;
    let value = read_value(r.get(1)?, r.get::<_, SqlValue>(2)?)?;
    Ok(numeric(&value).map(|value| Reading { ts, value }))
}

/// The readings of `stmt`'s rows.
fn readings(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<Reading>, StoreError> {
    Ok(all(stmt, params, reading)?.into_iter().flatten().collect())
}

/// The monitoring statements on SQLite, with the writer's cache of roles.
pub(super) struct SqliteMonitor<'t> {
    pub tx: &'t Transaction<'t>,
    pub roles: &'t mut RoleCache,
}

impl MonitorTx for SqliteMonitor<'_> {
    async fn roles(&mut self, gateway: &str, version: i64) -> Result<Roles, StoreError> {
        if let Some((cached, roles)) = self.roles.get(gateway)
            && *cached == version
        {
            return Ok(roles.clone());
        }
        let roles: Roles = Arc::new(
            self.role_points(gateway)
                .await?
                .into_iter()
                .map(|p| (p.id, p.role))
                .collect(),
        );
        self.roles
            .insert(gateway.to_owned(), (version, roles.clone()));
        Ok(roles)
    }

    async fn role_points(&mut self, gateway: &str) -> Result<Vec<RolePoint>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT id, device, point, role FROM points WHERE gateway = ?1 AND role IS NOT NULL",
        )?;
        all(&mut stmt, [gateway], |r| {
            Ok(RolePoint {
                id: r.get(0)?,
                device: r.get(1)?,
                point: r.get(2)?,
                role: parse_role(r.get(3)?)?,
            })
        })
    }

    async fn point_states(&mut self, ids: &[i64]) -> Result<HashMap<i64, PointState>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT monitored_first_ts, monitored_ts, monitored_value FROM points
             WHERE id = ?1 AND monitored_ts IS NOT NULL",
        )?;
        let mut states = HashMap::new();
        for &id in ids {
            let state = stmt
                .query_row([id], |r| {
                    Ok(PointState {
                        first_ts: r.get(0)?,
                        last: Some(Reading {
                            ts: r.get(1)?,
                            value: r.get(2)?,
                        }),
                    })
                })
                .optional()?;
            if let Some(state) = state {
                states.insert(id, state);
            }
        }
        Ok(states)
    }

    async fn save_point_states(&mut self, states: &[(i64, PointState)]) -> Result<(), StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "UPDATE points SET monitored_first_ts = ?2, monitored_ts = ?3, monitored_value = ?4
             WHERE id = ?1",
        )?;
        for (id, state) in states {
            stmt.execute(params![
                id,
                state.first_ts,
                state.last.map(|r| r.ts),
                state.last.map(|r| r.value)
            ])?;
        }
        Ok(())
    }

    async fn readings_around(
        &mut self,
        point: i64,
        lo: i64,
        hi: i64,
    ) -> Result<Around, StoreError> {
        let prev = readings(
            &mut self
                .tx
                .prepare_cached(readings_where!("ts < ?2 ORDER BY ts DESC LIMIT 1"))?,
            params![point, lo],
        )?;
        let inside = readings(
            &mut self
                .tx
                .prepare_cached(readings_where!("ts BETWEEN ?2 AND ?3 ORDER BY ts"))?,
            params![point, lo, hi],
        )?;
        let next = readings(
            &mut self
                .tx
                .prepare_cached(readings_where!("ts > ?2 ORDER BY ts LIMIT 1"))?,
            params![point, hi],
        )?;
        Ok(Around {
            prev: prev.first().copied(),
            inside,
            next: next.first().copied(),
        })
    }

    async fn readings_after(
        &mut self,
        point: i64,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Reading>, StoreError> {
        readings(
            &mut self
                .tx
                .prepare_cached(readings_where!("ts > ?2 ORDER BY ts LIMIT ?3"))?,
            params![point, after.unwrap_or(i64::MIN), limit],
        )
    }

    async fn add_machine_days(&mut self, rows: &[MachineDay<'_>]) -> Result<Vec<bool>, StoreError> {
        let mut upsert = self.tx.prepare_cached(
            "INSERT INTO monitoring_machine_days
               (gateway, device, day, samples, running_ms, observed_ms, energy_kwh, output)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (gateway, device, day) DO UPDATE SET samples = samples + excluded.samples,
               running_ms = running_ms + excluded.running_ms,
               observed_ms = observed_ms + excluded.observed_ms,
               energy_kwh = energy_kwh + excluded.energy_kwh, output = output + excluded.output
             RETURNING samples",
        )?;
        let mut began = Vec::with_capacity(rows.len());
        for ((gateway, device, day), f) in rows {
            let samples: i64 = upsert.query_row(
                params![
                    gateway,
                    device,
                    day,
                    f.samples,
                    f.running_ms,
                    f.observed_ms,
                    f.energy_kwh,
                    f.output
                ],
                |r| r.get(0),
            )?;
            began.push(f.samples > 0 && samples == f.samples);
        }
        Ok(began)
    }

    async fn add_enterprise_days(&mut self, rows: &EnterpriseDays) -> Result<(), StoreError> {
        let mut upsert = self.tx.prepare_cached(
            "INSERT INTO monitoring_enterprise_days
               (day, credit_code, machines, running_ms, observed_ms, energy_kwh, output)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (day, credit_code) DO UPDATE SET machines = machines + excluded.machines,
               running_ms = running_ms + excluded.running_ms,
               observed_ms = observed_ms + excluded.observed_ms,
               energy_kwh = energy_kwh + excluded.energy_kwh, output = output + excluded.output",
        )?;
        for ((code, day), e) in rows {
            let f = &e.figures;
            upsert.execute(params![
                day,
                code,
                e.machines,
                f.running_ms,
                f.observed_ms,
                f.energy_kwh,
                f.output
            ])?;
        }
        Ok(())
    }

    async fn point_id(
        &mut self,
        gateway: &str,
        device: &str,
        point: &str,
    ) -> Result<i64, StoreError> {
        self.tx
            .prepare_cached(
                "INSERT OR IGNORE INTO points (gateway, device, point) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![gateway, device, point])?;
        Ok(self
            .tx
            .prepare_cached(
                "SELECT id FROM points WHERE gateway = ?1 AND device = ?2 AND point = ?3",
            )?
            .query_row(params![gateway, device, point], |r| r.get(0))?)
    }

    async fn set_role(&mut self, point: i64, role: Option<PointRole>) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("UPDATE points SET role = ?2 WHERE id = ?1")?
            .execute(params![point, role.map(role_code)])?;
        Ok(())
    }

    async fn bump_roles_version(&mut self, gateway: &str) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("UPDATE gateways SET roles_version = roles_version + 1 WHERE id = ?1")?
            .execute([gateway])?;
        Ok(())
    }
}
