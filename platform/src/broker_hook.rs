//! The broker hook: HTTP authentication and authorization for a clustered broker (EMQX's
//! HTTP authenticator and authorizer), the city-scale counterpart of the mosquitto
//! password and ACL files. The broker asks on every connect and (cached by the broker)
//! on publish and subscribe; the answers come from the shared database, so every broker
//! node and every platform instance agree, and an enrollment counts at once.
//!
//! A gateway connects with its id and enrollment password (checked against the stored
//! hash); what it and the ingest user (the platform's own `--broker-username` and
//! password) may publish and subscribe to is [`crate::broker_acl`]'s rules, the same the
//! mosquitto ACL file states.
//!
//! The routes are on only when a hook token is configured, and every call must carry it
//! (`Authorization: Bearer <token>`, a header the broker's HTTP settings add).
//!
//! | method and path | body (the broker's placeholders) | answer |
//! |---|---|---|
//! | `POST /api/v1/broker/authn` | `{"username", "password", "clientid"}` | `{"result": "allow"\|"deny", "is_superuser": false}` |
//! | `POST /api/v1/broker/authz` | `{"username", "topic", "action"}` (`publish` or `subscribe`) | `{"result": "allow"\|"deny"}` |

use crate::http::ApiError;
use crate::secret::{constant_time_eq, sha256_hex, verify_mosquitto_hash};
use crate::store::Store;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What the hook needs.
pub struct HookState {
    /// Where gateways' password hashes are.
    pub store: Store,
    /// SHA-256 of the token the broker presents.
    pub token_sha256: String,
    /// The ingest's MQTT username and password, if the platform knows them.
    pub ingest: Option<(String, String)>,
}

/// The hook's routes.
pub fn router(state: Arc<HookState>) -> Router {
    Router::new()
        .route("/api/v1/broker/authn", post(authenticate))
        .route("/api/v1/broker/authz", post(authorize))
        .with_state(state)
}

/// A connect to check.
#[derive(Debug, Deserialize)]
struct AuthnRequest {
    username: String,
    password: String,
}

/// A publish or subscribe to check.
#[derive(Debug, Deserialize)]
struct AuthzRequest {
    username: String,
    topic: String,
    action: String,
}

/// The broker's answer format.
#[derive(Debug, Serialize)]
struct Verdict {
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_superuser: Option<bool>,
}

impl Verdict {
    fn new(allow: bool, authn: bool) -> Json<Verdict> {
        Json(Verdict {
            result: if allow { "allow" } else { "deny" },
            is_superuser: authn.then_some(false),
        })
    }
}

fn check_token(state: &HookState, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if constant_time_eq(
        sha256_hex(presented).as_bytes(),
        state.token_sha256.as_bytes(),
    ) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the broker hook needs its bearer token",
        ))
    }
}

async fn authenticate(
    State(state): State<Arc<HookState>>,
    headers: HeaderMap,
    Json(request): Json<AuthnRequest>,
) -> Result<Json<Verdict>, ApiError> {
    check_token(&state, &headers)?;
    if let Some((user, password)) = &state.ingest
        && user == &request.username
    {
        let ok = constant_time_eq(password.as_bytes(), request.password.as_bytes());
        return Ok(Verdict::new(ok, true));
    }
    let Some(hash) = state.store.password_hash(&request.username).await? else {
        return Ok(Verdict::new(false, true));
    };
    // PBKDF2 is CPU work: off the async threads.
    let ok = tokio::task::spawn_blocking(move || verify_mosquitto_hash(&request.password, &hash))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    if !ok {
        tracing::info!(username = %request.username, "broker hook: wrong password");
    }
    Ok(Verdict::new(ok, true))
}

async fn authorize(
    State(state): State<Arc<HookState>>,
    headers: HeaderMap,
    Json(request): Json<AuthzRequest>,
) -> Result<Json<Verdict>, ApiError> {
    check_token(&state, &headers)?;
    let ingest_user = state.ingest.as_ref().map(|(user, _)| user.as_str());
    Ok(Verdict::new(allowed(ingest_user, &request), false))
}

/// May the request's user do its action (`publish` or `subscribe`) on its topic?
fn allowed(ingest_user: Option<&str>, request: &AuthzRequest) -> bool {
    let subscribe = match request.action.as_str() {
        "publish" => false,
        "subscribe" => true,
        _ => return false,
    };
    crate::broker_acl::allowed(ingest_user, &request.username, &request.topic, subscribe)
}
