//! The HTTP API (version 1), JSON over HTTP; errors are `{"error", "detail"}` with a
//! fitting status. Bureau calls carry `Authorization: Bearer <token>`; enrollment carries
//! its token in the body. Routes:
//!
//! | method and path | who | answer |
//! |---|---|---|
//! | `GET /healthz` | anyone | `ok` |
//! | `POST /api/v1/enterprises` | bureau | 201 the enterprise; 400; 409 if it exists |
//! | `GET /api/v1/enterprises` | bureau | the enterprises with on-cloud state and gateways |
//! | `POST /api/v1/enterprises/import` | bureau | `text/csv` → 201 `{"imported"}`; 400/409 with `errors: [{line, error}]` |
//! | `GET /api/v1/enterprises/{credit_code}` | bureau | one enterprise |
//! | `POST /api/v1/enterprises/{credit_code}/tokens` | bureau | 201 `{"token", "expires_at", "max_gateways"}` |
//! | `POST /api/v1/enroll` | integrator | 201 `{"gateway_id", "enterprise", "mqtt"}`; 401; 409; 429 after repeated failures from the address |
//! | `GET /api/v1/gateways/{gateway_id}` | bureau | status, counters, gaps, crash windows, catalogue |
//! | `GET /api/v1/gateways/{gateway_id}/latest` | bureau | latest sample of each point |
//! | `GET /api/v1/stats/onboarding` | bureau | the counts (`?format=csv` or `Accept: text/csv`) |
//! | `GET /api/v1/stats/onboarding/daily?days=N` | bureau | daily series (CSV likewise) |
//! | `GET /api/v1/stats/onboarding/silent` | bureau | enrolled enterprises with no batch yet |
//! | `GET /api/v1/stats/ingest` | bureau | the ingest's counters, the open gaps |
//!
//! A bureau user's web UI session (cookie) may make the bureau's GET calls too, so the
//! dashboard's CSV links and charts use this API; writes always need the bearer token.
//! The request's state, errors, authentication and the shared views are in [`crate::http`];
//! the server merges these routes with the web UI's (`crate::server`).

pub use crate::http::MAX_BODY_BYTES;

use crate::clock::now_ms;
use crate::http::error::{parse_json, too_many_failures};
use crate::http::views::{
    GatewayView, csv_response, enterprise_view, enterprise_views, gateway_view, silent_list,
};
use crate::http::{ApiError, AppState, Bureau};
use crate::ingest::IngestStats;
use crate::registry::{EnterpriseInput, RegistryError, TokenInput};
use crate::stats;
use crate::store::{CrashWindow, Gap, OpenGaps};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fieldlink_wire::{EnrollRequest, Sample};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;

/// The API's routes (the server adds the UI's, the body limit and the fallback).
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/api/v1/enterprises",
            post(create_enterprise).get(list_enterprises),
        )
        .route("/api/v1/enterprises/import", post(import_enterprises))
        .route("/api/v1/enterprises/{credit_code}", get(get_enterprise))
        .route(
            "/api/v1/enterprises/{credit_code}/tokens",
            post(issue_token),
        )
        .route("/api/v1/enroll", post(enroll))
        .route("/api/v1/gateways/{gateway_id}", get(get_gateway))
        .route("/api/v1/gateways/{gateway_id}/latest", get(latest_values))
        .route("/api/v1/stats/onboarding", get(onboarding))
        .route("/api/v1/stats/onboarding/daily", get(onboarding_daily))
        .route("/api/v1/stats/onboarding/silent", get(silent))
        .route("/api/v1/stats/ingest", get(ingest_stats))
}

async fn create_enterprise(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
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

async fn list_enterprises(
    _: Bureau,
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    Ok(Json(enterprise_views(&state.store, |_| true).await?).into_response())
}

async fn get_enterprise(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    Path(credit_code): Path<String>,
) -> Result<Response, ApiError> {
    let code = credit_code.trim().to_ascii_uppercase();
    let Some(enterprise) = state.store.enterprise(&code).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no enterprise with credit code {code}"),
        ));
    };
    let gateways = state.store.gateways(Some(&code)).await?;
    let views = gateways.iter().map(gateway_view).collect();
    Ok(Json(enterprise_view(&enterprise, views)).into_response())
}

