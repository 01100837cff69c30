//! The HTTP API (version 1), JSON over HTTP; errors are `{"error", "detail"}` with a
//! fitting status. Bureau calls carry `Authorization: Bearer <token>`; enrollment carries
//! its token in the body. Routes:
//!
//! | method and path | who | answer |
//! |---|---|---|
//! | `GET /healthz` | anyone | `ok` |
//! | `POST /api/v1/enterprises` | bureau | 201 the enterprise; 400; 409 if it exists |
//! | `GET /api/v1/enterprises` | bureau | the enterprises with on-cloud state and gateways |
//! | `POST /api/v1/enterprises/import` | bureau | `text/csv` → 201 `{"imported"}`; 400/409 with `errors: [{line, error}]` |
//! | `GET /api/v1/enterprises/{credit_code}` | bureau | one enterprise |
//! | `POST /api/v1/enterprises/{credit_code}/tokens` | bureau | 201 `{"token", "expires_at", "max_gateways"}` |
//! | `POST /api/v1/enroll` | integrator | 201 `{"gateway_id", "enterprise", "mqtt"}`; 401; 409; 429 after repeated failures from the address |
//! | `GET /api/v1/gateways/{gateway_id}` | bureau | status, counters, gaps, catalogue |
//! | `GET /api/v1/gateways/{gateway_id}/latest` | bureau | latest sample of each point |
//! | `GET /api/v1/stats/onboarding` | bureau | the counts (`?format=csv` or `Accept: text/csv`) |
//! | `GET /api/v1/stats/onboarding/daily?days=N` | bureau | daily series (CSV likewise) |
//! | `GET /api/v1/stats/onboarding/silent` | bureau | enrolled enterprises with no batch yet |
//! | `GET /api/v1/stats/ingest` | bureau | the ingest's counters, the open gaps |
//!
//! A bureau user's web UI session (cookie) may make the bureau's GET calls too, so the
//! dashboard's CSV links and charts use this API; writes always need the bearer token.
//! The web UI's pages and `POST /api/v1/users` are merged in from [`crate::ui`].

use crate::catalog::DistrictKind;
use crate::clock::{now_ms, rfc3339};
use crate::config::Targets;
use crate::ingest::{IngestCounters, IngestStats};
use crate::registry::{EnrollInput, EnterpriseInput, Registry, RegistryError, TokenInput};
use crate::secret::{constant_time_eq, sha256_hex};
use crate::stats;
use crate::store::{Enterprise, Gap, Gateway, OpenGaps, Store, StoreError};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fieldlink_wire::Sample;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// The largest request body accepted (413 beyond): a CSV import of the whole city's
/// enterprises fits many times over.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// What the handlers share.
pub struct AppState {
    /// The registry.
    pub registry: Registry,
    /// The store.
    pub store: Store,
    /// SHA-256 of the bureau's token.
    pub admin_token_sha256: String,
    /// The ingest's counters.
    pub counters: Arc<IngestCounters>,
    /// The program's targets.
    pub targets: Targets,
    /// The program's time zone, minutes east of UTC.
    pub utc_offset_minutes: i32,
    /// The web UI's users and sessions.
    pub accounts: crate::ui::Accounts,
    /// Failed logins and enrollments per client address.
    pub failures: crate::limiter::FailureLimiter,
}

/// The API's routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/api/v1/enterprises",
            post(create_enterprise).get(list_enterprises),
        )
        .route("/api/v1/enterprises/import", post(import_enterprises))
        .route("/api/v1/enterprises/{credit_code}", get(get_enterprise))
        .route(
            "/api/v1/enterprises/{credit_code}/tokens",
            post(issue_token),
        )
        .route("/api/v1/enroll", post(enroll))
        .route("/api/v1/gateways/{gateway_id}", get(get_gateway))
        .route("/api/v1/gateways/{gateway_id}/latest", get(latest_values))
        .route("/api/v1/stats/onboarding", get(onboarding))
        .route("/api/v1/stats/onboarding/daily", get(onboarding_daily))
        .route("/api/v1/stats/onboarding/silent", get(silent))
        .route("/api/v1/stats/ingest", get(ingest_stats))
        .merge(crate::ui::router())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .with_state(state)
}

