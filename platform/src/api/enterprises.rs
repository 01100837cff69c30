//! The enterprises: registration and import (bureau), reads (scoped), enrollment tokens
//! (bureau, or the enterprise's integrator), assignment to an integrator (bureau), and the
//! enterprise's own choice to share its data with the bureau.

use crate::clock::{now_ms, rfc3339};
use crate::evidence;
use crate::http::auth::forbidden;
use crate::http::error::parse_json;
use crate::http::views::{enterprise_view, enterprise_views, gateway_view};
use crate::http::{ApiError, AppState, Principal};
use crate::registry::{EnterpriseInput, TokenInput};
use crate::scope;
use crate::store::{AssignOutcome, Enterprise};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The enterprise `credit_code` if `who` may see it; 404 otherwise, whether it exists or
/// not, so nothing says an enterprise outside the caller's scope exists.
pub(crate) async fn visible(
    state: &AppState,
    who: &Principal,
    credit_code: &str,
) -> Result<Enterprise, ApiError> {
    let code = credit_code.trim().to_ascii_uppercase();
    match state.store.enterprise(&code).await? {
        Some(e) if scope::sees_enterprise(&who.role, &e) => Ok(e),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no enterprise with credit code {code}"),
        )),
    }
}

/// One enterprise with its gateways, as the API shows it.
async fn with_gateways(state: &AppState, e: &Enterprise) -> Result<Response, ApiError> {
    let gateways = state.store.gateways(Some(&e.credit_code)).await?;
    let views = gateways.iter().map(gateway_view).collect();
    Ok(Json(enterprise_view(e, views)).into_response())
}

pub(super) async fn create(
    who: Principal,
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    who.bureau()?;
    let input: EnterpriseInput = parse_json(&body)?;
    let created = state.registry.create(&input).await?;
    let enterprise = state
        .store
        .enterprise(created.credit_code.as_str())
        .await?
        .ok_or_else(|| ApiError::internal(&"the new enterprise vanished"))?;
    Ok((
        StatusCode::CREATED,
        Json(enterprise_view(&enterprise, Vec::new())),
    )
        .into_response())
}

pub(super) async fn list(
    who: Principal,
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    let views = enterprise_views(&state.store, |e| scope::sees_enterprise(&who.role, e)).await?;
    Ok(Json(views).into_response())
}

pub(super) async fn get(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(credit_code): Path<String>,
) -> Result<Response, ApiError> {
    let enterprise = visible(&state, &who, &credit_code).await?;
    with_gateways(&state, &enterprise).await
}

pub(super) async fn import(
    who: Principal,
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    who.bureau()?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_csv",
            "the file is not UTF-8 text (save it as \"CSV UTF-8\")",
        )
    })?;
    let imported = state.registry.import_csv(text).await?;
    Ok((StatusCode::CREATED, Json(Imported { imported })).into_response())
}

/// The answer of `POST /api/v1/enterprises/import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    /// Enterprises registered.
    pub imported: usize,
}

pub(super) async fn issue_token(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(credit_code): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let enterprise = visible(&state, &who, &credit_code).await?;
    if !scope::installs_for(&who.role, &enterprise) {
        return Err(forbidden(&who));
    }
    let input: TokenInput = if body.iter().all(u8::is_ascii_whitespace) {
        TokenInput::default()
    } else {
        parse_json(&body)?
    };
    let issued = state
        .registry
        .issue_token(&enterprise.credit_code, &input)
        .await?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

/// The body of `PUT /api/v1/enterprises/{credit_code}/integrator`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignInput {
    /// The integrator's credit code.
    pub integrator: String,
}

pub(super) async fn assign(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(credit_code): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    who.bureau()?;
    let input: AssignInput = parse_json(&body)?;
    let enterprise = visible(&state, &who, &credit_code).await?;
    let integrator = input.integrator.trim().to_ascii_uppercase();
    match state
        .store
        .assign(&enterprise.credit_code, &integrator, now_ms())
        .await?
    {
        AssignOutcome::Assigned | AssignOutcome::Unchanged => {}
        AssignOutcome::NoEnterprise => {
            return Err(ApiError::internal(&"the enterprise vanished"));
        }
        AssignOutcome::NoIntegrator => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no integrator with credit code {integrator}"),
            ));
        }
    }
    let enterprise = visible(&state, &who, &enterprise.credit_code).await?;
    with_gateways(&state, &enterprise).await
}

/// One assignment as `GET /api/v1/enterprises/{credit_code}/assignments` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssignmentView {
    /// The integrator's credit code.
    pub integrator: String,
    /// When (RFC 3339).
    pub assigned_at: String,
}

pub(super) async fn assignments(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(credit_code): Path<String>,
) -> Result<Response, ApiError> {
    let enterprise = visible(&state, &who, &credit_code).await?;
    let history: Vec<AssignmentView> = state
        .store
        .assignments(&enterprise.credit_code)
        .await?
        .into_iter()
        .map(|a| AssignmentView {
            integrator: a.integrator,
            assigned_at: rfc3339(a.assigned_at),
        })
        .collect();
    Ok(Json(history).into_response())
}

/// The body of `PUT /api/v1/enterprises/{credit_code}/sharing`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharingInput {
    /// Let the bureau and the enterprise's district see its sample values.
    pub share_data_with_bureau: bool,
}

pub(super) async fn set_sharing(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(credit_code): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let enterprise = visible(&state, &who, &credit_code).await?;
    if !scope::sets_sharing_of(&who.role, &enterprise) {
        return Err(forbidden(&who));
    }
    let input: SharingInput = parse_json(&body)?;
    state
        .store
        .set_share_data_with_bureau(&enterprise.credit_code, input.share_data_with_bureau)
        .await?;
    tracing::info!(
        enterprise = %enterprise.credit_code,
        share = input.share_data_with_bureau,
        "data sharing with the bureau set"
    );
    let enterprise = visible(&state, &who, &enterprise.credit_code).await?;
    with_gateways(&state, &enterprise).await
}

/// The query of the evidence: `format=html` for the printable page.
#[derive(Debug, Default, Deserialize)]
pub(super) struct EvidenceQuery {
    format: Option<String>,
}

pub(super) async fn evidence(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(credit_code): Path<String>,
    Query(query): Query<EvidenceQuery>,
) -> Result<Response, ApiError> {
    let enterprise = visible(&state, &who, &credit_code).await?;
    match query.format.as_deref() {
        None | Some("json") => {}
        // The printable page is the web UI's, for a session (the browser follows).
        Some("html") => {
            let page = format!("/enterprises/{}/evidence", enterprise.credit_code);
            return Ok(Redirect::to(&page).into_response());
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format {other:?}: use json or html"
            )));
        }
    }
    let evidence = evidence::load(
        &state.store,
        &enterprise,
        now_ms(),
        state.utc_offset_minutes,
    )
    .await?;
    Ok(Json(evidence).into_response())
}
