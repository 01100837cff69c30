//! The enterprises: registration and import (bureau), reads (scoped, filtered by the
//! plan's classes), enrollment tokens (bureau, or the enterprise's integrator), assignment
//! to an integrator (bureau), size, specialised class and maturity assessments (bureau),
//! and the enterprise's own choice to share its data with the bureau.

use crate::clock::{now_ms, rfc3339};
use crate::evidence;
use crate::filter::{EnterpriseFilter, FilterQuery};
use crate::http::auth::forbidden;
use crate::http::error::parse_json;
use crate::http::views::{enterprise_detail, enterprise_views};
use crate::http::{ApiError, AppState, Principal};
use crate::profile::{Size, Specialised};
use crate::registry::{EnterpriseInput, MaturityInput, TokenInput};
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

/// One enterprise with its gateways and maturity history, as the API shows it.
async fn with_gateways(state: &AppState, e: &Enterprise) -> Result<Response, ApiError> {
    Ok(Json(enterprise_detail(&state.store, e).await?).into_response())
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
        Json(enterprise_detail(&state.store, &enterprise).await?),
    )
        .into_response())
}

pub(super) async fn list(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Query(query): Query<FilterQuery>,
) -> Result<Response, ApiError> {
    let filter =
        EnterpriseFilter::parse(&query).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let views = enterprise_views(&state.store, |e| {
        scope::sees_enterprise(&who.role, e) && filter.keeps(e)
    })
    .await?;
    Ok(Json(views).into_response())
}

/// The body of `PUT /api/v1/enterprises/{credit_code}`: what to change, each field only
/// if present, each by who may change it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnterpriseUpdate {
    /// Above or below designated size (the bureau).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
    /// The specialised class (the bureau).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specialised: Option<Specialised>,
    /// Whether the enterprise shares its sample values with the bureau (the enterprise
    /// itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_data_with_bureau: Option<bool>,
}

pub(super) async fn update(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(credit_code): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let enterprise = visible(&state, &who, &credit_code).await?;
    let input: EnterpriseUpdate = parse_json(&body)?;
    let classes = input.size.is_some() || input.specialised.is_some();
    if !classes && input.share_data_with_bureau.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: send size, specialised or share_data_with_bureau",
        ));
    }
    if (classes && !scope::records_profile_of(&who.role, &enterprise))
        || (input.share_data_with_bureau.is_some()
            && !scope::sets_sharing_of(&who.role, &enterprise))
    {
        return Err(forbidden(&who));
    }
    if classes {
        state
            .registry
            .set_classes(&enterprise.credit_code, input.size, input.specialised)
            .await?;
    }
    if let Some(share) = input.share_data_with_bureau {
        share_data(&state, &enterprise, share).await?;
    }
    let enterprise = visible(&state, &who, &enterprise.credit_code).await?;
    with_gateways(&state, &enterprise).await
}

pub(super) async fn record_maturity(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(credit_code): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let enterprise = visible(&state, &who, &credit_code).await?;
    if !scope::records_profile_of(&who.role, &enterprise) {
        return Err(forbidden(&who));
    }
    let input: MaturityInput = parse_json(&body)?;
    state
        .registry
        .record_assessment(&enterprise.credit_code, &input)
        .await?;
    let enterprise = visible(&state, &who, &enterprise.credit_code).await?;
    with_gateways(&state, &enterprise).await
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
    share_data(&state, &enterprise, input.share_data_with_bureau).await?;
    let enterprise = visible(&state, &who, &enterprise.credit_code).await?;
    with_gateways(&state, &enterprise).await
}

/// Turns `enterprise`'s sharing with the bureau on or off (its caller checked that it may).
async fn share_data(
    state: &AppState,
    enterprise: &Enterprise,
    share: bool,
) -> Result<(), ApiError> {
    state
        .store
        .set_share_data_with_bureau(&enterprise.credit_code, share)
        .await?;
    tracing::info!(
        enterprise = %enterprise.credit_code,
        share,
        "data sharing with the bureau set"
    );
    Ok(())
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
