//! JSON or CSV: what a read route answers, by `?format=` or the `Accept` header.

use crate::http::ApiError;
use axum::http::{HeaderMap, header};
use serde::Deserialize;

/// The query of a route that can answer CSV (and, for series, how many days).
#[derive(Debug, Default, Deserialize)]
pub(super) struct FormatQuery {
    /// `csv` or `json`.
    pub format: Option<String>,
    /// Days of a series.
    pub days: Option<u32>,
}

/// True if the caller asked for CSV: `?format=csv`, or `Accept: text/csv` without a format.
pub(super) fn wants_csv(query: &FormatQuery, headers: &HeaderMap) -> Result<bool, ApiError> {
    match query.format.as_deref() {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "format {other:?}: use csv or json"
        ))),
        None => Ok(headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/csv"))),
    }
}
