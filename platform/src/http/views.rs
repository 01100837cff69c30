//! The enterprises and gateways as the API and the web UI show them, and CSV answers.

use crate::catalog::{District, DistrictKind, Industry};
use crate::clock::{now_ms, rfc3339};
use crate::profile::{MaturityLevel, Size, Specialised};
use crate::stats;
use crate::store::{Assessment, Enterprise, Gateway, Store, StoreError};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// An enterprise as the API shows it (`GET /api/v1/enterprises[/{credit_code}]`, and the
/// answer of `POST /api/v1/enterprises`). Times are RFC 3339.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnterpriseView {
    /// Its unified social credit code.
    pub credit_code: String,
    /// Its registered name.
    pub name: String,
    /// Its industry.
    pub industry: Industry,
    /// A pilot industry.
    pub pilot: bool,
    /// Its district or zone.
    pub district: District,
    /// District or functional zone.
    pub district_kind: DistrictKind,
    /// On the program's list.
    pub in_program: bool,
    /// When it was registered.
    pub registered_at: String,
    /// At least one gateway enrolled.
    pub enrolled: bool,
    /// A batch has arrived from one of its gateways.
    pub on_cloud: bool,
    /// A batch arrived in the last 7 days.
    pub active: bool,
    /// When its first batch arrived.
    pub on_cloud_since: Option<String>,
    /// When its last batch arrived.
    pub last_batch_at: Option<String>,
    /// The integrator it is assigned to, by credit code.
    pub integrator: Option<String>,
    /// When it was assigned to it.
    pub assigned_at: Option<String>,
    /// It lets the bureau and its district see its sample values.
    pub share_data_with_bureau: bool,
    /// Above or below designated size; `null` until recorded.
    pub size: Option<Size>,
    /// Its specialised class; `null` until recorded.
    pub specialised: Option<Specialised>,
    /// Its current maturity (its newest assessment); `null` if never assessed.
    pub maturity: Option<MaturityView>,
    /// Every maturity assessment, the newest first; only in the answers about one
    /// enterprise (`GET /api/v1/enterprises/{credit_code}` and its writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maturity_history: Option<Vec<AssessmentView>>,
    /// Its gateways (empty in the answer of a registration).
    pub gateways: Vec<GatewayView>,
}

/// An enterprise's current maturity as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MaturityView {
    /// The level, 1 to 4.
    pub level: MaturityLevel,
    /// When it was assessed (RFC 3339).
    pub assessed_at: String,
}

/// One maturity assessment as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssessmentView {
    /// The level found, 1 to 4.
    pub level: MaturityLevel,
    /// When it was assessed (RFC 3339).
    pub assessed_at: String,
    /// Who assessed it.
    pub assessor: String,
    /// When the platform recorded it (RFC 3339).
    pub recorded_at: String,
}

/// The API's view of a stored assessment.
pub fn assessment_view(a: &Assessment) -> AssessmentView {
    AssessmentView {
        level: a.level,
        assessed_at: rfc3339(a.assessed_at),
        assessor: a.assessor.clone(),
        recorded_at: rfc3339(a.recorded_at),
    }
}

/// A gateway as the API shows it. Times are RFC 3339.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayView {
    /// Its id (MQTT username and topic level).
    pub gateway_id: String,
    /// Its name within its enterprise.
    pub name: String,
    /// Connected, by its retained status.
    pub online: bool,
    /// Its last status's state, if it sent one.
    pub state: Option<fieldlink_wire::GatewayState>,
    /// The agent's version, by its status or else by its enrollment.
    pub agent_version: Option<String>,
    /// Its host name, by its enrollment.
    pub hostname: Option<String>,
    /// When its agent started, by its status.
    pub started_at: Option<String>,
    /// Batches waiting in its outbox, by its status.
    pub backlog_batches: Option<u64>,
    /// Batches its outbox dropped when full, by its status.
    pub evicted_batches: Option<u64>,
    /// Batches its outbox holds that await the platform's ack, by its status.
    pub awaiting_ack_batches: Option<u64>,
    /// When its last status arrived.
    pub status_at: Option<String>,
    /// When it was first enrolled.
    pub enrolled_at: String,
    /// When it was last enrolled (its current credentials issued).
    pub credentials_issued_at: String,
    /// When its first batch arrived.
    pub first_batch_at: Option<String>,
    /// When its last batch arrived.
    pub last_batch_at: Option<String>,
    /// Batches stored.
    pub batches: u64,
    /// Samples stored.
    pub samples: u64,
    /// The highest `seq` received.
    pub last_seq: Option<u64>,
    /// Batches missing between received ones (its open gaps).
    pub missing_batches: u64,
}

/// The API's view of a stored gateway.
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
        awaiting_ack_batches: status.and_then(|s| s.status.awaiting_ack_batches),
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

/// The API's view of a stored enterprise with the views of its gateways.
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
        integrator: e.integrator.clone(),
        assigned_at: e.assigned_at.map(rfc3339),
        share_data_with_bureau: e.share_data_with_bureau,
        size: e.size,
        specialised: e.specialised,
        maturity: e.maturity.map(|m| MaturityView {
            level: m.level,
            assessed_at: rfc3339(m.assessed_at),
        }),
        maturity_history: None,
        gateways,
    }
}

/// The API's view of one enterprise, with its gateways and its maturity history.
pub async fn enterprise_detail(
    store: &Store,
    e: &Enterprise,
) -> Result<EnterpriseView, StoreError> {
    let gateways = store.gateways(Some(&e.credit_code)).await?;
    let history = store.assessments(&e.credit_code).await?;
    let mut view = enterprise_view(e, gateways.iter().map(gateway_view).collect());
    view.maturity_history = Some(history.iter().map(assessment_view).collect());
    Ok(view)
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
    pub industry: Industry,
    /// Its district.
    pub district: District,
    /// On the program's list.
    pub in_program: bool,
    /// Its enrolled gateways.
    pub gateways: usize,
    /// When its first gateway was enrolled (RFC 3339).
    pub first_enrolled_at: String,
    /// The same in ms since the epoch, for the web UI's local times (not in the API).
    #[serde(skip)]
    pub first_enrolled_ms: i64,
}

/// The enrolled enterprises that `keep` accepts with no batch yet, by credit code.
pub async fn silent_list(
    store: &Store,
    keep: impl Fn(&Enterprise) -> bool,
) -> Result<Vec<SilentEnterprise>, StoreError> {
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
        .filter(|e| e.first_batch_at.is_none() && keep(e))
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
                first_enrolled_ms: first,
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
