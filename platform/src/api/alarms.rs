//! Alarms (DESIGN.md, "Alarms"): an enterprise's notification channels and rules, its
//! events and their acknowledgement, managed by the enterprise itself and its integrator;
//! the bureau and districts see counts, of the enterprises that share their data.

use super::enterprises;
use crate::alarms::channel::{Channel, ChannelError, ChannelKind, Notification, SendError};
use crate::alarms::delivery::channel_of;
use crate::alarms::rules::{self, RuleError, RuleInput};
use crate::clock::now_ms;
use crate::http::auth::forbidden;
use crate::http::error::parse_json;
use crate::http::{ApiError, AppState, Principal};
use crate::role::Role;
use crate::scope;
use crate::store::alarms::{AlarmEvent, AlarmRule, ChannelRow, NewChannel};
use crate::store::{Enterprise, StoreError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The events listed at most.
const EVENTS_LISTED: u32 = 500;

/// A channel as submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    /// Its name.
    pub name: String,
    /// `webhook`, `wecom`, `dingtalk` or `feishu`.
    pub kind: String,
    /// The receiver's or robot's URL.
    pub url: String,
    /// The robot's signing secret (DingTalk, Feishu), if set.
    #[serde(default)]
    pub secret: Option<String>,
}

/// The id of what was created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Created {
    /// Its id.
    pub id: i64,
}

/// `?state=active|all` of the alarm list.
#[derive(Debug, Clone, Deserialize)]
pub struct AlarmQuery {
    /// `active` (the default: not cleared) or `all`.
    #[serde(default)]
    pub state: Option<String>,
}

/// One enterprise's open alarms, as the bureau sees them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlarmCount {
    /// The enterprise.
    pub credit_code: String,
    /// Its name.
    pub name: String,
    /// Raised, not acknowledged.
    pub active: u64,
    /// Acknowledged, not cleared.
    pub acknowledged: u64,
}

/// The bureau's view of alarms: counts of the enterprises that share their data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlarmCounts {
    /// The sharing enterprises with open alarms.
    pub enterprises: Vec<AlarmCount>,
    /// Enterprises in scope with open alarms that do not share their data: not itemized.
    pub withheld: u64,
}

/// The enterprise `code` if `who` manages its alarms: 404 outside its scope, 403 inside.
async fn managed(state: &AppState, who: &Principal, code: &str) -> Result<Enterprise, ApiError> {
    let enterprise = enterprises::visible(state, who, code).await?;
    if !scope::manages_alarms_of(&who.role, &enterprise) {
        return Err(forbidden(who));
    }
    Ok(enterprise)
}

fn rule_error(e: RuleError) -> ApiError {
    match e {
        RuleError::Invalid(reason) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_rule", reason)
        }
        RuleError::Store(e) => ApiError::from(e),
    }
}

/// Checks `input` as a channel of enterprise `credit_code`: its name, kind, secret and
/// destination (private addresses only if `allow_private`); the channel to save. The API
/// and the web UI save channels through it.
pub(crate) async fn check_channel(
    input: ChannelInput,
    credit_code: &str,
    allow_private: bool,
) -> Result<NewChannel, ChannelError> {
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ChannelError::Name);
    }
    let secret = input.secret.filter(|s| !s.is_empty());
    let channel = Channel {
        kind: ChannelKind::parse(&input.kind)?,
        url: input.url.trim().to_owned(),
        secret: secret.clone(),
    };
    channel.check(allow_private).await?;
    Ok(NewChannel {
        credit_code: credit_code.to_owned(),
        name: name.to_owned(),
        kind: channel.kind.as_str().to_owned(),
        url: channel.url,
        secret,
    })
}

pub(super) async fn create_channel(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let enterprise = managed(&state, &who, &code).await?;
    let input: ChannelInput = parse_json(&body)?;
    let channel = check_channel(input, &enterprise.credit_code, state.allow_private_webhooks)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_channel", e.to_string()))?;
    let id = state.store.create_channel(channel, now_ms()).await?;
    Ok((StatusCode::CREATED, Json(Created { id })).into_response())
}

pub(super) async fn channels(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let enterprise = managed(&state, &who, &code).await?;
    let channels: Vec<ChannelRow> = state.store.channels(&enterprise.credit_code).await?;
    Ok(Json(channels).into_response())
}

/// The channel `id` if `who` manages its enterprise's alarms; 404 otherwise.
async fn managed_channel(
    state: &AppState,
    who: &Principal,
    id: i64,
) -> Result<ChannelRow, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no channel {id}"),
        )
    };
    let channel = state.store.channel(id).await?.ok_or_else(not_found)?;
    managed(state, who, &channel.credit_code)
        .await
        .map_err(|_| not_found())?;
    Ok(channel)
}

