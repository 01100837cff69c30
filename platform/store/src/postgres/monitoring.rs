//! Industry monitoring on PostgreSQL: the statements, one `unnest` statement per step of a
//! group (the decisions are [`crate::monitoring`]'s), and the read of the monitoring
//! statistics.

use super::{PostgresStore, read_value};
use crate::StoreError;
use crate::columns::{numeric, parse_district, parse_industry};
use crate::monitoring::chain::{Around, PointState, Reading};
use crate::monitoring::{
    EnterpriseDays, MachineDay, MonitorTx, MonitoringRow, RolePoint, Roles, parse_role, role_code,
};
use fieldlink_wire::PointRole;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_postgres::Row;

/// The statement reading a point's readings (good samples with a number) with `$filter`.
macro_rules! readings_where {
    ($filter:literal) => {
        concat!(
            "SELECT ts, kind, value_int, value_float, value_text FROM samples ",
            "WHERE point_id = $1 AND quality = 0 AND kind BETWEEN 1 AND 4 AND ",
            $filter
        )
    };
}

impl PostgresStore {
    pub(crate) async fn monitoring(
        &self,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<MonitoringRow>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT e.industry, e.district, d.day, COUNT(*),
                   COUNT(*) FILTER (WHERE NOT e.share_data_with_bureau),
                   SUM(d.machines)::int8, SUM(d.running_ms)::int8, SUM(d.observed_ms)::int8,
                   SUM(d.energy_kwh), SUM(d.output)
                 FROM monitoring_enterprise_days d JOIN enterprises e ON e.credit_code = d.credit_code
                 WHERE d.day BETWEEN $1 AND $2 AND d.machines > 0
                 GROUP BY e.industry, e.district, d.day",
                &[&from_day, &to_day],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(MonitoringRow {
                    industry: parse_industry(r.try_get(0)?)?,
                    district: parse_district(r.try_get(1)?)?,
                    day: r.try_get(2)?,
                    enterprises: r.try_get::<_, i64>(3)?.unsigned_abs(),
                    not_sharing: r.try_get::<_, i64>(4)?.unsigned_abs(),
                    machines: r.try_get::<_, i64>(5)?.unsigned_abs(),
                    running_ms: r.try_get(6)?,
                    observed_ms: r.try_get(7)?,
                    energy_kwh: r.try_get(8)?,
                    output: r.try_get(9)?,
                })
            })
            .collect()
    }
}

/// The readings of rows of [`readings_where`] (values that are no number left out).
fn readings(rows: &[Row]) -> Result<Vec<Reading>, StoreError> {
    let mut readings = Vec::with_capacity(rows.len());
    for r in rows {
        let value = read_value(r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?)?;
        if let Some(value) = numeric(&value) {
            readings.push(Reading {
                ts: r.try_get(0)?,
                value,
            });
        }
    }
    Ok(readings)
}

/// The monitoring statements on PostgreSQL, with the store's cache of roles.
pub(super) struct PostgresMonitor<'s, 't, 'c> {
    pub store: &'s PostgresStore,
    pub tx: &'t deadpool_postgres::Transaction<'c>,
}

