//! The counts: onboarding (the bureau's, and a district's own), its daily series, the
//! silent enterprises, and the ingest's counters.

use super::format::{FormatQuery, wants_csv};
use crate::clock::now_ms;
use crate::http::views::{csv_response, silent_list};
use crate::http::{ApiError, AppState, Principal};
use crate::ingest::IngestStats;
use crate::role::Role;
use crate::scope;
use crate::stats;
use crate::store::OpenGaps;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub(super) async fn onboarding(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Query(query): Query<FormatQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    who.bureau_or_district()?;
    let csv = wants_csv(&query, &headers)?;
    let mut rows = state
        .store
        .onboarding(stats::active_since(now_ms()))
        .await?;
    if let Role::District(district) = who.role {
        rows.retain(|r| r.district == district);
    }
    let counts = stats::onboarding(&rows, state.targets);
    Ok(if csv {
        csv_response("onboarding.csv", stats::onboarding_csv(&counts))
    } else {
        Json(counts).into_response()
    })
}

pub(super) async fn onboarding_daily(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Query(query): Query<FormatQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    who.bureau()?;
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

pub(super) async fn silent(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Query(query): Query<FormatQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    who.bureau_or_district()?;
    let csv = wants_csv(&query, &headers)?;
    let silent = silent_list(&state.store, |e| scope::sees_enterprise(&who.role, e)).await?;
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

pub(super) async fn ingest(
    who: Principal,
    State(state): State<Arc<AppState>>,
) -> Result<Json<IngestStatsBody>, ApiError> {
    who.bureau()?;
    let open_gaps = match state.store.open_gaps().await {
        Ok(gaps) => Some(gaps),
        Err(e) => {
            tracing::warn!(error = %e, "cannot count the open gaps for /api/v1/stats/ingest");
            None
        }
    };
    Ok(Json(IngestStatsBody {
        counters: state.counters.snapshot(),
        open_gaps,
    }))
}