/// An error answer: `{"error": code, "detail": text}` (plus `errors` for CSV imports).
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
        let mut body = serde_json::json!({"error": self.error, "detail": self.detail});
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
            E::Exists(_) => (StatusCode::CONFLICT, "exists"),
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
            if parts.method == axum::http::Method::GET
                && crate::ui::bureau_session(parts, state).await
            {
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

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// An enterprise as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct EnterpriseView {
    credit_code: String,
    name: String,
    industry: crate::catalog::Industry,
    pilot: bool,
    district: crate::catalog::District,
    district_kind: DistrictKind,
    in_program: bool,
    registered_at: String,
    enrolled: bool,
    on_cloud: bool,
    active: bool,
    on_cloud_since: Option<String>,
    last_batch_at: Option<String>,
    gateways: Vec<GatewayView>,
}

/// A gateway as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct GatewayView {
    gateway_id: String,
    name: String,
    online: bool,
    state: Option<fieldlink_wire::GatewayState>,
    agent_version: Option<String>,
    hostname: Option<String>,
    started_at: Option<String>,
    backlog_batches: Option<u64>,
    evicted_batches: Option<u64>,
    status_at: Option<String>,
    enrolled_at: String,
    credentials_issued_at: String,
    first_batch_at: Option<String>,
    last_batch_at: Option<String>,
    batches: u64,
    samples: u64,
    last_seq: Option<u64>,
    missing_batches: u64,
}

pub(crate) fn gateway_view(g: &Gateway) -> GatewayView {
    let status = g.status.as_ref();
    GatewayView {
        gateway_id: g.id.clone(),
        name: g.name.clone(),
        online: status.is_some_and(|s| s.online()),
        state: status.map(|s| s.status.state),
        agent_version: status
            .and_then(|s| s.status.version.clone())
            .or_else(|| g.agent_version.clone()),
        hostname: g.hostname.clone(),
        started_at: status.and_then(|s| s.status.started_at).map(rfc3339),
        backlog_batches: status.and_then(|s| s.status.backlog_batches),
        evicted_batches: status.and_then(|s| s.status.evicted_batches),
        status_at: status.map(|s| rfc3339(s.received_at)),
        enrolled_at: rfc3339(g.enrolled_at),
        credentials_issued_at: rfc3339(g.credentials_issued_at),
        first_batch_at: g.first_batch_at.map(rfc3339),
        last_batch_at: g.last_batch_at.map(rfc3339),
        batches: g.batches,
        samples: g.samples,
        last_seq: g.max_seq,
        missing_batches: g.missing_batches,
    }
}

pub(crate) fn enterprise_view(e: &Enterprise, gateways: Vec<GatewayView>) -> EnterpriseView {
    let active_since = stats::active_since(now_ms());
    EnterpriseView {
        credit_code: e.credit_code.clone(),
        name: e.name.clone(),
        industry: e.industry,
        pilot: e.industry.pilot(),
        district: e.district,
        district_kind: e.district.kind(),
        in_program: e.in_program,
        registered_at: rfc3339(e.registered_at),
        enrolled: !gateways.is_empty(),
        on_cloud: e.first_batch_at.is_some(),
        active: e.last_batch_at.is_some_and(|t| t >= active_since),
        on_cloud_since: e.first_batch_at.map(rfc3339),
        last_batch_at: e.last_batch_at.map(rfc3339),
        gateways,
    }
}

async fn create_enterprise(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input: EnterpriseInput = parse_json(&body)?;
    let created = state.registry.create(&input).await?;
    let enterprise = state
        .store
        .enterprise(created.credit_code.as_str())
        .await?
        .ok_or_else(|| ApiError::internal(&"the new enterprise vanished"))?;
    Ok((
        StatusCode::CREATED,
        Json(enterprise_view(&enterprise, Vec::new())),
    )
        .into_response())
}

