//! The integrators' ranking (DESIGN.md, `GET /api/v1/stats/integrators`): for each
//! integrator, the enterprises assigned to it now, how many of them are enrolled, on the
//! cloud and active, the median days from assignment to first data, and the completeness
//! of their gateways' data over the last 7 days (batches stored / batches numbered, the
//! numbers a crash restart skipped not counted). Computed from stored data only.

use crate::clock::DAY_MS;
use crate::role::Role;
use crate::scope;
use crate::stats;
use crate::store::{Enterprise, Gateway, Integrator, Store, StoreError, WindowNumbering};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// One integrator's line of the ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegratorStats {
    /// Its credit code.
    pub integrator: String,
    /// Its registered name.
    pub name: String,
    /// Enterprises assigned to it now.
    pub assigned: u64,
    /// Of those, enterprises with at least one gateway enrolled.
    pub enrolled: u64,
    /// Of those, enterprises on the cloud (a batch has arrived).
    pub on_cloud: u64,
    /// Of those, enterprises with a batch in the last 7 days.
    pub active: u64,
    /// The median days from an enterprise's assignment to its first data, over the
    /// enterprises whose first data came after their assignment to this integrator
    /// (`null` without any).
    pub median_days_to_first_data: Option<f64>,
    /// Batches stored / batches numbered by its enterprises' gateways over the last 7
    /// days, 0 to 1 (`null` when none numbered any).
    pub completeness_7d: Option<f64>,
}

/// What the ranking is computed from, as stored.
pub struct RankingData<'a> {
    /// Every integrator.
    pub integrators: &'a [Integrator],
    /// Every enterprise.
    pub enterprises: &'a [Enterprise],
    /// Every gateway.
    pub gateways: &'a [Gateway],
    /// Every gateway's numbering over the last 7 days.
    pub numbering: &'a [WindowNumbering],
    /// Batches since this instant count as "active" (ms since the epoch).
    pub active_since: i64,
}

/// The ranking over the enterprises `keep` accepts: every integrator (the bureau's view),
/// or with `only_serving` those serving at least one of them (a district's view); the
/// most enterprises on the cloud first.
pub fn rank(
    data: &RankingData<'_>,
    keep: impl Fn(&Enterprise) -> bool,
    only_serving: bool,
) -> Vec<IntegratorStats> {
    let enrolled: HashSet<&str> = data
        .gateways
        .iter()
        .map(|g| g.credit_code.as_str())
        .collect();
    let gateways_of: HashMap<&str, Vec<&str>> =
        data.gateways.iter().fold(HashMap::new(), |mut by, g| {
            by.entry(g.credit_code.as_str())
                .or_default()
                .push(g.id.as_str());
            by
        });
    let numbering: HashMap<&str, &WindowNumbering> = data
        .numbering
        .iter()
        .map(|n| (n.gateway.as_str(), n))
        .collect();
    let mut lines: Vec<IntegratorStats> = data
        .integrators
        .iter()
        .filter_map(|integrator| {
            let served: Vec<&Enterprise> = data
                .enterprises
                .iter()
                .filter(|e| e.integrator.as_deref() == Some(integrator.credit_code.as_str()))
                .filter(|e| keep(e))
                .collect();
            if only_serving && served.is_empty() {
                return None;
            }
            let count =
                |f: &dyn Fn(&Enterprise) -> bool| served.iter().filter(|e| f(e)).count() as u64;
            let mut days: Vec<f64> = served
                .iter()
                .filter_map(|e| {
                    let (assigned, first) = (e.assigned_at?, e.first_batch_at?);
                    (first >= assigned).then(|| (first - assigned) as f64 / DAY_MS as f64)
                })
                .collect();
            let (stored, numbered) = served
                .iter()
                .flat_map(|e| {
                    gateways_of
                        .get(e.credit_code.as_str())
                        .into_iter()
                        .flatten()
                })
                .filter_map(|g| numbering.get(g))
                .fold((0u64, 0u64), |(s, n), w| (s + w.stored, n + w.numbered()));
            Some(IntegratorStats {
                integrator: integrator.credit_code.clone(),
                name: integrator.name.clone(),
                assigned: served.len() as u64,
                enrolled: count(&|e| enrolled.contains(e.credit_code.as_str())),
                on_cloud: count(&|e| e.first_batch_at.is_some()),
                active: count(&|e| e.last_batch_at.is_some_and(|t| t >= data.active_since)),
                median_days_to_first_data: median(&mut days).map(|d| (d * 10.0).round() / 10.0),
                completeness_7d: (numbered > 0).then(|| stored as f64 / numbered as f64),
            })
        })
        .collect();
    lines.sort_by(|a, b| {
        b.on_cloud
            .cmp(&a.on_cloud)
            .then(b.active.cmp(&a.active))
            .then(a.integrator.cmp(&b.integrator))
    });
    lines
}

/// Every integrator and the ranking as `role` sees it at `now`: every integrator for the
/// bureau; for a district, the integrators serving its enterprises, counted over those
/// only. Callers check that `role` may see a ranking at all.
pub async fn load(
    store: &Store,
    role: &Role,
    now: i64,
) -> Result<(Vec<Integrator>, Vec<IntegratorStats>), StoreError> {
    let since = stats::active_since(now);
    let (integrators, enterprises, gateways, numbering) = (
        store.integrators().await?,
        store.enterprises().await?,
        store.gateways(None).await?,
        store.numbering_since(since).await?,
    );
    let data = RankingData {
        integrators: &integrators,
        enterprises: &enterprises,
        gateways: &gateways,
        numbering: &numbering,
        active_since: since,
    };
    let lines = rank(
        &data,
        |e| scope::sees_enterprise(role, e),
        matches!(role, Role::District(_)),
    );
    Ok((integrators, lines))
}

/// The median of `values` (sorted in place), `None` when empty.
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The ranking as CSV, with the API's field names as its header.
pub fn to_csv(lines: &[IntegratorStats]) -> String {
    let optional = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let rows: Vec<[String; 8]> = lines
        .iter()
        .map(|l| {
            [
                l.integrator.clone(),
                l.name.clone(),
                l.assigned.to_string(),
                l.enrolled.to_string(),
                l.on_cloud.to_string(),
                l.active.to_string(),
                optional(l.median_days_to_first_data),
                optional(l.completeness_7d),
            ]
        })
        .collect();
    stats::to_csv(
        &[
            "integrator",
            "name",
            "assigned",
            "enrolled",
            "on_cloud",
            "active",
            "median_days_to_first_data",
            "completeness_7d",
        ],
        rows.iter().map(|r| r.as_slice()),
    )
}
