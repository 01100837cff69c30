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
use fieldlink_platform_core::catalog::{District, Industry};
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
    /// The enterprise-days of the window, summed per industry, district and day. The
    /// enterprises' groups and sharing (a few thousand rows) are joined in memory: the same
    /// join and grouping in SQL cost SQLite several times the scan of the window's rows
    /// (a B-tree lookup per row, then a sort).
    pub(crate) async fn monitoring(
        &self,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<MonitoringRow>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT credit_code, industry, district, share_data_with_bureau FROM enterprises",
            )?;
            let enterprises: HashMap<String, (Industry, District, bool)> =
                all(&mut stmt, [], |r| {
                    let group = (
                        parse_industry(&r.get::<_, String>(1)?)?,
                        parse_district(&r.get::<_, String>(2)?)?,
                        r.get(3)?,
                    );
                    Ok((r.get(0)?, group))
                })?
                .into_iter()
                .collect();
            let mut sums: HashMap<(Industry, District, i64), MonitoringRow> = HashMap::new();
            let mut stmt = c.prepare_cached(
                "SELECT credit_code, day, machines, running_ms, observed_ms, energy_kwh, output
                 FROM monitoring_enterprise_days WHERE day BETWEEN ?1 AND ?2 AND machines > 0",
            )?;
            let mut rows = stmt.query(params![from_day, to_day])?;
            while let Some(r) = rows.next()? {
                let code = r
                    .get_ref(0)?
                    .as_str()
                    .map_err(|e| StoreError::Corrupt(format!("monitoring row: {e}")))?;
                let Some(&(industry, district, shares)) = enterprises.get(code) else {
                    continue;
                };
                let day: i64 = r.get(1)?;
                let sum = sums
                    .entry((industry, district, day))
                    .or_insert(MonitoringRow {
                        industry,
                        district,
                        day,
                        enterprises: 0,
                        not_sharing: 0,
                        machines: 0,
                        running_ms: 0,
                        observed_ms: 0,
                        energy_kwh: 0.0,
                        output: 0.0,
                    });
                sum.enterprises += 1;
                sum.not_sharing += u64::from(!shares);
                sum.machines += r.get::<_, i64>(2)?.unsigned_abs();
                sum.running_ms += r.get::<_, i64>(3)?;
                sum.observed_ms += r.get::<_, i64>(4)?;
                sum.energy_kwh += r.get::<_, f64>(5)?;
                sum.output += r.get::<_, f64>(6)?;
            }
            Ok(sums.into_values().collect())
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
        runs: &[(i64, i64, i64)],
    ) -> Result<HashMap<i64, Around>, StoreError> {
        let mut prev = self
            .tx
            .prepare_cached(readings_where!("ts < ?2 ORDER BY ts DESC LIMIT 1"))?;
        let mut inside = self
            .tx
            .prepare_cached(readings_where!("ts BETWEEN ?2 AND ?3 ORDER BY ts"))?;
        let mut next = self
            .tx
            .prepare_cached(readings_where!("ts > ?2 ORDER BY ts LIMIT 1"))?;
        let mut arounds = HashMap::with_capacity(runs.len());
        for &(point, lo, hi) in runs {
            let around = Around {
                prev: readings(&mut prev, params![point, lo])?.first().copied(),
                inside: readings(&mut inside, params![point, lo, hi])?,
                next: readings(&mut next, params![point, hi])?.first().copied(),
            };
            arounds.insert(point, around);
        }
        Ok(arounds)
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