async fn list_enterprises(
    _: Bureau,
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    Ok(Json(enterprise_views(&state.store, |_| true).await?).into_response())
}

/// The enterprises that `keep` accepts with their gateways, by credit code.
pub(crate) async fn enterprise_views(
    store: &Store,
    keep: impl Fn(&Enterprise) -> bool,
) -> Result<Vec<EnterpriseView>, StoreError> {
    let enterprises = store.enterprises().await?;
    let mut by_enterprise: HashMap<String, Vec<GatewayView>> = HashMap::new();
    for g in store.gateways(None).await? {
        by_enterprise
            .entry(g.credit_code.clone())
            .or_default()
            .push(gateway_view(&g));
    }
    Ok(enterprises
        .iter()
        .filter(|e| keep(e))
        .map(|e| enterprise_view(e, by_enterprise.remove(&e.credit_code).unwrap_or_default()))
        .collect())
}

async fn get_enterprise(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    Path(credit_code): Path<String>,
) -> Result<Response, ApiError> {
    let code = credit_code.trim().to_ascii_uppercase();
    let Some(enterprise) = state.store.enterprise(&code).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no enterprise with credit code {code}"),
        ));
    };
    let gateways = state.store.gateways(Some(&code)).await?;
    let views = gateways.iter().map(gateway_view).collect();
    Ok(Json(enterprise_view(&enterprise, views)).into_response())
}

async fn import_enterprises(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_csv",
            "the file is not UTF-8 text (save it as \"CSV UTF-8\")",
        )
    })?;
    let imported = state.registry.import_csv(text).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "imported": imported })),
    )
        .into_response())
}

async fn issue_token(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    Path(credit_code): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input: TokenInput = if body.iter().all(u8::is_ascii_whitespace) {
        TokenInput::default()
    } else {
        parse_json(&body)?
    };
    let issued = state.registry.issue_token(&credit_code, &input).await?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

async fn enroll(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response, ApiError> {
    state
        .failures
        .check(peer.ip())
        .map_err(|retry| too_many_failures(retry, "enrollments"))?;
    let input: EnrollInput = parse_json(&body)?;
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

#[derive(Serialize)]
struct GatewayDetail {
    credit_code: String,
    #[serde(flatten)]
    gateway: GatewayView,
    gaps: Vec<Gap>,
    meta: Option<serde_json::Value>,
}

async fn get_gateway(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    Path(gateway_id): Path<String>,
) -> Result<Response, ApiError> {
    let Some((gateway, gaps)) = state.store.gateway(&gateway_id, 1000).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no gateway {gateway_id}"),
        ));
    };
    Ok(Json(GatewayDetail {
        credit_code: gateway.credit_code.clone(),
        gateway: gateway_view(&gateway),
        gaps,
        meta: gateway.meta.clone(),
    })
    .into_response())
}

async fn latest_values(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    Path(gateway_id): Path<String>,
) -> Result<Response, ApiError> {
    let values = state.store.latest_values(&gateway_id).await?;
    // The contract's sample shape.
    let samples: Vec<Sample> = values
        .into_iter()
        .map(|v| Sample {
            device: v.device.into(),
            point: v.point.into(),
            ts: v.ts,
            value: v.value,
            quality: v.quality,
        })
        .collect();
    Ok(Json(samples).into_response())
}

#[derive(Debug, Default, Deserialize)]
struct FormatQuery {
    format: Option<String>,
    days: Option<u32>,
}

