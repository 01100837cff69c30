//! The acceptance evidence of one enterprise (DESIGN.md, `GET
//! /api/v1/enterprises/{code}/evidence`): what a third party checks before the program
//! pays a subsidy for an enterprise "on the cloud": its registration and assignment, its
//! first enrollment and first data, its gateways with their devices and points, and over
//! the last 30 days the days with data, the completeness (batches stored / numbered, crash
//! windows not counted) and the samples stored. Computed from stored data only.

use crate::clock::{DAY_MS, rfc3339};
use crate::stats;
use crate::store::{Enterprise, Gateway, Store, StoreError};
use fieldlink_wire::Meta;
use serde::{Serialize, Serializer};

/// The window of the 30-day figures, in days.
pub const WINDOW_DAYS: u32 = 30;

/// One enterprise's evidence; times in ms since the epoch, written as RFC 3339.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// The enterprise: credit code and name.
    pub enterprise: Party,
    /// Its integrator now, if assigned.
    pub integrator: Option<Party>,
    /// When the bureau registered it.
    #[serde(serialize_with = "rfc3339_ms")]
    pub registered_at: i64,
    /// When it was assigned to its integrator.
    #[serde(serialize_with = "rfc3339_opt")]
    pub assigned_at: Option<i64>,
    /// When its first gateway was enrolled.
    #[serde(serialize_with = "rfc3339_opt")]
    pub first_enrolled_at: Option<i64>,
    /// When its first batch arrived.
    #[serde(serialize_with = "rfc3339_opt")]
    pub on_cloud_since: Option<i64>,
    /// Its gateways.
    pub gateways: Vec<GatewayEvidence>,
    /// Days of the last 30 (in the program's time zone) with at least one batch.
    pub days_with_data_30d: u64,
    /// Batches stored / numbered by its gateways over the last 30 days, 0 to 1 (`null`
    /// without any).
    pub completeness_30d: Option<f64>,
    /// Samples stored over the last 30 days.
    pub samples_30d: u64,
}

/// A party of the evidence: credit code and name.
#[derive(Debug, Clone, Serialize)]
pub struct Party {
    /// Its credit code.
    pub credit_code: String,
    /// Its registered name.
    pub name: String,
}

/// One gateway in the evidence.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayEvidence {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When its first batch arrived.
    #[serde(serialize_with = "rfc3339_opt")]
    pub first_batch_at: Option<i64>,
    /// When its last batch arrived.
    #[serde(serialize_with = "rfc3339_opt")]
    pub last_batch_at: Option<i64>,
    /// Devices in its catalogue.
    pub devices: usize,
    /// Points in its catalogue.
    pub points: usize,
}

/// The evidence of `enterprise` at `now`, days counted in the zone `utc_offset_minutes`.
pub async fn load(
    store: &Store,
    enterprise: &Enterprise,
    now: i64,
    utc_offset_minutes: i32,
) -> Result<Evidence, StoreError> {
    let code = enterprise.credit_code.as_str();
    let gateways = store.gateways(Some(code)).await?;
    let integrator = match &enterprise.integrator {
        Some(i) => store.integrator(i).await?.map(|i| Party {
            credit_code: i.credit_code,
            name: i.name,
        }),
        None => None,
    };
    let (from_day, to_day) = stats::last_days(now, WINDOW_DAYS, utc_offset_minutes);
    let days_with_data_30d = store.days_with_data(code, from_day, to_day).await?;
    let since = now - i64::from(WINDOW_DAYS) * DAY_MS;
    let (stored, numbered, samples) = store
        .numbering_since(since)
        .await?
        .iter()
        .filter(|n| gateways.iter().any(|g| g.id == n.gateway))
        .fold((0u64, 0u64, 0u64), |(s, n, x), w| {
            (s + w.stored, n + w.numbered(), x + w.samples)
        });
    Ok(Evidence {
        enterprise: Party {
            credit_code: code.to_owned(),
            name: enterprise.name.clone(),
        },
        integrator,
        registered_at: enterprise.registered_at,
        assigned_at: enterprise.assigned_at,
        first_enrolled_at: gateways.iter().map(|g| g.enrolled_at).min(),
        on_cloud_since: enterprise.first_batch_at,
        gateways: gateways.iter().map(gateway).collect(),
        days_with_data_30d,
        completeness_30d: (numbered > 0).then(|| stored as f64 / numbered as f64),
        samples_30d: samples,
    })
}

/// A gateway's evidence: its times and its catalogue's size.
fn gateway(g: &Gateway) -> GatewayEvidence {
    let meta: Option<Meta> = g
        .meta
        .as_ref()
        .and_then(|m| serde_json::from_value(m.clone()).ok());
    let (devices, points) = meta.map_or((0, 0), |m| {
        (
            m.devices.len(),
            m.devices.iter().map(|d| d.points.len()).sum(),
        )
    });
    GatewayEvidence {
        id: g.id.clone(),
        name: g.name.clone(),
        first_batch_at: g.first_batch_at,
        last_batch_at: g.last_batch_at,
        devices,
        points,
    }
}

/// A time in ms as RFC 3339.
fn rfc3339_ms<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

/// An optional time in ms as RFC 3339, or `null`.
fn rfc3339_opt<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&rfc3339(*ms)),
        None => s.serialize_none(),
    }
}
