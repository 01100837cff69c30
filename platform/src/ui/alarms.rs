//! An enterprise's alarms page: its events (the active ones first, then the acknowledged,
//! then the recently cleared, each group newest first) with their acknowledgement, the
//! open counts, and the ways to its rules ([`super::alarm_rules`]) and channels
//! ([`super::alarm_channels`]). Who manages the enterprise's alarms (itself, its
//! integrator) sees it; whoever else sees the enterprise gets 403, anyone else 404, as the
//! API answers. The counts other pages show come from [`shown_counts`]: the bureau and the
//! districts get counts only, of the enterprises that share their data.

use super::i18n::Lang;
use super::pages::{path_code, show_value};
use super::web::{Ctx, UiError};
use crate::accounts::Role;
use crate::api;
use crate::clock::now_ms;
use crate::scope;
use crate::store::Enterprise;
use crate::store::alarms::{AlarmEvent, EventState, RuleKind, Severity};
use axum::extract::{Form, Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::Deserialize;
use std::collections::HashMap;

/// The open events listed at most (as the API's list).
const OPEN_LISTED: u32 = 500;
/// The events read for the cleared ones shown with `?state=all`: the recent ones.
const RECENT_LISTED: u32 = 200;

/// `?state=active|all` of the alarms page.
#[derive(Debug, Default, Deserialize)]
pub struct AlarmsQuery {
    state: Option<String>,
}

/// An acknowledge button's form: the page's filter, to go back to it.
#[derive(Debug, Deserialize)]
pub struct AckForm {
    csrf: String,
    #[serde(default)]
    state: Option<String>,
}

/// The enterprise `code` if the session manages its alarms: 404 if it does not see it,
/// 403 if it only sees it (as the API answers).
pub(super) async fn managed(ctx: &Ctx, code: &str) -> Result<Enterprise, UiError> {
    let enterprise = ctx.enterprise(&path_code(code)).await?;
    if !scope::manages_alarms_of(&ctx.user()?.role, &enterprise) {
        return Err(UiError::Forbidden);
    }
    Ok(enterprise)
}

/// The open alarm counts a session may be shown on the pages that list enterprises.
pub(super) struct ShownCounts {
    /// `(active, acknowledged)` by credit code, of the enterprises with open alarms.
    pub by_enterprise: HashMap<String, (u64, u64)>,
    /// True if the session manages the alarms of every enterprise its pages list (the
    /// integrator, the enterprise), so a count links to the alarms page and a missing one
    /// is 0; false for the bureau and the districts, who see counts only.
    pub manages: bool,
}

impl ShownCounts {
    /// The active alarms shown for enterprise `code`: none if the session may not know.
    pub fn active(&self, code: &str) -> Option<u64> {
        match self.by_enterprise.get(code) {
            Some(&(active, _)) => Some(active),
            None => self.manages.then_some(0),
        }
    }
}

/// The open alarm counts of [`ShownCounts`], read once per page: for the bureau and the
/// districts those of the enterprises in their scope that share their data
/// ([`api::alarm_counts`]); for who manages alarms every enterprise's, of which its pages
/// list only those in its scope.
pub(super) async fn shown_counts(ctx: &Ctx) -> Result<ShownCounts, UiError> {
    let role = &ctx.user()?.role;
    Ok(match role {
        Role::Bureau | Role::District(_) => ShownCounts {
            by_enterprise: api::alarm_counts(&ctx.state, role)
                .await?
                .enterprises
                .into_iter()
                .map(|c| (c.credit_code, (c.active, c.acknowledged)))
                .collect(),
            manages: false,
        },
        Role::Integrator(_) | Role::Enterprise(_) => ShownCounts {
            by_enterprise: ctx.state.store.open_alarm_counts().await?,
            manages: true,
        },
    })
}

/// The alarms page of enterprise `code`.
pub fn path(code: &str) -> String {
    format!("/enterprises/{code}/alarms")
}

/// A kind in words: `高于阈值` / `Above the threshold`.
pub(super) fn kind_text(lang: Lang, kind: RuleKind) -> String {
    lang.text(&format!("kind_{}", kind.as_str())).to_owned()
}

/// A severity's text and class, for the coloured label the pages share.
pub(super) fn severity_label(lang: Lang, severity: Severity) -> Value {
    let key = format!("severity_{}", severity.as_str());
    context! { class => severity.as_str(), text => lang.text(&key) }
}

/// What a rule or event watches, as people read it: `line-1 / press-1 / temperature`.
pub(super) fn target_text(gateway: &str, device: Option<&str>, point: Option<&str>) -> String {
    [Some(gateway), device, point]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" / ")
}