fn wants_csv(query: &FormatQuery, headers: &HeaderMap) -> Result<bool, ApiError> {
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

pub(crate) fn csv_response(name: &str, text: String) -> Response {
    // The byte-order mark makes spreadsheet programs read the Chinese names as UTF-8.
    let mut body = String::with_capacity(text.len() + 3);
    body.push('\u{feff}');
    body.push_str(&text);
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

async fn onboarding(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    Query(query): Query<FormatQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let csv = wants_csv(&query, &headers)?;
    let rows = state
        .store
        .onboarding(stats::active_since(now_ms()))
        .await?;
    let counts = stats::onboarding(&rows, state.targets);
    Ok(if csv {
        csv_response("onboarding.csv", stats::onboarding_csv(&counts))
    } else {
        Json(counts).into_response()
    })
}

async fn onboarding_daily(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    Query(query): Query<FormatQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let csv = wants_csv(&query, &headers)?;
    let days = query.days.unwrap_or(30);
    if !(1..=3660).contains(&days) {
        return Err(ApiError::bad_request("days must be 1 to 3660"));
    }
    let (from, to) = stats::last_days(now_ms(), days, state.utc_offset_minutes);
    let firsts = state.store.on_cloud_since().await?;
    let active = state
        .store
        .active_days(from - stats::ACTIVE_DAYS + 1, to)
        .await?;
    let series = stats::daily(&firsts, &active, from, to, state.utc_offset_minutes);
    Ok(if csv {
        csv_response("onboarding-daily.csv", stats::daily_csv(&series))
    } else {
        Json(series).into_response()
    })
}

#[derive(Serialize)]
pub(crate) struct SilentEnterprise {
    credit_code: String,
    name: String,
    industry: crate::catalog::Industry,
    district: crate::catalog::District,
    in_program: bool,
    gateways: usize,
    first_enrolled_at: String,
}

/// The enrolled enterprises with no batch yet, by credit code.
pub(crate) async fn silent_list(store: &Store) -> Result<Vec<SilentEnterprise>, StoreError> {
    let mut enrolled: HashMap<String, (usize, i64)> = HashMap::new();
    for g in store.gateways(None).await? {
        let entry = enrolled.entry(g.credit_code).or_insert((0, i64::MAX));
        entry.0 += 1;
        entry.1 = entry.1.min(g.enrolled_at);
    }
    Ok(store
        .enterprises()
        .await?
        .into_iter()
        .filter(|e| e.first_batch_at.is_none())
        .filter_map(|e| {
            let &(gateways, first) = enrolled.get(&e.credit_code)?;
            Some(SilentEnterprise {
                credit_code: e.credit_code,
                name: e.name,
                industry: e.industry,
                district: e.district,
                in_program: e.in_program,
                gateways,
                first_enrolled_at: rfc3339(first),
            })
        })
        .collect())
}

async fn silent(
    _: Bureau,
    State(state): State<Arc<AppState>>,
    Query(query): Query<FormatQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let csv = wants_csv(&query, &headers)?;
    let silent = silent_list(&state.store).await?;
    if csv {
        let rows: Vec<[String; 7]> = silent
            .iter()
            .map(|s| {
                [
                    s.credit_code.clone(),
                    s.name.clone(),
                    s.industry.code().to_owned(),
                    s.district.name().to_owned(),
                    s.in_program.to_string(),
                    s.gateways.to_string(),
                    s.first_enrolled_at.clone(),
                ]
            })
            .collect();
        let text = stats::to_csv(
            &[
                "credit_code",
                "name",
                "industry",
                "district",
                "in_program",
                "gateways",
                "first_enrolled_at",
            ],
            rows.iter().map(|r| r.as_slice()),
        );
        return Ok(csv_response("silent.csv", text));
    }
    Ok(Json(silent).into_response())
}

/// This instance's ingest counters, and the open gaps of all gateways (the database's
/// figure, the same on every instance; `null` when the database cannot be read, so the
/// counters still answer during a database outage).
#[derive(Serialize)]
struct IngestStatsBody {
    #[serde(flatten)]
    counters: IngestStats,
    open_gaps: Option<OpenGaps>,
}

async fn ingest_stats(_: Bureau, State(state): State<Arc<AppState>>) -> Json<IngestStatsBody> {
    let open_gaps = match state.store.open_gaps().await {
        Ok(gaps) => Some(gaps),
        Err(e) => {
            tracing::warn!(error = %e, "cannot count the open gaps for /api/v1/stats/ingest");
            None
        }
    };
    Json(IngestStatsBody {
        counters: state.counters.snapshot(),
        open_gaps,
    })
}
