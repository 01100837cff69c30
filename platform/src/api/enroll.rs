//! `POST /api/v1/enroll`: a gateway trades an enrollment token for its id and MQTT
//! credentials; repeated failures from one address are slowed down (429).

use crate::http::error::{parse_json, too_many_failures};
use crate::http::{ApiError, AppState};
use crate::registry::RegistryError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fieldlink_wire::EnrollRequest;
use std::net::SocketAddr;
use std::sync::Arc;

pub(super) async fn enroll(
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
