//! Who is asking ([`Principal`]): the bureau's bearer token (the admin token), a user's
//! bearer API token (acting with that user's role and scope), or, for reads, a web UI
//! session named by its cookie. Writes through the API always need a bearer token: a
//! session's forms carry CSRF tokens, the API's JSON bodies do not.

use super::{ApiError, AppState};
use crate::accounts::{AccountError, Role, SessionUser};
use crate::secret::{constant_time_eq, sha256_hex};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use std::sync::Arc;

/// The session cookie.
pub const SESSION_COOKIE: &str = "fl_session";

/// Who is asking, and with which role and scope.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user's name; `None` for the bureau's admin token.
    pub username: Option<String>,
    /// The role and its scope.
    pub role: Role,
}

impl Principal {
    /// Passes for the bureau; 403 for anyone else.
    pub fn bureau(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Bureau => Ok(()),
            _ => Err(forbidden(self)),
        }
    }

    /// Passes for the bureau and district users; 403 for anyone else.
    pub fn bureau_or_district(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Bureau | Role::District(_) => Ok(()),
            _ => Err(forbidden(self)),
        }
    }
}

/// The 403 for an action `who` may not take.
pub fn forbidden(who: &Principal) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("a {} user may not do this", who.role.kind()),
    )
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |detail: &str| {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail.to_owned())
        };
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            if matches!(parts.method, Method::GET | Method::HEAD)
                && let Some((_, user)) = session(&parts.headers, state)
                    .await
                    .map_err(|e| ApiError::internal(&e))?
            {
                return Ok(Principal {
                    username: Some(user.username),
                    role: user.role,
                });
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
            return Ok(Principal {
                username: None,
                role: Role::Bureau,
            });
        }
        match state.accounts.token_user(token).await {
            Ok(Some(user)) => Ok(Principal {
                username: Some(user.username),
                role: user.role,
            }),
            Ok(None) => Err(unauthorized("wrong or expired bearer token")),
            Err(e) => Err(ApiError::internal(&e)),
        }
    }
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
