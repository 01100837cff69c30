//! The industry monitoring: `GET /api/v1/stats/monitoring?by=industry|district&days=N`
//! (the bureau the city's, a district user its district's), JSON or CSV.

use super::format::{FormatQuery, wants_csv};
use crate::clock::now_ms;
use crate::http::views::csv_response;
use crate::http::{ApiError, AppState, Principal};
use crate::monitoring::{self, By};
use crate::role::Role;
use crate::stats;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

/// The most days one answer covers.
const MAX_DAYS: u32 = 90;
/// The days an answer covers when the query does not say.
const DEFAULT_DAYS: u32 = 7;

/// The query of the monitoring.
#[derive(Debug, Deserialize)]
pub(super) struct MonitoringQuery {
    /// `industry` or `district`.
    by: Option<String>,
    /// Days, ending today.
    days: Option<u32>,
    /// `csv` or `json`.
    format: Option<String>,
}

pub(super) async fn monitoring(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Query(query): Query<MonitoringQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    who.bureau_or_district()?;
    let format = FormatQuery {
        format: query.format,
        days: None,
    };
    let csv = wants_csv(&format, &headers)?;
    let by = query
        .by
        .as_deref()
        .and_then(By::parse)
        .ok_or_else(|| ApiError::bad_request("by must be industry or district"))?;
    let days = query.days.unwrap_or(DEFAULT_DAYS);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ApiError::bad_request(format!(
            "days must be 1 to {MAX_DAYS}"
        )));
    }
    let now = now_ms();
    let (from, to) = stats::last_days(now, days, state.utc_offset_minutes);
    let rows = state.store.monitoring(from, to).await?;
    let district = match who.role {
        Role::District(district) => Some(district),
        _ => None,
    };
    let answer = monitoring::monitoring(&rows, by, district, from, to, now);
    Ok(if csv {
        let name = format!("monitoring-{}.csv", by.as_str());
        csv_response(&name, monitoring::monitoring_csv(&answer))
    } else {
        Json(answer).into_response()
    })
}
