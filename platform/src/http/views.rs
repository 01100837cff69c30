//! The enterprises and gateways as the API and the web UI show them, and CSV answers.

use crate::catalog::DistrictKind;
use crate::clock::{now_ms, rfc3339};
use crate::stats;
use crate::store::{Enterprise, Gateway, Store, StoreError};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::HashMap;

/// An enterprise as the API shows it.
#[derive(Debug, Serialize)]
pub struct EnterpriseView {
    credit_code: String,
    name: String,
    industry: crate::catalog::Industry,
    pilot: bool,
    district: crate::catalog::District,
    district_kind: DistrictKind,
    in_program: bool,
    registered_at: String,
    enrolled: bool,
    on_cloud: bool,
    active: bool,
    on_cloud_since: Option<String>,
    last_batch_at: Option<String>,
    gateways: Vec<GatewayView>,
}

/// A gateway as the API shows it.
#[derive(Debug, Serialize)]
pub struct GatewayView {
    gateway_id: String,
    name: String,
    online: bool,
    state: Option<fieldlink_wire::GatewayState>,
    agent_version: Option<String>,
    hostname: Option<String>,
    started_at: Option<String>,
    backlog_batches: Option<u64>,
    evicted_batches: Option<u64>,
    status_at: Option<String>,
    enrolled_at: String,
    credentials_issued_at: String,
    first_batch_at: Option<String>,
    last_batch_at: Option<String>,
    batches: u64,
    samples: u64,
    last_seq: Option<u64>,
    missing_batches: u64,
}

pub fn gateway_view(g: &Gateway) -> GatewayView {
    let status = g.status.as_ref();
    GatewayView {
        gateway_id: g.id.clone(),
        name: g.name.clone(),
        online: status.is_some_and(|s| s.online()),
        state: status.map(|s| s.status.state),
        agent_version: status
            .and_then(|s| s.status.version.clone())
            .or_else(|| g.agent_version.clone()),
        hostname: g.hostname.clone(),
        started_at: status.and_then(|s| s.status.started_at).map(rfc3339),
        backlog_batches: status.and_then(|s| s.status.backlog_batches),
        evicted_batches: status.and_then(|s| s.status.evicted_batches),
        status_at: status.map(|s| rfc3339(s.received_at)),
        enrolled_at: rfc3339(g.enrolled_at),
        credentials_issued_at: rfc3339(g.credentials_issued_at),
        first_batch_at: g.first_batch_at.map(rfc3339),
        last_batch_at: g.last_batch_at.map(rfc3339),
        batches: g.batches,
        samples: g.samples,
        last_seq: g.max_seq,
        missing_batches: g.missing_batches,
    }
}

pub fn enterprise_view(e: &Enterprise, gateways: Vec<GatewayView>) -> EnterpriseView {
    let active_since = stats::active_since(now_ms());
    EnterpriseView {
        credit_code: e.credit_code.clone(),
        name: e.name.clone(),
        industry: e.industry,
        pilot: e.industry.pilot(),
        district: e.district,
        district_kind: e.district.kind(),
        in_program: e.in_program,
        registered_at: rfc3339(e.registered_at),
        enrolled: !gateways.is_empty(),
        on_cloud: e.first_batch_at.is_some(),
        active: e.last_batch_at.is_some_and(|t| t >= active_since),
        on_cloud_since: e.first_batch_at.map(rfc3339),
        last_batch_at: e.last_batch_at.map(rfc3339),
        gateways,
    }
}

/// The enterprises that `keep` accepts with their gateways, by credit code.
pub async fn enterprise_views(
    store: &Store,
    keep: impl Fn(&Enterprise) -> bool,
) -> Result<Vec<EnterpriseView>, StoreError> {
    let enterprises = store.enterprises().await?;
    let mut by_enterprise: HashMap<String, Vec<GatewayView>> = HashMap::new();
    for g in store.gateways(None).await? {
        by_enterprise
            .entry(g.credit_code.clone())
            .or_default()
            .push(gateway_view(&g));
    }
    Ok(enterprises
        .iter()
        .filter(|e| keep(e))
        .map(|e| enterprise_view(e, by_enterprise.remove(&e.credit_code).unwrap_or_default()))
        .collect())
}

/// An enrolled enterprise that has delivered no batch yet.
#[derive(Serialize)]
pub struct SilentEnterprise {
    /// Its credit code.
    pub credit_code: String,
    /// Its registered name.
    pub name: String,
    /// Its industry.
    pub industry: crate::catalog::Industry,
    /// Its district.
    pub district: crate::catalog::District,
    /// On the program's list.
    pub in_program: bool,
    /// Its enrolled gateways.
    pub gateways: usize,
    /// When its first gateway was enrolled (RFC 3339).
    pub first_enrolled_at: String,
}

/// The enrolled enterprises with no batch yet, by credit code.
pub async fn silent_list(store: &Store) -> Result<Vec<SilentEnterprise>, StoreError> {
    let mut enrolled: HashMap<String, (usize, i64)> = HashMap::new();
    for g in store.gateways(None).await? {
        let entry = enrolled.entry(g.credit_code).or_insert((0, i64::MAX));
        entry.0 += 1;
        entry.1 = entry.1.min(g.enrolled_at);
    }
    Ok(store
        .enterprises()
        .await?
        .into_iter()
        .filter(|e| e.first_batch_at.is_none())
        .filter_map(|e| {
            let &(gateways, first) = enrolled.get(&e.credit_code)?;
            Some(SilentEnterprise {
                credit_code: e.credit_code,
                name: e.name,
                industry: e.industry,
                district: e.district,
                in_program: e.in_program,
                gateways,
                first_enrolled_at: rfc3339(first),
            })
        })
        .collect())
}

/// A CSV file answer, with the byte-order mark spreadsheet programs need.
pub fn csv_response(name: &str, text: String) -> Response {
    // The byte-order mark makes spreadsheet programs read the Chinese names as UTF-8.
    let mut body = String::with_capacity(text.len() + 3);
    body.push('\u{feff}');
    body.push_str(&text);
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}