/// `GET /enterprises/{credit_code}/alarms?state=active|all`: the page.
pub async fn alarms(
    ctx: Ctx,
    Path(code): Path<String>,
    Query(query): Query<AlarmsQuery>,
) -> Response {
    let result = alarms_page(&ctx, &code, &query).await;
    ctx.respond(result)
}

/// The order of the list: active, acknowledged, cleared.
fn rank(state: EventState) -> u8 {
    match state {
        EventState::Active => 0,
        EventState::Acknowledged => 1,
        EventState::Cleared => 2,
    }
}

async fn alarms_page(ctx: &Ctx, code: &str, query: &AlarmsQuery) -> Result<Response, UiError> {
    let enterprise = managed(ctx, code).await?;
    let all = match query.state.as_deref() {
        None | Some("active") => false,
        Some("all") => true,
        Some(other) => {
            return Err(UiError::BadRequest(format!(
                "state {other:?}: use active or all"
            )));
        }
    };
    let store = &ctx.state.store;
    let code = &enterprise.credit_code;
    let mut events = store.alarm_events(code, true, OPEN_LISTED).await?;
    if all {
        // Read apart, so that many recent cleared events never push an open one out.
        let recent = store.alarm_events(code, false, RECENT_LISTED).await?;
        events.extend(
            recent
                .into_iter()
                .filter(|e| e.state == EventState::Cleared),
        );
    }
    // Stable: newest first within each state, as the store lists them.
    events.sort_by_key(|e| rank(e.state));
    let names: HashMap<String, String> = store
        .gateways(Some(code))
        .await?
        .into_iter()
        .map(|g| (g.id, g.name))
        .collect();
    let now = now_ms();
    let rows: Vec<Value> = events
        .iter()
        .map(|e| event_row(ctx, e, &names, now))
        .collect();
    let (active, acknowledged) = store
        .open_alarm_counts()
        .await?
        .get(code)
        .copied()
        .unwrap_or_default();
    let page = context! {
        e => context! { code => code, name => enterprise.name },
        events => rows,
        all => all,
        active => active,
        acknowledged => acknowledged,
    };
    Ok(ctx.render(StatusCode::OK, "alarms.html", page))
}

/// One event's row.
fn event_row(ctx: &Ctx, e: &AlarmEvent, names: &HashMap<String, String>, now: i64) -> Value {
    let gateway = names.get(&e.gateway).unwrap_or(&e.gateway);
    context! {
        id => e.id,
        state => e.state.as_str(),
        state_text => ctx.lang.text(&format!("alarm_state_{}", e.state.as_str())),
        severity => severity_label(ctx.lang, e.severity),
        rule => e.rule,
        kind => kind_text(ctx.lang, e.kind),
        target => target_text(gateway, e.device.as_deref(), e.point.as_deref()),
        gateway_id => e.gateway,
        value => e.value.as_ref().map(show_value),
        raised => ctx.stamp(now, e.raised_at),
        cleared => e.cleared_at.map(|t| ctx.stamp(now, t)),
        cleared_value => e.cleared_value.as_ref().map(show_value),
        acknowledged_by => e.acknowledged_by,
    }
}

/// `POST /alarms/{id}/ack`: acknowledges an active event and goes back to its enterprise's
/// alarms page. An event someone acknowledged meanwhile, or that cleared, is shown as it
/// now stands.
pub async fn acknowledge(ctx: Ctx, Path(id): Path<i64>, Form(form): Form<AckForm>) -> Response {
    let result = ack(&ctx, id, &form).await;
    ctx.respond(result)
}

async fn ack(ctx: &Ctx, id: i64, form: &AckForm) -> Result<Response, UiError> {
    ctx.csrf(&form.csrf)?;
    let store = &ctx.state.store;
    let event = store.alarm_event(id).await?.ok_or(UiError::NotFound)?;
    // As the API: an event of an enterprise the session does not manage does not exist.
    let enterprise = managed(ctx, &event.credit_code)
        .await
        .map_err(|_| UiError::NotFound)?;
    let by = &ctx.user()?.username;
    if store.acknowledge(id, by, now_ms()).await? {
        tracing::info!(alarm = id, by, "alarm acknowledged from the UI");
    }
    let back = match form.state.as_deref() {
        Some("all") => format!("{}?state=all", path(&enterprise.credit_code)),
        _ => path(&enterprise.credit_code),
    };
    Ok(Redirect::to(&back).into_response())
}