/// Why a test message did not go out.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TestError {
    /// The saved channel is no longer valid (its kind unknown): nothing was sent.
    #[error(transparent)]
    Invalid(#[from] ChannelError),
    /// The receiver did not take it: its answer, or why there was none.
    #[error(transparent)]
    NotDelivered(#[from] SendError),
}

/// Sends [`Notification::test`] of `enterprise` through `channel` now, as the API's and the
/// web UI's "send test message" do.
pub(crate) async fn send_test(
    state: &AppState,
    enterprise: &Enterprise,
    channel: &ChannelRow,
) -> Result<(), TestError> {
    let test = Notification::test(&enterprise.credit_code, &enterprise.name, now_ms());
    let channel = channel_of(channel)?;
    state.webhooks.send(&channel, &test, now_ms()).await?;
    Ok(())
}

pub(super) async fn test_channel(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let channel = managed_channel(&state, &who, id).await?;
    let enterprise = managed(&state, &who, &channel.credit_code).await?;
    match send_test(&state, &enterprise, &channel).await {
        Ok(()) => Ok(Json(serde_json::json!({"delivered": true})).into_response()),
        Err(TestError::Invalid(e)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_channel",
            e.to_string(),
        )),
        Err(TestError::NotDelivered(e)) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "not_delivered",
            e.to_string(),
        )),
    }
}

pub(super) async fn create_rule(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let enterprise = managed(&state, &who, &code).await?;
    let input: RuleInput = parse_json(&body)?;
    let rule = rules::validate(&state.store, &enterprise.credit_code, &input)
        .await
        .map_err(rule_error)?;
    let now = now_ms();
    let id = state.store.create_rule(rule.clone(), now).await?;
    if input.enabled == Some(false) {
        state.store.update_rule(id, rule, false, now).await?;
    }
    Ok((StatusCode::CREATED, Json(Created { id })).into_response())
}

pub(super) async fn rules(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let enterprise = managed(&state, &who, &code).await?;
    let rules: Vec<AlarmRule> = state.store.rules(&enterprise.credit_code).await?;
    Ok(Json(rules).into_response())
}

pub(super) async fn update_rule(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no alarm rule {id}"),
        )
    };
    let existing = state.store.rule(id).await?.ok_or_else(not_found)?;
    let enterprise = managed(&state, &who, &existing.credit_code)
        .await
        .map_err(|_| not_found())?;
    let input: RuleInput = parse_json(&body)?;
    let rule = rules::validate(&state.store, &enterprise.credit_code, &input)
        .await
        .map_err(rule_error)?;
    state
        .store
        .update_rule(id, rule, input.enabled.unwrap_or(true), now_ms())
        .await?;
    let saved = state.store.rule(id).await?.ok_or_else(not_found)?;
    Ok(Json(saved).into_response())
}

pub(super) async fn alarms(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
    Query(query): Query<AlarmQuery>,
) -> Result<Response, ApiError> {
    let enterprise = managed(&state, &who, &code).await?;
    let open_only = match query.state.as_deref() {
        None | Some("active") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`state` must be active or all, found {other:?}"
            )));
        }
    };
    let events: Vec<AlarmEvent> = state
        .store
        .alarm_events(&enterprise.credit_code, open_only, EVENTS_LISTED)
        .await?;
    Ok(Json(events).into_response())
}

pub(super) async fn acknowledge(
    who: Principal,
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no alarm {id}"));
    let event = state.store.alarm_event(id).await?.ok_or_else(not_found)?;
    managed(&state, &who, &event.credit_code)
        .await
        .map_err(|_| not_found())?;
    let by = who.username.as_deref().unwrap_or("admin");
    if !state.store.acknowledge(id, by, now_ms()).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_active",
            format!(
                "alarm {id} is {}: only an active alarm is acknowledged",
                event.state.as_str()
            ),
        ));
    }
    let event = state.store.alarm_event(id).await?.ok_or_else(not_found)?;
    Ok(Json(event).into_response())
}

/// The view of `role` (the bureau's or a district's): open alarms per enterprise in its
/// scope that shares its data, and how many others have some. The API and the web UI's
/// pages show these counts, never rule names or values.
pub async fn counts(state: &AppState, role: &Role) -> Result<AlarmCounts, StoreError> {
    let open = state.store.open_alarm_counts().await?;
    let mut enterprises = Vec::new();
    let mut withheld = 0;
    for e in state.store.enterprises().await? {
        let Some(&(active, acknowledged)) = open.get(&e.credit_code) else {
            continue;
        };
        if !scope::sees_enterprise(role, &e) {
            continue;
        }
        if scope::sees_values(role, &e) {
            enterprises.push(AlarmCount {
                credit_code: e.credit_code.clone(),
                name: e.name.clone(),
                active,
                acknowledged,
            });
        } else {
            withheld += 1;
        }
    }
    Ok(AlarmCounts {
        enterprises,
        withheld,
    })
}

pub(super) async fn stats(
    who: Principal,
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    who.bureau_or_district()?;
    Ok(Json(counts(&state, &who.role).await?).into_response())
}
