//! Who is asking: the bureau's bearer token ([`Bureau`]), or a web UI session named by
//! its cookie.

use super::{ApiError, AppState};
use crate::accounts::{AccountError, Role, SessionUser};
use crate::secret::{constant_time_eq, sha256_hex};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use std::sync::Arc;

/// The session cookie.
pub const SESSION_COOKIE: &str = "fl_session";

/// Proof that the request carries the bureau's bearer token (or, for GET, a bureau user's UI session).
pub struct Bureau;

impl FromRequestParts<Arc<AppState>> for Bureau {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |detail: &str| {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail.to_owned())
        };
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            if parts.method == axum::http::Method::GET && bureau_session(parts, state).await {
                return Ok(Bureau);
            }
            return Err(unauthorized("missing Authorization: Bearer <token>"));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| unauthorized("the Authorization header must be Bearer <token>"))?;
        // Compare digests so the comparison's time says nothing about the token.
        if constant_time_eq(
            sha256_hex(token).as_bytes(),
            state.admin_token_sha256.as_bytes(),
        ) {
            Ok(Bureau)
        } else {
            Err(unauthorized("wrong bearer token"))
        }
    }
}

/// True if the request carries a live bureau session cookie.
pub async fn bureau_session(parts: &Parts, state: &Arc<AppState>) -> bool {
    session(&parts.headers, state)
        .await
        .ok()
        .flatten()
        .is_some_and(|(_, user)| user.role == Role::Bureau)
}

/// The session named by the request's cookie, if it is live.
pub async fn session(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Option<(String, SessionUser)>, AccountError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(state
        .accounts
        .session(token)
        .await?
        .map(|user| (token.to_owned(), user)))
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}