async fn import_enterprises(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
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

async fn issue_token(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    Path(credit_code): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input: TokenInput = if body.iter().all(u8::is_ascii_whitespace) {
        TokenInput::default()
    } else {
        parse_json(&body)?
    };
    let issued = state.registry.issue_token(&credit_code, &input).await?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

async fn enroll(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response, ApiError> {
    state
        .failures
        .check(peer.ip())
        .map_err(|retry| too_many_failures(retry, "enrollments"))?;
    let input: EnrollRequest = parse_json(&body)?;
    match state.registry.enroll(&input).await {
        Ok(enrollment) => Ok((StatusCode::CREATED, Json(enrollment)).into_response()),
        Err(e) => {
            if matches!(
                e,
                RegistryError::UnknownToken | RegistryError::ExpiredToken { .. }
            ) {
                tracing::info!(peer = %peer.ip(), error = %e, "enrollment refused");
                state.failures.failed(peer.ip());
            }
            Err(e.into())
        }
    }
}

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

async fn get_gateway(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    Path(gateway_id): Path<String>,
) -> Result<Response, ApiError> {
    let Some((gateway, gaps)) = state.store.gateway(&gateway_id, 1000).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no gateway {gateway_id}"),
        ));
    };
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

async fn latest_values(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    Path(gateway_id): Path<String>,
) -> Result<Response, ApiError> {
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

#[derive(Debug, Default, Deserialize)]
struct FormatQuery {
    format: Option<String>,
    days: Option<u32>,
}

fn wants_csv(query: &FormatQuery, headers: &HeaderMap) -> Result<bool, ApiError> {
    match query.format.as_deref() {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "format {other:?}: use csv or json"
        ))),
        None => Ok(headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/csv"))),
    }
}

async fn onboarding(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    Query(query): Query<FormatQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let csv = wants_csv(&query, &headers)?;
    let rows = state
        .store
        .onboarding(stats::active_since(now_ms()))
        .await?;
    let counts = stats::onboarding(&rows, state.targets);
    Ok(if csv {
        csv_response("onboarding.csv", stats::onboarding_csv(&counts))
    } else {
        Json(counts).into_response()
    })
}

async fn onboarding_daily(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    Query(query): Query<FormatQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let csv = wants_csv(&query, &headers)?;
    let days = query.days.unwrap_or(30);
    if !(1..=3660).contains(&days) {
        return Err(ApiError::bad_request("days must be 1 to 3660"));
    }
    let (from, to) = stats::last_days(now_ms(), days, state.utc_offset_minutes);
    let firsts = state.store.on_cloud_since().await?;
    let active = state
        .store
        .active_days(from - stats::ACTIVE_DAYS + 1, to)
        .await?;
    let series = stats::daily(&firsts, &active, from, to, state.utc_offset_minutes);
    Ok(if csv {
        csv_response("onboarding-daily.csv", stats::daily_csv(&series))
    } else {
        Json(series).into_response()
    })
}

async fn silent(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    Query(query): Query<FormatQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let csv = wants_csv(&query, &headers)?;
    let silent = silent_list(&state.store).await?;
    if csv {
        let rows: Vec<[String; 7]> = silent
            .iter()
            .map(|s| {
                [
                    s.credit_code.clone(),
                    s.name.clone(),
                    s.industry.code().to_owned(),
                    s.district.name().to_owned(),
                    s.in_program.to_string(),
                    s.gateways.to_string(),
                    s.first_enrolled_at.clone(),
                ]
            })
            .collect();
        let text = stats::to_csv(
            &[
                "credit_code",
                "name",
                "industry",
                "district",
                "in_program",
                "gateways",
                "first_enrolled_at",
            ],
            rows.iter().map(|r| r.as_slice()),
        );
        return Ok(csv_response("silent.csv", text));
    }
    Ok(Json(silent).into_response())
}

/// This instance's ingest counters, and the open gaps of all gateways (the database's
/// figure, the same on every instance; `null` when the database cannot be read, so the
/// counters still answer during a database outage).
#[derive(Debug, Serialize, Deserialize)]
pub struct IngestStatsBody {
    /// This instance's counters.
    #[serde(flatten)]
    pub counters: IngestStats,
    /// The open gaps of all gateways; `None` when the database cannot be read.
    pub open_gaps: Option<OpenGaps>,
}

async fn ingest_stats(_: Bureau, State(state): State<Arc<AppState>>) -> Json<IngestStatsBody> {
    let open_gaps = match state.store.open_gaps().await {
        Ok(gaps) => Some(gaps),
        Err(e) => {
            tracing::warn!(error = %e, "cannot count the open gaps for /api/v1/stats/ingest");
            None
        }
    };
    Json(IngestStatsBody {
        counters: state.counters.snapshot(),
        open_gaps,
    })
}
