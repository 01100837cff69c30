//! The gateways: the fleet in scope (paged, sorted, filtered, or as CSV), one gateway's
//! state and counters (scoped like its enterprise) and its latest values (only for who
//! may see the enterprise's values).

use super::enterprises;
use crate::clock::now_ms;
use crate::fleet::{self, FleetError, FleetQuery};
use crate::http::views::{GatewayView, csv_response, gateway_view};
use crate::http::{ApiError, AppState, Principal};
use crate::scope;
use crate::store::{CrashWindow, Enterprise, Gap, Gateway};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fieldlink_wire::Sample;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One gateway as `GET /api/v1/gateways/{gateway_id}` shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct GatewayDetail {
    /// Its enterprise's credit code.
    pub credit_code: String,
    /// Its state and counters.
    #[serde(flatten)]
    pub gateway: GatewayView,
    /// Its open gaps (the first 1,000).
    pub gaps: Vec<Gap>,
    /// Its crash windows (the first 1,000).
    pub crash_windows: Vec<CrashWindow>,
    /// Its device and point catalogue, as it published it.
    pub meta: Option<serde_json::Value>,
}

/// The gateway `gateway_id` with its first open gaps and its enterprise, if `who` may see
/// the enterprise; 404 otherwise, whether it exists or not.
pub(super) async fn visible(
    state: &AppState,
    who: &Principal,
    gateway_id: &str,
) -> Result<(Gateway, Vec<Gap>, Enterprise), ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no gateway {gateway_id}"),
        )
    };
    let (gateway, gaps) = state
        .store
        .gateway(gateway_id, 1000)
        .await?
        .ok_or_else(not_found)?;
    let enterprise = enterprises::visible(state, who, &gateway.credit_code)
        .await
        .map_err(|_| not_found())?;
    Ok((gateway, gaps, enterprise))
}

pub(super) async fn get(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(gateway_id): Path<String>,
) -> Result<Response, ApiError> {
    let (gateway, gaps, _) = visible(&state, &who, &gateway_id).await?;
    let crash_windows = state.store.crash_windows(&gateway_id, 1000).await?;
    Ok(Json(GatewayDetail {
        credit_code: gateway.credit_code.clone(),
        gateway: gateway_view(&gateway),
        gaps,
        crash_windows,
        meta: gateway.meta.clone(),
    })
    .into_response())
}

pub(super) async fn latest(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(gateway_id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, _, enterprise) = visible(&state, &who, &gateway_id).await?;
    if !scope::sees_values(&who.role, &enterprise) {
        return Err(not_shared(&enterprise));
    }
    let values = state.store.latest_values(&gateway_id).await?;
    // The contract's sample shape.
    let samples: Vec<Sample> = values
        .into_iter()
        .map(|v| Sample {
            device: v.device.into(),
            point: v.point.into(),
            ts: v.ts,
            value: v.value,
            quality: v.quality,
        })
        .collect();
    Ok(Json(samples).into_response())
}

/// The 403 for sample values the enterprise does not share with the caller.
pub(crate) fn not_shared(enterprise: &Enterprise) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "not_shared",
        format!(
            "enterprise {} does not share its data with the bureau",
            enterprise.credit_code
        ),
    )
}

pub(super) async fn list(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Query(query): Query<FleetQuery>,
) -> Result<Response, ApiError> {
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format {other:?}: use csv or json"
            )));
        }
    };
    let page = fleet::load(&state.store, &who.role, &query, now_ms(), csv)
        .await
        .map_err(fleet_error)?;
    Ok(if csv {
        csv_response("gateways.csv", fleet::to_csv(&page.rows))
    } else {
        Json(page).into_response()
    })
}

/// The answer for a fleet error: 400 for a bad query, 500 for the store.
pub(crate) fn fleet_error(e: FleetError) -> ApiError {
    match e {
        FleetError::Store(e) => e.into(),
        e => ApiError::bad_request(e.to_string()),
    }
}
