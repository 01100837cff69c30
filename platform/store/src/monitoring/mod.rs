//! Industry monitoring (DESIGN.md, "The bureau's cockpit"), kept at ingest, never computed
//! from raw samples when asked: per machine (a device of a gateway) and local day, the
//! samples stored and what its role points contribute ([`chain`]: running and observed
//! time, energy and output increments); per enterprise and day the same summed, with the
//! machines that reported. A request reads at most one row per enterprise and day.
//!
//! - **Roles** come from the gateway's latest catalogue: [`change_roles`] sets
//!   `points.role` when a `meta` arrives, in a transaction holding the gateway's lock, and
//!   processes the point's stored readings again (its contributions under the old role
//!   taken away, under the new one added), so samples that arrived before their catalogue
//!   count as soon as it arrives; a role removed takes its contributions away. Samples
//!   pruned past the retention are not processed again: their days keep what they had.
//!   Each change raises the gateway's `roles_version`; the ingest reads it with the
//!   gateway's row and keeps each gateway's role points in memory by that version, so a
//!   group of batches costs no query for roles.
//! - **Ingest** ([`record`], step 5 of [`crate::ingest`], under the gateways' locks): every
//!   sample adds to its machine-day's count (a few comparisons per sample); each role point
//!   of the group is spliced into its chain: readings after the newest processed (kept on
//!   the point's row with the oldest) need no lookup, late ones are spliced in between the
//!   stored readings around them (the `(point_id, ts)` index). A duplicate batch is never
//!   stored, so it never counts twice. The machine-days are upserted; the enterprise-days
//!   after the enterprises' locks (step 6).

pub(crate) mod chain;

use crate::columns::numeric;
use crate::{IncomingBatch, StoreError};
use chain::{Around, DayFigures, Days, Measure, PointState, Reading};
use fieldlink_platform_core::catalog::{District, Industry};
use fieldlink_platform_core::clock::day_of;
use fieldlink_wire::{PointRole, Quality, Sample};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use chain::MAX_GAP_MS;

/// Readings read per statement when a point is processed again.
const READINGS_PAGE: u32 = 50_000;

/// One industry's enterprises of one district on one day, as the monitoring tables hold
/// them: the input of `GET /api/v1/stats/monitoring`. Only enterprises that reported
/// (a machine of theirs stored a sample that day) are in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonitoringRow {
    /// The enterprises' industry.
    pub industry: Industry,
    /// Their district.
    pub district: District,
    /// The local day number.
    pub day: i64,
    /// Enterprises that reported.
    pub enterprises: u64,
    /// Of those, the ones that do not share their data with the bureau.
    pub not_sharing: u64,
    /// Machines that reported.
    pub machines: u64,
    /// Observed time with `running` true, ms.
    pub running_ms: i64,
    /// Observed time of `running` points, ms.
    pub observed_ms: i64,
    /// Energy, kWh.
    pub energy_kwh: f64,
    /// Output, parts.
    pub output: f64,
}

/// A role's code in `points.role`.
pub(crate) fn role_code(role: PointRole) -> i16 {
    match role {
        PointRole::Running => 1,
        PointRole::EnergyKwh => 2,
        PointRole::OutputCount => 3,
        PointRole::Fault => 4,
    }
}

/// The role stored as `code`.
pub(crate) fn parse_role(code: i64) -> Result<PointRole, StoreError> {
    [
        PointRole::Running,
        PointRole::EnergyKwh,
        PointRole::OutputCount,
        PointRole::Fault,
    ]
    .into_iter()
    .find(|r| i64::from(role_code(*r)) == code)
    .ok_or_else(|| StoreError::Corrupt(format!("point role {code}")))
}

/// A point with a role, as stored.
#[derive(Debug, Clone)]
pub(crate) struct RolePoint {
    /// Its id.
    pub id: i64,
    /// Its device.
    pub device: String,
    /// Its name.
    pub point: String,
    /// Its role.
    pub role: PointRole,
}

/// A gateway's role points by id, as of one `roles_version`.
pub(crate) type Roles = Arc<HashMap<i64, PointRole>>;

/// Each gateway's role points with the `roles_version` they were read at, in memory.
pub(crate) type RoleCache = HashMap<String, (i64, Roles)>;

