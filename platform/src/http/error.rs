//! The error answer of every JSON route: `{"error": code, "detail": text}` with a fitting
//! status, and the mapping of the domain's errors to it.

use crate::gateway_config::{self, SaveError};
use crate::registry::RegistryError;
use crate::store::StoreError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fieldlink_wire::enroll::ErrorBody;

/// An error answer: `{"error": code, "detail": text}` ([`ErrorBody`], the contract's)
/// plus `errors` for CSV imports and invalid gateway configs.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    detail: String,
    errors: Option<serde_json::Value>,
    retry_after: Option<std::time::Duration>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            error,
            detail: detail.into(),
            errors: None,
            retry_after: None,
        }
    }

    /// The same error with a `Retry-After` header.
    pub(crate) fn retry_after(mut self, after: std::time::Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }

    pub(crate) fn internal(e: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %e, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the platform's log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!(ErrorBody {
            error: self.error.to_owned(),
            detail: Some(self.detail),
        });
        if let Some(errors) = self.errors {
            body["errors"] = errors;
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(after) = self.retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(after.as_secs().max(1)),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(&e)
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        use RegistryError as E;
        let (status, code) = match &e {
            E::CreditCode(_) => (StatusCode::BAD_REQUEST, "invalid_credit_code"),
            E::Industry(_) => (StatusCode::BAD_REQUEST, "invalid_industry"),
            E::District(_) => (StatusCode::BAD_REQUEST, "invalid_district"),
            E::Field { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            E::Exists(_) | E::IntegratorExists(_) => (StatusCode::CONFLICT, "exists"),
            E::NoEnterprise(_) => (StatusCode::NOT_FOUND, "not_found"),
            E::Csv(errors) => {
                let status = if errors.iter().all(|e| e.exists) {
                    StatusCode::CONFLICT
                } else {
                    StatusCode::BAD_REQUEST
                };
                let mut error = ApiError::new(status, "invalid_csv", e.to_string());
                error.errors = serde_json::to_value(errors).ok();
                return error;
            }
            E::UnknownToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
            E::ExpiredToken { .. } => (StatusCode::UNAUTHORIZED, "token_expired"),
            E::UsedUp { .. } => (StatusCode::CONFLICT, "token_used_up"),
            E::Store(_) | E::Random(_) | E::Broker(_) => return ApiError::internal(&e),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<SaveError> for ApiError {
    fn from(e: SaveError) -> Self {
        match &e {
            SaveError::Invalid(errors) => {
                let mut error =
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_config", e.to_string());
                error.errors = serde_json::to_value(gateway_config::located(errors)).ok();
                error
            }
            SaveError::TooLarge(_) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            }
            SaveError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            SaveError::Store(_) => ApiError::internal(&e),
        }
    }
}

/// The JSON body as `T`, or 400 naming what is wrong with it.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// 429 for an address with too many recent failures; `Retry-After` says when to retry.
pub(crate) fn too_many_failures(retry_after: std::time::Duration, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_failures",
        format!(
            "too many failed {what} from this address; retry in {} s",
            retry_after.as_secs().max(1)
        ),
    )
    .retry_after(retry_after)
}
