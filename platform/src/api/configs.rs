//! A gateway's configuration from the platform: read it (with what the gateway runs), save
//! a new version (validated with the agent's own code, every error located), list the
//! versions, roll back. Saving is for who installs the enterprise's gateways (the bureau,
//! its integrator); reading for whoever sees the gateway.

use super::gateways::visible;
use crate::clock::now_ms;
use crate::gateway_config::{self, ConfigView};
use crate::http::auth::forbidden;
use crate::http::error::parse_json;
use crate::http::{ApiError, AppState, Principal};
use crate::scope;
use crate::store::ConfigVersion;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The versions listed, newest first.
const VERSIONS_LISTED: u32 = 100;

/// The answer of a save or a rollback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedConfig {
    /// The version saved.
    pub version: u64,
}

/// The body of a rollback.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackInput {
    /// The version whose text becomes the next version.
    pub version: u64,
}

/// Who saved a version: the user, or `admin` for the admin token.
fn author(who: &Principal) -> &str {
    who.username.as_deref().unwrap_or("admin")
}

pub(super) async fn get(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(gateway_id): Path<String>,
) -> Result<Response, ApiError> {
    let (gateway, _, _) = visible(&state, &who, &gateway_id).await?;
    let newest = state.store.config(&gateway.id, None).await?;
    Ok(Json(ConfigView::of(&gateway, newest)).into_response())
}

pub(super) async fn put(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(gateway_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (gateway, _, enterprise) = visible(&state, &who, &gateway_id).await?;
    if !scope::installs_for(&who.role, &enterprise) {
        return Err(forbidden(&who));
    }
    let toml = String::from_utf8(body.to_vec())
        .map_err(|e| ApiError::bad_request(format!("the config is not UTF-8: {e}")))?;
    let version =
        gateway_config::save(&state.store, &gateway.id, toml, author(&who), now_ms()).await?;
    tracing::info!(gateway = %gateway.id, version, by = author(&who), "gateway config saved");
    Ok(Json(SavedConfig { version }).into_response())
}

pub(super) async fn versions(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(gateway_id): Path<String>,
) -> Result<Response, ApiError> {
    let (gateway, _, _) = visible(&state, &who, &gateway_id).await?;
    let versions: Vec<ConfigVersion> = state
        .store
        .config_versions(&gateway.id, VERSIONS_LISTED)
        .await?;
    Ok(Json(versions).into_response())
}

pub(super) async fn roll_back(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(gateway_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (gateway, _, enterprise) = visible(&state, &who, &gateway_id).await?;
    if !scope::installs_for(&who.role, &enterprise) {
        return Err(forbidden(&who));
    }
    let input: RollbackInput = parse_json(&body)?;
    let version = gateway_config::roll_back(
        &state.store,
        &gateway.id,
        input.version,
        author(&who),
        now_ms(),
    )
    .await?;
    tracing::info!(gateway = %gateway.id, version, from = input.version, by = author(&who), "gateway config rolled back");
    Ok((StatusCode::CREATED, Json(SavedConfig { version })).into_response())
}