/// What one machine-day gets from a group: the machine, its day and the figures to add.
pub(crate) type MachineDay<'a> = ((&'a str, &'a str, i64), DayFigures);

/// What one enterprise-day gets: machines that began reporting, and the figures to add.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct EnterpriseDay {
    /// Machines whose first sample of the day this is.
    pub machines: i64,
    /// The figures (`samples` unused).
    pub figures: DayFigures,
}

/// Enterprise-days to add to, by (credit code, day), applied under the enterprises' locks.
pub(crate) type EnterpriseDays = BTreeMap<(String, i64), EnterpriseDay>;

/// The monitoring statements, inside a transaction holding the gateways' locks.
pub(crate) trait MonitorTx {
    /// The role points of `gateway` as of its `version` (from memory when known).
    async fn roles(&mut self, gateway: &str, version: i64) -> Result<Roles, StoreError>;
    /// Every point of `gateway` with a role.
    async fn role_points(&mut self, gateway: &str) -> Result<Vec<RolePoint>, StoreError>;
    /// The state of each of `ids` (points without one are absent).
    async fn point_states(&mut self, ids: &[i64]) -> Result<HashMap<i64, PointState>, StoreError>;
    /// Saves points' states.
    async fn save_point_states(&mut self, states: &[(i64, PointState)]) -> Result<(), StoreError>;
    /// The stored readings around each late run `(point, lo, hi)`, one entry per run, by
    /// point (one statement on PostgreSQL, whatever their number).
    async fn readings_around(
        &mut self,
        runs: &[(i64, i64, i64)],
    ) -> Result<HashMap<i64, Around>, StoreError>;
    /// Up to `limit` stored readings of `point` after `after` (all if `None`), oldest first.
    async fn readings_after(
        &mut self,
        point: i64,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Reading>, StoreError>;
    /// Adds to machine-days (created at zero); for each row, whether the machine began
    /// reporting that day (its sample count went from 0 to more).
    async fn add_machine_days(&mut self, rows: &[MachineDay<'_>]) -> Result<Vec<bool>, StoreError>;
    /// Adds to enterprise-days (created at zero).
    async fn add_enterprise_days(&mut self, rows: &EnterpriseDays) -> Result<(), StoreError>;
    /// The id of a point of `gateway`, created if missing.
    async fn point_id(
        &mut self,
        gateway: &str,
        device: &str,
        point: &str,
    ) -> Result<i64, StoreError>;
    /// Sets (or clears) a point's role.
    async fn set_role(&mut self, point: i64, role: Option<PointRole>) -> Result<(), StoreError>;
    /// Raises `gateway`'s `roles_version`.
    async fn bump_roles_version(&mut self, gateway: &str) -> Result<(), StoreError>;
}

/// A gateway of a group, as monitoring needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupGateway<'a> {
    /// Its enterprise.
    pub credit_code: &'a str,
    /// The version of its points' roles, read with its locked row.
    pub roles_version: i64,
}

/// A role point's readings in a group.
struct PointRun<'b> {
    gateway: &'b str,
    device: &'b str,
    measure: Measure,
    readings: Vec<Reading>,
}

/// Records a group's monitoring: its samples' machine-days and its role points' chains
/// (`samples` are the `stored` batches' samples in order, with their point ids). The
/// enterprise-days to add once their enterprises are locked.
pub(crate) async fn record<T: MonitorTx>(
    tx: &mut T,
    stored: &[&IncomingBatch],
    samples: &[(i64, &Sample)],
    gateways: &BTreeMap<&str, GroupGateway<'_>>,
    offset_minutes: i32,
) -> Result<EnterpriseDays, StoreError> {
    let mut roles: HashMap<&str, Roles> = HashMap::new();
    for (id, gateway) in gateways {
        let known = tx.roles(id, gateway.roles_version).await?;
        if !known.is_empty() {
            roles.insert(id, known);
        }
    }
    let mut machine_days: BTreeMap<(&str, &str, i64), DayFigures> = BTreeMap::new();
    let mut points: BTreeMap<i64, PointRun<'_>> = BTreeMap::new();
    // Samples of a batch mostly share their device and day: counted in runs.
    let mut run: Option<((&str, &str, i64), i64)> = None;
    let mut ids = samples.iter().map(|(id, _)| *id);
    for batch in stored {
        let gateway = batch.gateway.as_str();
        let gateway_roles = roles.get(gateway);
        for sample in &batch.samples {
            let Some(point_id) = ids.next() else {
                return Err(StoreError::Corrupt("a sample without its point id".into()));
            };
            let key = (
                gateway,
                sample.device.as_ref(),
                day_of(sample.ts, offset_minutes),
            );
            match &mut run {
                Some((k, n)) if *k == key => *n += 1,
                _ => {
                    if let Some((k, n)) = run.replace((key, 1)) {
                        machine_days.entry(k).or_default().samples += n;
                    }
                }
            }
            let Some(role) = gateway_roles.and_then(|r| r.get(&point_id)) else {
                continue;
            };
            let (Some(measure), Quality::Good, Some(value)) =
                (Measure::of(*role), &sample.quality, numeric(&sample.value))
            else {
                continue;
            };
            points
                .entry(point_id)
                .or_insert_with(|| PointRun {
                    gateway,
                    device: sample.device.as_ref(),
                    measure,
                    readings: Vec::new(),
                })
                .readings
                .push(Reading {
                    ts: sample.ts,
                    value,
                });
        }
    }
    if let Some((k, n)) = run {
        machine_days.entry(k).or_default().samples += n;
    }

    if !points.is_empty() {
        let ids: Vec<i64> = points.keys().copied().collect();
        let states = tx.point_states(&ids).await?;
        let mut late = Vec::new();
        for (&id, run) in &mut points {
            run.readings.sort_by_key(|r| r.ts);
            let state = states.get(&id).copied().unwrap_or_default();
            if let Some((lo, hi)) = chain::late_range(&state, &run.readings) {
                late.push((id, lo, hi));
            }
        }
        let arounds = if late.is_empty() {
            HashMap::new()
        } else {
            tx.readings_around(&late).await?
        };
        let mut changed = Vec::new();
        for (&id, run) in &points {
            let state = states.get(&id).copied().unwrap_or_default();
            let around = arounds.get(&id);
            let mut days = Days::new();
            let after = chain::splice(
                run.measure,
                state,
                &run.readings,
                around,
                offset_minutes,
                &mut days,
            );
            for (day, figures) in days {
                machine_days
                    .entry((run.gateway, run.device, day))
                    .or_default()
                    .add(&figures);
            }
            if after != state {
                changed.push((id, after));
            }
        }
        tx.save_point_states(&changed).await?;
    }
    let rows: Vec<MachineDay<'_>> = machine_days.into_iter().collect();
    let began = tx.add_machine_days(&rows).await?;
    let mut enterprise_days = EnterpriseDays::new();
    for (((gateway, _, day), figures), began) in rows.iter().zip(began) {
        let Some(group_gateway) = gateways.get(gateway) else {
            continue;
        };
        let mut add = EnterpriseDay {
            machines: i64::from(began),
            figures: *figures,
        };
        add.figures.samples = 0;
        if add != EnterpriseDay::default() {
            let entry = enterprise_days
                .entry((group_gateway.credit_code.to_owned(), *day))
                .or_default();
            entry.machines += add.machines;
            entry.figures.add(&add.figures);
        }
    }
    Ok(enterprise_days)
}

/// The roles a catalogue (a `meta` payload) gives its points, by (device, point); points
/// without a role, and roles this build does not know, are left out.
pub(crate) fn roles_in(meta: &serde_json::Value) -> BTreeMap<(String, String), PointRole> {
    let mut roles = BTreeMap::new();
    let devices = meta.get("devices").and_then(|d| d.as_array());
    for device in devices.into_iter().flatten() {
        let Some(name) = device.get("name").and_then(|n| n.as_str()) else {
            continue;
        };
        let points = device.get("points").and_then(|p| p.as_array());
        for point in points.into_iter().flatten() {
            let role = point
                .get("role")
                .and_then(|r| r.as_str())
                .and_then(|r| r.parse::<PointRole>().ok());
            if let (Some(point), Some(role)) = (point.get("name").and_then(|n| n.as_str()), role) {
                roles.insert((name.to_owned(), point.to_owned()), role);
            }
        }
    }
    roles
}

/// A point whose role the catalogue changes.
struct RoleChange {
    id: i64,
    device: String,
    old: Option<PointRole>,
    new: Option<PointRole>,
}

/// Gives `gateway`'s points the roles of its catalogue `meta`: each point whose role
/// changes has its stored readings processed again (taken away under the old role, added
/// under the new one). The caller holds the gateway's lock and then its enterprise's
/// (`credit_code`). True if a role changed.
pub(crate) async fn change_roles<T: MonitorTx>(
    tx: &mut T,
    gateway: &str,
    credit_code: &str,
    meta: &serde_json::Value,
    offset_minutes: i32,
) -> Result<bool, StoreError> {
    let mut wanted = roles_in(meta);
    let mut changes = Vec::new();
    for p in tx.role_points(gateway).await? {
        let new = wanted.remove(&(p.device.clone(), p.point));
        if new != Some(p.role) {
            changes.push(RoleChange {
                id: p.id,
                device: p.device,
                old: Some(p.role),
                new,
            });
        }
    }
    for ((device, point), role) in wanted {
        let id = tx.point_id(gateway, &device, &point).await?;
        changes.push(RoleChange {
            id,
            device,
            old: None,
            new: Some(role),
        });
    }
    if changes.is_empty() {
        return Ok(false);
    }
    let mut machine_days: BTreeMap<(&str, i64), DayFigures> = BTreeMap::new();
    let mut states = Vec::new();
    for change in &changes {
        let old = change.old.and_then(Measure::of);
        let new = change.new.and_then(Measure::of);
        let mut state = PointState::default();
        let mut days = Days::new();
        if old.is_some() || new.is_some() {
            loop {
                let after = state.last.map(|r| r.ts);
                let page = tx.readings_after(change.id, after, READINGS_PAGE).await?;
                let full = page.len() == READINGS_PAGE as usize;
                let readings = || state.last.into_iter().chain(page.iter().copied());
                for (measure, sign) in [(old, -1), (new, 1)] {
                    if let Some(measure) = measure {
                        chain::chain(measure, readings(), offset_minutes, sign, &mut days);
                    }
                }
                state.first_ts = state.first_ts.or(page.first().map(|r| r.ts));
                state.last = page.last().copied().or(state.last);
                if !full {
                    break;
                }
            }
        }
        for (day, figures) in days {
            machine_days
                .entry((change.device.as_str(), day))
                .or_default()
                .add(&figures);
        }
        tx.set_role(change.id, change.new).await?;
        states.push((
            change.id,
            if new.is_some() {
                state
            } else {
                PointState::default()
            },
        ));
    }
    tx.save_point_states(&states).await?;
    let rows: Vec<MachineDay<'_>> = machine_days
        .into_iter()
        .filter(|(_, f)| !f.is_zero())
        .map(|((device, day), f)| ((gateway, device, day), f))
        .collect();
    tx.add_machine_days(&rows).await?;
    let enterprise_days: EnterpriseDays = rows
        .iter()
        .map(|((_, _, day), figures)| {
            let add = EnterpriseDay {
                machines: 0,
                figures: *figures,
            };
            ((credit_code.to_owned(), *day), add)
        })
        .fold(EnterpriseDays::new(), |mut all, (key, add)| {
            all.entry(key).or_default().figures.add(&add.figures);
            all
        });
    tx.add_enterprise_days(&enterprise_days).await?;
    tx.bump_roles_version(gateway).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_read_from_the_catalogue_and_codes_round_trip() {
        let meta = serde_json::json!({"devices": [
            {"name": "press-1", "protocol": "modbus-tcp", "points": [
                {"name": "running", "type": "bool", "role": "running"},
                {"name": "kwh", "type": "f64", "role": "energy_kwh"},
                {"name": "temperature", "type": "f32"},
                {"name": "odd", "type": "f32", "role": "a role of a newer build"}]},
            {"name": "press-2", "protocol": "s7", "points": [
                {"name": "parts", "type": "u32", "role": "output_count"}]}]});
        let roles = roles_in(&meta);
        let key = |d: &str, p: &str| (d.to_owned(), p.to_owned());
        assert_eq!(roles.len(), 3);
        assert_eq!(
            roles.get(&key("press-1", "running")),
            Some(&PointRole::Running)
        );
        assert_eq!(
            roles.get(&key("press-2", "parts")),
            Some(&PointRole::OutputCount)
        );
        for role in roles.values() {
            assert_eq!(parse_role(i64::from(role_code(*role))).unwrap(), *role);
        }
        assert!(parse_role(9).is_err());
    }
}
