//! Users and their API tokens: the bureau creates users of any role (with a scope that
//! exists); the bureau, or the user itself, makes bearer tokens acting as that user.

use crate::accounts::AccountError;
use crate::clock::rfc3339;
use crate::http::auth::forbidden;
use crate::http::error::parse_json;
use crate::http::{ApiError, AppState, Principal};
use crate::role::Role;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The body of `POST /api/v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// The user name: 3 to 64 letters, digits, `.`, `_`, `-` or `@`.
    pub username: String,
    /// The password: at least [`crate::accounts::MIN_PASSWORD_CHARS`] characters.
    pub password: String,
    /// `bureau`, `district`, `integrator` or `enterprise`.
    pub role: String,
    /// A district's Chinese name, or a registered integrator's or enterprise's credit
    /// code; none for the bureau.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The answer of `POST /api/v1/users`: the user as created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedUser {
    /// The user name, trimmed.
    pub username: String,
    /// Its role.
    pub role: String,
    /// Its scope, as stored.
    pub scope: Option<String>,
}

/// The body of `POST /api/v1/users/{username}/tokens` (may be empty).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Lifetime in days; without, the token lasts until it is revoked with its user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// A bearer API token, shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedToken {
    /// The token; only its hash is kept.
    pub token: String,
    /// When it stops working (RFC 3339), if it does.
    pub expires_at: Option<String>,
}

pub(super) async fn create(
    who: Principal,
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    who.bureau()?;
    let input: UserInput = parse_json(&body)?;
    let role = Role::parse(&input.role, input.scope.as_deref())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let registered = match &role {
        Role::Bureau | Role::District(_) => true,
        Role::Integrator(code) => state.store.integrator(code.as_str()).await?.is_some(),
        Role::Enterprise(code) => state.store.enterprise(code.as_str()).await?.is_some(),
    };
    if !registered {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no {} with credit code {}",
                role.kind(),
                role.scope().unwrap_or("")
            ),
        ));
    }
    match state
        .accounts
        .create_user(&input.username, &input.password, &role)
        .await
    {
        Ok(()) => Ok((
            StatusCode::CREATED,
            Json(CreatedUser {
                username: input.username.trim().to_owned(),
                role: role.kind().to_owned(),
                scope: role.scope().map(str::to_owned),
            }),
        )
            .into_response()),
        Err(e) => Err(account_error(e)),
    }
}

pub(super) async fn create_token(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(username): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let username = username.trim().to_owned();
    let own = who.username.as_deref() == Some(username.as_str());
    if !own && who.role != Role::Bureau {
        return Err(forbidden(&who));
    }
    let input: TokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TokenRequest::default()
    } else {
        parse_json(&body)?
    };
    match state
        .accounts
        .create_token(&username, input.expires_in_days)
        .await
    {
        Ok(Some(issued)) => Ok((
            StatusCode::CREATED,
            Json(CreatedToken {
                token: issued.token,
                expires_at: issued.expires_at.map(rfc3339),
            }),
        )
            .into_response()),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no user {username:?}"),
        )),
        Err(e) => Err(account_error(e)),
    }
}

/// The answer for an accounts error: 409 for a taken name, 400 for a bad one, else 500.
fn account_error(e: AccountError) -> ApiError {
    match e {
        AccountError::Exists(name) => ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            format!("user {name:?} exists"),
        ),
        AccountError::Invalid(why) => ApiError::bad_request(why),
        e => ApiError::internal(&e),
    }
}
