//! The integrators: registration (bureau), the list with their counts and the ranking
//! (bureau; a district sees those serving its enterprises, counted there only).

use super::format::{FormatQuery, wants_csv};
use crate::clock::{now_ms, rfc3339};
use crate::http::error::parse_json;
use crate::http::views::csv_response;
use crate::http::{ApiError, AppState, Principal};
use crate::ranking::{self, IntegratorStats};
use crate::registry::IntegratorInput;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// An integrator as `GET /api/v1/integrators` lists it: its registration and its counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntegratorView {
    /// Who to call.
    pub contact: Option<String>,
    /// When it was registered (RFC 3339).
    pub registered_at: String,
    /// Its counts, as in the ranking.
    #[serde(flatten)]
    pub counts: IntegratorStats,
}

pub(super) async fn create(
    who: Principal,
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    who.bureau()?;
    let input: IntegratorInput = parse_json(&body)?;
    let created = state.registry.register_integrator(&input).await?;
    let integrator = state
        .store
        .integrator(created.credit_code.as_str())
        .await?
        .ok_or_else(|| ApiError::internal(&"the new integrator vanished"))?;
    Ok((
        StatusCode::CREATED,
        Json(IntegratorView {
            contact: integrator.contact.clone(),
            registered_at: rfc3339(integrator.registered_at),
            counts: IntegratorStats {
                integrator: integrator.credit_code,
                name: integrator.name,
                assigned: 0,
                enrolled: 0,
                on_cloud: 0,
                active: 0,
                median_days_to_first_data: None,
                completeness_7d: None,
            },
        }),
    )
        .into_response())
}

pub(super) async fn list(
    who: Principal,
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    who.bureau_or_district()?;
    let (registered, lines) = ranking::load(&state.store, &who.role, now_ms()).await?;
    let views: Vec<IntegratorView> = lines
        .into_iter()
        .filter_map(|counts| {
            let i = registered
                .iter()
                .find(|i| i.credit_code == counts.integrator)?;
            Some(IntegratorView {
                contact: i.contact.clone(),
                registered_at: rfc3339(i.registered_at),
                counts,
            })
        })
        .collect();
    Ok(Json(views).into_response())
}

pub(super) async fn ranking(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Query(query): Query<FormatQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    who.bureau_or_district()?;
    let csv = wants_csv(&query, &headers)?;
    let (_, lines) = ranking::load(&state.store, &who.role, now_ms()).await?;
    Ok(if csv {
        csv_response("integrators.csv", ranking::to_csv(&lines))
    } else {
        Json(lines).into_response()
    })
}
