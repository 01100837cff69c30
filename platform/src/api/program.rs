//! The plan's targets with their progress (`GET /api/v1/stats/program`): the city's for the
//! bureau, a district's own for its users ([`crate::program`]).

use super::format::{FormatQuery, wants_csv};
use crate::clock::now_ms;
use crate::http::views::csv_response;
use crate::http::{ApiError, AppState, Principal};
use crate::program;
use crate::role::Role;
use crate::stats;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub(super) async fn program(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Query(query): Query<FormatQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    who.bureau_or_district()?;
    let csv = wants_csv(&query, &headers)?;
    let now = now_ms();
    let rows = state.store.onboarding(stats::active_since(now)).await?;
    let district = match who.role {
        Role::District(district) => Some(district),
        _ => None,
    };
    let figures = program::program(&rows, &state.targets, district, now);
    Ok(if csv {
        csv_response("program.csv", program::program_csv(&figures))
    } else {
        Json(figures).into_response()
    })
}