impl MonitorTx for PostgresMonitor<'_, '_, '_> {
    async fn roles(&mut self, gateway: &str, version: i64) -> Result<Roles, StoreError> {
        if let Some((cached, roles)) = self.store.roles().get(gateway)
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
        self.store
            .roles()
            .insert(gateway.to_owned(), (version, roles.clone()));
        Ok(roles)
    }

    async fn role_points(&mut self, gateway: &str) -> Result<Vec<RolePoint>, StoreError> {
        let stmt = self
            .tx
            .prepare_cached(
                "SELECT id, device, point, role FROM points WHERE gateway = $1 AND role IS NOT NULL",
            )
            .await?;
        self.tx
            .query(&stmt, &[&gateway])
            .await?
            .iter()
            .map(|r| {
                Ok(RolePoint {
                    id: r.try_get(0)?,
                    device: r.try_get(1)?,
                    point: r.try_get(2)?,
                    role: parse_role(i64::from(r.try_get::<_, i16>(3)?))?,
                })
            })
            .collect()
    }

    async fn point_states(&mut self, ids: &[i64]) -> Result<HashMap<i64, PointState>, StoreError> {
        let stmt = self
            .tx
            .prepare_cached(
                "SELECT id, monitored_first_ts, monitored_ts, monitored_value FROM points
                 WHERE id = ANY($1) AND monitored_ts IS NOT NULL",
            )
            .await?;
        self.tx
            .query(&stmt, &[&ids])
            .await?
            .iter()
            .map(|r| {
                let state = PointState {
                    first_ts: r.try_get(1)?,
                    last: Some(Reading {
                        ts: r.try_get(2)?,
                        value: r.try_get(3)?,
                    }),
                };
                Ok((r.try_get(0)?, state))
            })
            .collect()
    }

    async fn save_point_states(&mut self, states: &[(i64, PointState)]) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let id: Vec<i64> = states.iter().map(|(id, _)| *id).collect();
        let first: Vec<Option<i64>> = states.iter().map(|(_, s)| s.first_ts).collect();
        let ts: Vec<Option<i64>> = states.iter().map(|(_, s)| s.last.map(|r| r.ts)).collect();
        let value: Vec<Option<f64>> = states
            .iter()
            .map(|(_, s)| s.last.map(|r| r.value))
            .collect();
        let stmt = self
            .tx
            .prepare_cached(
                "UPDATE points p SET monitored_first_ts = u.f, monitored_ts = u.t, monitored_value = u.v
                 FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::float8[]) AS u(id, f, t, v)
                 WHERE p.id = u.id",
            )
            .await?;
        self.tx.execute(&stmt, &[&id, &first, &ts, &value]).await?;
        Ok(())
    }

    async fn readings_around(
        &mut self,
        runs: &[(i64, i64, i64)],
    ) -> Result<HashMap<i64, Around>, StoreError> {
        let point: Vec<i64> = runs.iter().map(|r| r.0).collect();
        let lo: Vec<i64> = runs.iter().map(|r| r.1).collect();
        let hi: Vec<i64> = runs.iter().map(|r| r.2).collect();
        // Per run: the reading before it (part 0), those inside it (1), the one after (2).
        let stmt = self
            .tx
            .prepare_cached(
                "SELECT u.id, s.part, s.ts, s.kind, s.value_int, s.value_float, s.value_text
                 FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS u(id, lo, hi)
                 CROSS JOIN LATERAL (
                   (SELECT 0 AS part, ts, kind, value_int, value_float, value_text FROM samples
                    WHERE point_id = u.id AND quality = 0 AND kind BETWEEN 1 AND 4 AND ts < u.lo
                    ORDER BY ts DESC LIMIT 1)
                   UNION ALL
                   (SELECT 1, ts, kind, value_int, value_float, value_text FROM samples
                    WHERE point_id = u.id AND quality = 0 AND kind BETWEEN 1 AND 4
                      AND ts BETWEEN u.lo AND u.hi)
                   UNION ALL
                   (SELECT 2, ts, kind, value_int, value_float, value_text FROM samples
                    WHERE point_id = u.id AND quality = 0 AND kind BETWEEN 1 AND 4 AND ts > u.hi
                    ORDER BY ts LIMIT 1)
                 ) s",
            )
            .await?;
        let mut arounds: HashMap<i64, Around> =
            point.iter().map(|&p| (p, Around::default())).collect();
        for r in self.tx.query(&stmt, &[&point, &lo, &hi]).await? {
            let value = read_value(r.try_get(3)?, r.try_get(4)?, r.try_get(5)?, r.try_get(6)?)?;
            let (Some(value), Some(around)) = (numeric(&value), arounds.get_mut(&r.try_get(0)?))
            else {
                continue;
            };
            let reading = Reading {
                ts: r.try_get(2)?,
                value,
            };
            match r.try_get::<_, i32>(1)? {
                0 => around.prev = Some(reading),
                1 => around.inside.push(reading),
                _ => around.next = Some(reading),
            }
        }
        for around in arounds.values_mut() {
            around.inside.sort_by_key(|r| r.ts);
        }
        Ok(arounds)
    }

    async fn readings_after(
        &mut self,
        point: i64,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Reading>, StoreError> {
        let stmt = self
            .tx
            .prepare_cached(readings_where!("ts > $2 ORDER BY ts LIMIT $3"))
            .await?;
        let after = after.unwrap_or(i64::MIN);
        readings(
            &self
                .tx
                .query(&stmt, &[&point, &after, &i64::from(limit)])
                .await?,
        )
    }

    async fn add_machine_days(&mut self, rows: &[MachineDay<'_>]) -> Result<Vec<bool>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let gateway: Vec<&str> = rows.iter().map(|((g, _, _), _)| *g).collect();
        let device: Vec<&str> = rows.iter().map(|((_, d, _), _)| *d).collect();
        let day: Vec<i64> = rows.iter().map(|((_, _, d), _)| *d).collect();
        let samples: Vec<i64> = rows.iter().map(|(_, f)| f.samples).collect();
        let running: Vec<i64> = rows.iter().map(|(_, f)| f.running_ms).collect();
        let observed: Vec<i64> = rows.iter().map(|(_, f)| f.observed_ms).collect();
        let energy: Vec<f64> = rows.iter().map(|(_, f)| f.energy_kwh).collect();
        let output: Vec<f64> = rows.iter().map(|(_, f)| f.output).collect();
        let stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO monitoring_machine_days AS m
                   (gateway, device, day, samples, running_ms, observed_ms, energy_kwh, output)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[],
                                      $6::int8[], $7::float8[], $8::float8[])
                 ON CONFLICT (gateway, device, day) DO UPDATE SET
                   samples = m.samples + EXCLUDED.samples,
                   running_ms = m.running_ms + EXCLUDED.running_ms,
                   observed_ms = m.observed_ms + EXCLUDED.observed_ms,
                   energy_kwh = m.energy_kwh + EXCLUDED.energy_kwh,
                   output = m.output + EXCLUDED.output
                 RETURNING gateway, device, day, samples",
            )
            .await?;
        let now: HashMap<(String, String, i64), i64> = self
            .tx
            .query(
                &stmt,
                &[
                    &gateway, &device, &day, &samples, &running, &observed, &energy, &output,
                ],
            )
            .await?
            .iter()
            .map(|r| Ok(((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?), r.try_get(3)?)))
            .collect::<Result<_, StoreError>>()?;
        Ok(rows
            .iter()
            .map(|((g, d, day), f)| {
                let key = ((*g).to_owned(), (*d).to_owned(), *day);
                f.samples > 0 && now.get(&key) == Some(&f.samples)
            })
            .collect())
    }

    async fn add_enterprise_days(&mut self, rows: &EnterpriseDays) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let day: Vec<i64> = rows.keys().map(|(_, d)| *d).collect();
        let code: Vec<&str> = rows.keys().map(|(c, _)| c.as_str()).collect();
        let machines: Vec<i64> = rows.values().map(|e| e.machines).collect();
        let running: Vec<i64> = rows.values().map(|e| e.figures.running_ms).collect();
        let observed: Vec<i64> = rows.values().map(|e| e.figures.observed_ms).collect();
        let energy: Vec<f64> = rows.values().map(|e| e.figures.energy_kwh).collect();
        let output: Vec<f64> = rows.values().map(|e| e.figures.output).collect();
        let stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO monitoring_enterprise_days AS m
                   (day, credit_code, machines, running_ms, observed_ms, energy_kwh, output)
                 SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int8[], $5::int8[],
                                      $6::float8[], $7::float8[])
                 ON CONFLICT (day, credit_code) DO UPDATE SET
                   machines = m.machines + EXCLUDED.machines,
                   running_ms = m.running_ms + EXCLUDED.running_ms,
                   observed_ms = m.observed_ms + EXCLUDED.observed_ms,
                   energy_kwh = m.energy_kwh + EXCLUDED.energy_kwh,
                   output = m.output + EXCLUDED.output",
            )
            .await?;
        self.tx
            .execute(
                &stmt,
                &[
                    &day, &code, &machines, &running, &observed, &energy, &output,
                ],
            )
            .await?;
        Ok(())
    }

    async fn point_id(
        &mut self,
        gateway: &str,
        device: &str,
        point: &str,
    ) -> Result<i64, StoreError> {
        // The caller created the catalogue's points before taking the gateway's lock, as
        // the ingest does: this insert never waits for another group's.
        self.tx
            .execute(
                "INSERT INTO points (gateway, device, point) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&gateway, &device, &point],
            )
            .await?;
        Ok(self
            .tx
            .query_one(
                "SELECT id FROM points WHERE gateway = $1 AND device = $2 AND point = $3",
                &[&gateway, &device, &point],
            )
            .await?
            .try_get(0)?)
    }

    async fn set_role(&mut self, point: i64, role: Option<PointRole>) -> Result<(), StoreError> {
        self.tx
            .execute(
                "UPDATE points SET role = $2 WHERE id = $1",
                &[&point, &role.map(role_code)],
            )
            .await?;
        Ok(())
    }

    async fn bump_roles_version(&mut self, gateway: &str) -> Result<(), StoreError> {
        self.tx
            .execute(
                "UPDATE gateways SET roles_version = roles_version + 1 WHERE id = $1",
                &[&gateway],
            )
            .await?;
        Ok(())
    }
}
