//! The UI's handlers: login and logout, the language switch, the bureau's dashboard and
//! drill-downs, an enterprise's page, a point's chart and its downsampled series.

use super::exports;
use super::format;
use super::i18n::Lang;
use super::web::{
    Ctx, LANG_COOKIE, LOGIN_CSRF_COOKIE, SESSION_COOKIE, UiError, cookie, local_path,
    percent_encode, set_cookie,
};
use crate::accounts::{Login, Role, SESSION_MS};
use crate::catalog::{District, Industry};
use crate::clock::now_ms;
use crate::filter::{EnterpriseFilter, FilterQuery};
use crate::http::views::{self, EnterpriseView, GatewayView};
use crate::profile::{MaturityLevel, Size, Specialised};
use crate::program::{self, Program, Target};
use crate::secret::{constant_time_eq, new_token};
use crate::stats;
use crate::store::{Enterprise, Gateway, SeriesPoint, Store};
use axum::Json;
use axum::extract::{ConnectInfo, Form, Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use fieldlink_wire::{Meta, Quality, Value as SampleValue};
use minijinja::{Value, context};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;

/// The chart's default window, in hours; a fitted window ([`fitted_window`]) is never
/// longer.
const DEFAULT_HOURS: u32 = 24;
/// The longest chart window, in hours (the retention's default, 30 days, with room).
const MAX_HOURS: u32 = 90 * 24;
/// Buckets per chart by default: about one per two pixels of a laptop-wide chart.
const DEFAULT_BUCKETS: u32 = 600;
/// Buckets of a minute or more are whole minutes (see [`crate::store::Store::series`]).
const MINUTE_MS: i64 = 60_000;
/// The windows offered as links on a chart page.
const WINDOWS: [u32; 5] = [1, 6, 24, 7 * 24, 30 * 24];

/// `?next=` of the login and language links.
#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

/// A form that carries only the session's CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `?format=csv` of the drill-down tables, and their filter by the plan's classes
/// ([`crate::filter`]).
#[derive(Debug, Default, Deserialize)]
pub struct FormatQuery {
    format: Option<String>,
    size: Option<String>,
    specialised: Option<String>,
    maturity: Option<String>,
}

/// The point (and window) of a chart or series.
#[derive(Debug, Default, Deserialize)]
pub struct PointQuery {
    gateway: Option<String>,
    device: Option<String>,
    point: Option<String>,
    hours: Option<u32>,
    buckets: Option<u32>,
}

/// `GET /`: the user's home, or the login.
pub async fn home(ctx: Ctx) -> Response {
    let to = match ctx.session.as_ref().map(|(_, u)| &u.role) {
        None => "/login".to_owned(),
        Some(Role::Bureau) => "/bureau".to_owned(),
        Some(Role::District(district)) => {
            format!("/bureau/districts/{}", percent_encode(district.name()))
        }
        Some(Role::Integrator(_)) => super::FLEET.to_owned(),
        Some(Role::Enterprise(code)) => format!("/enterprises/{code}"),
    };
    Redirect::to(&to).into_response()
}

/// `GET /login`: the form, with a fresh CSRF cookie.
pub async fn login_form(
    mut ctx: Ctx,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Response {
    if ctx.session.is_some() {
        return Redirect::to(&local_path(query.next.as_deref())).into_response();
    }
    login_page(
        &mut ctx,
        &headers,
        StatusCode::OK,
        None,
        query.next.as_deref(),
        None,
    )
}

/// True if a browser keeps `Secure` cookies from this request's origin: HTTPS (as a
/// reverse proxy reports it) or a loopback host.
fn keeps_secure_cookies(headers: &HeaderMap) -> bool {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if header("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https")) {
        return true;
    }
    let host = header("host").unwrap_or_default();
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The login form; after a failed attempt it shows `error` and keeps `username`, so only
/// the password is typed again.
fn login_page(
    ctx: &mut Ctx,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
    next: Option<&str>,
    username: Option<&str>,
) -> Response {
    let csrf = match new_token() {
        Ok(token) => token,
        Err(e) => return ctx.error(UiError::Accounts(e.into())),
    };
    ctx.set_cookies.push(set_cookie(
        LOGIN_CSRF_COOKIE,
        &csrf,
        "/login",
        "Strict",
        3600,
    ));
    let page = context! {
        csrf => csrf,
        error => error,
        next => local_path(next),
        username => username.map(str::trim),
        insecure => !keeps_secure_cookies(headers),
    };
    ctx.render(status, "login.html", page)
}

/// `POST /login`: checks the CSRF pair and the password; starts a session.
pub async fn login(
    mut ctx: Ctx,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = form.next.as_deref();
    if ctx.state.failures.check(peer.ip()).is_err() {
        tracing::warn!(peer = %peer.ip(), "login refused: too many failures from this address");
        return login_page(
            &mut ctx,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            Some("login_locked"),
            next,
            Some(&form.username),
        );
    }
    let csrf_ok = cookie(&headers, LOGIN_CSRF_COOKIE)
        .is_some_and(|c| constant_time_eq(c.as_bytes(), form.csrf.as_bytes()));
    if !csrf_ok {
        return login_page(
            &mut ctx,
            &headers,
            StatusCode::FORBIDDEN,
            Some("session_expired"),
            next,
            Some(&form.username),
        );
    }
    match ctx
        .state
        .accounts
        .login(&form.username, &form.password)
        .await
    {
        Ok(Login::Session(token)) => {
            ctx.set_cookies.push(set_cookie(
                SESSION_COOKIE,
                &token,
                "/",
                "Lax",
                SESSION_MS / 1000,
            ));
            ctx.set_cookies
                .push(set_cookie(LOGIN_CSRF_COOKIE, "", "/login", "Strict", 0));
            ctx.add_cookies(Redirect::to(&local_path(next)).into_response())
        }
        Ok(Login::Refused) => {
            tracing::info!(username = ?form.username, peer = %peer.ip(), "login refused");
            ctx.state.failures.failed(peer.ip());
            login_page(
                &mut ctx,
                &headers,
                StatusCode::UNAUTHORIZED,
                Some("login_failed"),
                next,
                Some(&form.username),
            )
        }
        Ok(Login::Locked) => {
            tracing::warn!(username = ?form.username, "login locked after repeated failures");
            login_page(
                &mut ctx,
                &headers,
                StatusCode::TOO_MANY_REQUESTS,
                Some("login_locked"),
                next,
                Some(&form.username),
            )
        }
        Err(e) => ctx.error(e.into()),
    }
}

/// `POST /logout`: ends the session (CSRF-checked) and goes to the login.
pub async fn logout(mut ctx: Ctx, Form(form): Form<CsrfForm>) -> Response {
    let Some((token, user)) = ctx.session.clone() else {
        return Redirect::to("/login").into_response();
    };
    if !constant_time_eq(user.csrf.as_bytes(), form.csrf.as_bytes()) {
        return ctx.error(UiError::Forbidden);
    }
    if let Err(e) = ctx.state.accounts.logout(&token).await {
        return ctx.error(e.into());
    }
    ctx.set_cookies
        .push(set_cookie(SESSION_COOKIE, "", "/", "Lax", 0));
    ctx.add_cookies(Redirect::to("/login").into_response())
}

/// `GET /lang/{lang}?next=`: remembers the language for a year and goes back.
pub async fn set_lang(
    mut ctx: Ctx,
    Path(tag): Path<String>,
    Query(query): Query<NextQuery>,
) -> Response {
    let Some(lang) = Lang::from_tag(&tag) else {
        return ctx.error(UiError::NotFound);
    };
    ctx.set_cookies.push(set_cookie(
        LANG_COOKIE,
        lang.tag(),
        "/",
        "Lax",
        365 * 86_400,
    ));
    ctx.add_cookies(Redirect::to(&local_path(query.next.as_deref())).into_response())
}

/// Each industry's code and name in `lang`, for templates.
fn industry_names(lang: Lang) -> HashMap<&'static str, &'static str> {
    Industry::ALL
        .into_iter()
        .map(|i| (i.code(), lang.industry(i)))
        .collect()
}

/// The plan's classes in `lang` for templates: `sizes` and `classes`, each `[code, name]`
/// in the plan's order (for choices), and `size_names` and `class_names` by code.
fn class_names(lang: Lang) -> Value {
    let sizes: Vec<(&str, &str)> = Size::ALL
        .iter()
        .map(|s| (s.code(), lang.size(*s)))
        .collect();
    let classes: Vec<(&str, &str)> = Specialised::ALL
        .iter()
        .map(|s| (s.code(), lang.specialised(*s)))
        .collect();
    context! {
        size_names => sizes.iter().copied().collect::<std::collections::BTreeMap<_, _>>(),
        class_names => classes.iter().copied().collect::<std::collections::BTreeMap<_, _>>(),
        sizes => sizes,
        classes => classes,
        levels => MaturityLevel::all().map(MaturityLevel::get).collect::<Vec<_>>(),
    }
}

/// `GET /bureau`: the dashboard.
pub async fn dashboard(ctx: Ctx) -> Response {
    let result = dashboard_page(&ctx).await;
    ctx.respond(result)
}

async fn dashboard_page(ctx: &Ctx) -> Result<Response, UiError> {
    ctx.bureau()?;
    let state = &ctx.state;
    let rows = state
        .store
        .onboarding(stats::active_since(now_ms()))
        .await?;
    let o = stats::onboarding(&rows, state.targets);
    let targets = program_rows(
        ctx.lang,
        &program::program(&rows, &state.targets, None, now_ms()),
    );
    let industries: Vec<Value> = o
        .by_industry
        .iter()
        .map(|i| {
            context! {
                code => i.industry.code(),
                name => ctx.lang.industry(i.industry),
                pilot => i.pilot,
                c => i.counts,
                target => i.target,
                percent => format::percent(i.counts.on_cloud, i.target),
            }
        })
        .collect();
    let districts: Vec<Value> = o
        .by_district
        .iter()
        .map(|d| {
            context! {
                name => d.district.name(),
                path => percent_encode(d.district.name()),
                zone => d.kind == crate::catalog::DistrictKind::FunctionalZone,
                c => d.counts,
                percent => format::percent(d.counts.on_cloud, d.counts.registered),
            }
        })
        .collect();
    let now = now_ms();
    let silent: Vec<Value> = views::silent_list(&state.store, |_| true)
        .await?
        .into_iter()
        .map(|s| {
            let first_enrolled = ctx.stamp(now, s.first_enrolled_ms);
            context! { s => s, first_enrolled => first_enrolled }
        })
        .collect();
    let open = crate::api::alarm_counts(state, &ctx.user()?.role).await?;
    let page = context! {
        alarms => open.enterprises,
        alarms_withheld => ctx.lang.text("alarms_withheld").replace("{n}", &open.withheld.to_string()),
        withheld => open.withheld,
        o => o,
        in_program_percent => format::percent(o.in_program.on_cloud, o.targets.in_program_on_cloud),
        total_percent => format::percent(o.total.on_cloud, o.targets.key_industries_on_cloud),
        industries => industries,
        districts => districts,
        silent => silent,
        industry_names => industry_names(ctx.lang),
        daily_days => exports::DAILY_DAYS,
        targets => targets,
    };
    Ok(ctx.render(StatusCode::OK, "dashboard.html", page))
}

/// The plan's targets as the dashboard's rows: each one's label in `lang`, its figures,
/// its goal and its progress as words and as a bar (per mille, capped at the goal).
pub(super) fn program_rows(lang: Lang, p: &Program) -> Vec<Value> {
    Target::all()
        .into_iter()
        .zip(&p.targets)
        .map(|(target, t)| {
            // A share target's progress, exactly: achieved × 100 / (base × goal percent).
            let goal_percent = t.goal_share.map(|g| (g * 100.0).round() as u64);
            let progress = match (t.goal_count, goal_percent) {
                (Some(goal), _) => format::percent(t.achieved, goal),
                (None, Some(percent)) => format::percent(t.achieved * 100, t.base * percent),
                (None, None) => "—".to_owned(),
            };
            context! {
                id => t.id,
                label => lang.target(target),
                achieved => t.achieved,
                base => t.base,
                goal_count => t.goal_count,
                goal_percent => goal_percent,
                share => format::percent(t.achieved, t.base),
                progress => progress,
                bar => t.progress.map(|p| (p.min(1.0) * 1000.0).round() as u64),
                met => t.met,
            }
        })
        .collect()
}

/// `GET /bureau/industries/{industry}`: that industry's enterprises.
pub async fn industry(
    ctx: Ctx,
    Path(code): Path<String>,
    Query(query): Query<FormatQuery>,
) -> Response {
    let result = match Industry::from_code(&code) {
        Some(industry) => {
            let title = ctx.lang.industry(industry);
            group_page(
                &ctx,
                title,
                &query,
                &|e| e.industry == industry,
                industry.code(),
            )
            .await
        }
        None => Err(UiError::NotFound),
    };
    ctx.respond(result)
}

/// `GET /bureau/districts/{district}`: that district's enterprises.
pub async fn district(
    ctx: Ctx,
    Path(name): Path<String>,
    Query(query): Query<FormatQuery>,
) -> Response {
    // A district's user sees its own district's page; another district does not exist
    // for it.
    let own = |district: District| match ctx.user().map(|u| &u.role) {
        Ok(Role::District(mine)) => *mine == district,
        _ => true,
    };
    let result = match District::from_name(&name).filter(|d| own(*d)) {
        Some(district) => {
            let title = district.name();
            group_page(&ctx, title, &query, &|e| e.district == district, title).await
        }
        None => Err(UiError::NotFound),
    };
    ctx.respond(result)
}

/// The drill-down table of the enterprises `keep` accepts, of the classes the query asks
/// for, as a page or CSV.
async fn group_page(
    ctx: &Ctx,
    title: &str,
    query: &FormatQuery,
    keep: &(dyn Fn(&Enterprise) -> bool + Sync),
    file_stem: &str,
) -> Result<Response, UiError> {
    ctx.bureau_or_district()?;
    let role = &ctx.user()?.role;
    let filter = EnterpriseFilter::parse(&FilterQuery {
        size: query.size.clone(),
        specialised: query.specialised.clone(),
        maturity: query.maturity.clone(),
    })
    .map_err(|e| UiError::BadRequest(e.to_string()))?;
    let in_scope =
        |e: &Enterprise| keep(e) && filter.keeps(e) && crate::scope::sees_enterprise(role, e);
    let rows = group_rows(&ctx.state.store, &in_scope).await?;
    let alarms = super::alarms::shown_counts(ctx).await?;
    match query.format.as_deref() {
        None | Some("html") => {}
        Some("csv") => return Ok(exports::group_csv(ctx, &rows, file_stem)),
        Some(other) => return Err(UiError::BadRequest(format!("format {other:?}: use csv"))),
    }
    let now = now_ms();
    let enterprises: Vec<Value> = rows
        .iter()
        .map(|r| {
            context! {
                e => r.view,
                last_batch => r.last_batch_at.map(|t| ctx.stamp(now, t)),
                alarms => alarms.active(&r.view.credit_code),
            }
        })
        .collect();
    let count = |f: &dyn Fn(&EnterpriseView) -> bool| rows.iter().filter(|r| f(&r.view)).count();
    let counts = context! {
        registered => rows.len(),
        enrolled => count(&|v| v.enrolled),
        on_cloud => count(&|v| v.on_cloud),
        active => count(&|v| v.active),
    };
    let path = ctx.path.split('?').next().unwrap_or_default();
    let selection = filter.query_string();
    let csv_path = if selection.is_empty() {
        format!("{path}?format=csv")
    } else {
        format!("{path}?{selection}&format=csv")
    };
    let chosen = |v: &Option<String>| v.clone().unwrap_or_default();
    let page = context! {
        title => title,
        counts => counts,
        enterprises => enterprises,
        industry_names => industry_names(ctx.lang),
        csv_path => csv_path,
        filter_path => path,
        filter => context! {
            size => chosen(&query.size),
            specialised => chosen(&query.specialised),
            maturity => chosen(&query.maturity),
        },
        ..class_names(ctx.lang)
    };
    Ok(ctx.render(StatusCode::OK, "group.html", page))
}

/// One enterprise of a drill-down: the API's view and its times in ms, which the page and
/// the CSV write in local time.
pub(super) struct GroupRow {
    /// The enterprise as the API shows it.
    pub view: EnterpriseView,
    /// When its first batch arrived.
    pub on_cloud_since: Option<i64>,
    /// When its last batch arrived.
    pub last_batch_at: Option<i64>,
}

/// The enterprises `keep` accepts with their gateways, by credit code (as
/// [`views::enterprise_views`], keeping the times as numbers).
async fn group_rows(
    store: &Store,
    keep: &(dyn Fn(&Enterprise) -> bool + Sync),
) -> Result<Vec<GroupRow>, UiError> {
    let mut gateways: HashMap<String, Vec<GatewayView>> = HashMap::new();
    for g in store.gateways(None).await? {
        gateways
            .entry(g.credit_code.clone())
            .or_default()
            .push(views::gateway_view(&g));
    }
    Ok(store
        .enterprises()
        .await?
        .iter()
        .filter(|e| keep(e))
        .map(|e| GroupRow {
            view: views::enterprise_view(e, gateways.remove(&e.credit_code).unwrap_or_default()),
            on_cloud_since: e.first_batch_at,
            last_batch_at: e.last_batch_at,
        })
        .collect())
}

/// A sample's value as a page shows it (`—` for none).
pub(super) fn show_value(value: &SampleValue) -> String {
    match value {
        SampleValue::None => "—".to_owned(),
        SampleValue::Bool(b) => b.to_string(),
        SampleValue::Int(i) => i.to_string(),
        SampleValue::UInt(u) => u.to_string(),
        SampleValue::Float(f) => f.to_string(),
        SampleValue::Text(t) => t.clone(),
    }
}

/// A gateway's catalogue (its retained `meta`), if it published one that parses.
pub(super) fn catalogue(gateway: &Gateway) -> Option<Meta> {
    gateway
        .meta
        .as_ref()
        .and_then(|m| serde_json::from_value(m.clone()).ok())
}

/// Units by (device, point) from a gateway's catalogue.
fn units(gateway: &Gateway) -> HashMap<(String, String), String> {
    catalogue(gateway)
        .into_iter()
        .flat_map(|m| m.devices)
        .flat_map(|d| {
            let device = d.name;
            d.points
                .into_iter()
                .filter_map(move |p| p.unit.map(|unit| ((device.clone(), p.name), unit)))
        })
        .collect()
}

/// The credit code in a path, normalised as the API does.
pub(super) fn path_code(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

/// `GET /enterprises/{credit_code}`: gateways, devices, points, latest values, and the
/// plan's classes and maturity assessments (with the bureau's forms for them).
pub async fn enterprise(ctx: Ctx, Path(code): Path<String>) -> Response {
    let result = enterprise_page(&ctx, &path_code(&code), None).await;
    ctx.respond(result)
}

/// The enterprise page; with `draft`, the assessment form refused, shown again with its
/// input and why (400).
pub(super) async fn enterprise_page(
    ctx: &Ctx,
    code: &str,
    draft: Option<AssessmentDraft>,
) -> Result<Response, UiError> {
    let enterprise = ctx.enterprise(code).await?;
    let values_shown = ctx.sees_values(&enterprise);
    let store = &ctx.state.store;
    let gateways = store.gateways(Some(code)).await?;
    let now = now_ms();
    let mut gateway_pages = Vec::with_capacity(gateways.len());
    for g in &gateways {
        let units = units(g);
        let latest = if values_shown {
            store.latest_values(&g.id).await?
        } else {
            Vec::new()
        };
        let points: Vec<Value> = latest
            .into_iter()
            .map(|v| {
                let (quality, error) = match &v.quality {
                    Quality::Good => ("good", None),
                    Quality::Bad(why) => ("bad", Some(why.clone())),
                    Quality::Uncertain => ("uncertain", None),
                };
                let unit = units
                    .get(&(v.device.clone(), v.point.clone()))
                    .cloned()
                    .unwrap_or_default();
                context! {
                    device => v.device,
                    point => v.point,
                    value => show_value(&v.value),
                    unit => unit,
                    quality => quality,
                    error => error,
                    read => ctx.stamp(now, v.ts),
                }
            })
            .collect();
        let last_seen = [g.last_batch_at, g.status.as_ref().map(|s| s.received_at)]
            .into_iter()
            .flatten()
            .max();
        gateway_pages.push(context! {
            g => views::gateway_view(g),
            last_seen => last_seen.map(|t| ctx.stamp(now, t)),
            points => points,
        });
    }
    let views = gateways.iter().map(views::gateway_view).collect();
    let alarms = if crate::scope::manages_alarms_of(&ctx.user()?.role, &enterprise) {
        let (active, acknowledged) = store
            .open_alarm_counts()
            .await?
            .get(code)
            .copied()
            .unwrap_or_default();
        Some(context! { active => active, acknowledged => acknowledged })
    } else {
        None
    };
    let offset = ctx.state.utc_offset_minutes;
    let history: Vec<Value> = store
        .assessments(code)
        .await?
        .iter()
        .map(|a| {
            context! {
                level => a.level.get(),
                assessed_on => format::local_date(a.assessed_at, offset),
                assessor => a.assessor,
                recorded => ctx.stamp(now, a.recorded_at),
            }
        })
        .collect();
    let records_profile = ctx
        .user()
        .is_ok_and(|u| crate::scope::records_profile_of(&u.role, &enterprise));
    let status = if draft.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = context! {
        alarms => alarms,
        e => views::enterprise_view(&enterprise, views),
        industry_name => ctx.lang.industry(enterprise.industry),
        on_cloud_since => enterprise.first_batch_at.map(|t| ctx.stamp(now, t)),
        gateways => gateway_pages,
        values_shown => values_shown,
        sets_sharing => ctx.user().is_ok_and(|u| crate::scope::sets_sharing_of(&u.role, &enterprise)),
        maturity_on => enterprise.maturity.map(|m| format::local_date(m.assessed_at, offset)),
        history => history,
        records_profile => records_profile,
        today => format::local_date(now, offset),
        draft => draft,
        ..class_names(ctx.lang)
    };
    Ok(ctx.render(status, "enterprise.html", page))
}

/// An assessment the bureau entered that was refused: its fields as typed, and why.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(super) struct AssessmentDraft {
    /// The level, as chosen.
    pub level: String,
    /// The date, as typed.
    pub assessed_at: String,
    /// The assessor, as typed.
    pub assessor: String,
    /// Why it was refused.
    pub error: String,
}

/// A chart's point and window, checked against the enterprise the session may see.
struct ChartRequest {
    point: SeriesPoint,
    /// The window asked for, in hours; none for the fitted default ([`fitted_window`]).
    hours: Option<u32>,
}

async fn chart_request(ctx: &Ctx, code: &str, query: &PointQuery) -> Result<ChartRequest, UiError> {
    let enterprise = ctx.enterprise(code).await?;
    if !ctx.sees_values(&enterprise) {
        return Err(UiError::Forbidden);
    }
    let (Some(gateway), Some(device), Some(point)) = (&query.gateway, &query.device, &query.point)
    else {
        return Err(UiError::BadRequest(
            "gateway, device and point are required".to_owned(),
        ));
    };
    // The gateway must be this enterprise's: a session of one enterprise names another's
    // gateway under its own credit code in vain.
    let own = ctx.state.store.gateways(Some(code)).await?;
    if !own.iter().any(|g| &g.id == gateway) {
        return Err(UiError::NotFound);
    }
    if query.hours.is_some_and(|h| !(1..=MAX_HOURS).contains(&h)) {
        return Err(UiError::BadRequest(format!(
            "hours must be 1 to {MAX_HOURS}"
        )));
    }
    Ok(ChartRequest {
        point: SeriesPoint {
            gateway: gateway.clone(),
            device: device.clone(),
            point: point.clone(),
        },
        hours: query.hours,
    })
}

/// `GET /enterprises/{credit_code}/chart?gateway=&device=&point=&hours=`: the chart page.
pub async fn chart(
    ctx: Ctx,
    Path(code): Path<String>,
    Query(query): Query<PointQuery>,
) -> Response {
    let result = chart_page(&ctx, &path_code(&code), &query).await;
    ctx.respond(result)
}

async fn chart_page(ctx: &Ctx, code: &str, query: &PointQuery) -> Result<Response, UiError> {
    let request = chart_request(ctx, code, query).await?;
    let p = &request.point;
    let unit = ctx
        .state
        .store
        .gateways(Some(code))
        .await?
        .iter()
        .find(|g| g.id == p.gateway)
        .and_then(|g| units(g).remove(&(p.device.clone(), p.point.clone())))
        .unwrap_or_default();
    let query_of = |hours: Option<u32>| {
        let point = format!(
            "gateway={}&device={}&point={}",
            percent_encode(&p.gateway),
            percent_encode(&p.device),
            percent_encode(&p.point)
        );
        match hours {
            Some(h) => format!("{point}&hours={h}"),
            None => point,
        }
    };
    let fitted = context! {
        label => ctx.lang.text("window_fit"),
        href => format!("/enterprises/{code}/chart?{}", query_of(None)),
        current => request.hours.is_none(),
    };
    let windows: Vec<Value> = std::iter::once(fitted)
        .chain(WINDOWS.iter().map(|&h| {
            let (n, unit) = if h >= 24 {
                (h / 24, "days")
            } else {
                (h, "hours")
            };
            context! {
                label => format!("{n} {}", ctx.lang.text(unit)),
                href => format!("/enterprises/{code}/chart?{}", query_of(Some(h))),
                current => Some(h) == request.hours,
            }
        }))
        .collect();
    let page = context! {
        code => code,
        gateway => p.gateway,
        device => p.device,
        point => p.point,
        unit => unit,
        windows => windows,
        series_url => format!("/enterprises/{code}/series?{}", query_of(request.hours)),
    };
    Ok(ctx.render(StatusCode::OK, "chart.html", page))
}

/// `GET /enterprises/{credit_code}/series?gateway=&device=&point=&hours=&buckets=`: the
/// point's numeric samples in the window, as min/max/mean per bucket (at most `buckets`,
/// 10 to 2,000, default 600): `{"from", "to", "bucket_ms", "t": [s], "min", "max", "avg",
/// "samples"}`. Without `hours`, the window is [`fitted_window`].
pub async fn series(
    ctx: Ctx,
    Path(code): Path<String>,
    Query(query): Query<PointQuery>,
) -> Response {
    let result = series_json(&ctx, &path_code(&code), &query).await;
    ctx.respond(result)
}

async fn series_json(ctx: &Ctx, code: &str, query: &PointQuery) -> Result<Response, UiError> {
    let request = chart_request(ctx, code, query).await?;
    let buckets = query.buckets.unwrap_or(DEFAULT_BUCKETS).clamp(10, 2000);
    let now = now_ms();
    let (from, to, bucket_ms) = match request.hours {
        Some(hours) => hours_window(now, hours, buckets),
        None => {
            let default_from = now - i64::from(DEFAULT_HOURS) * 3_600_000;
            let first = first_sample(&ctx.state.store, &request.point, default_from, now).await?;
            fitted_window(now, default_from, first, buckets)
        }
    };
    let rows = ctx
        .state
        .store
        .series(request.point, from, to, bucket_ms)
        .await?;
    let body = serde_json::json!({
        "from": from,
        "to": to,
        "bucket_ms": bucket_ms,
        "t": rows.iter().map(|b| b.start as f64 / 1000.0).collect::<Vec<_>>(),
        "min": rows.iter().map(|b| b.min).collect::<Vec<_>>(),
        "max": rows.iter().map(|b| b.max).collect::<Vec<_>>(),
        "avg": rows.iter().map(|b| b.avg).collect::<Vec<_>>(),
        "samples": rows.iter().map(|b| b.count).sum::<u64>(),
    });
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// The window of the last `hours` up to `now` in `buckets` buckets: `(from, to,
/// bucket_ms)`.
fn hours_window(now: i64, hours: u32, buckets: u32) -> (i64, i64, i64) {
    let window = i64::from(hours) * 3_600_000;
    let mut bucket_ms = (window + i64::from(buckets) - 1) / i64::from(buckets);
    let mut to = now;
    if bucket_ms >= MINUTE_MS {
        // Whole minutes: the store answers from its per-minute aggregates.
        bucket_ms = (bucket_ms + MINUTE_MS - 1) / MINUTE_MS * MINUTE_MS;
        to = (to / MINUTE_MS + 1) * MINUTE_MS;
    }
    (to - window, to, bucket_ms)
}

/// The default chart window, `default_from` to `now`, cut to start at the point's `first`
/// sample when that is inside it: a point enrolled minutes ago fills the chart instead of
/// showing a few dots at the right edge of a day. A margin of 2 % keeps the first sample
/// off the axis. `(from, to, bucket_ms)` in `buckets` buckets.
fn fitted_window(now: i64, default_from: i64, first: Option<i64>, buckets: u32) -> (i64, i64, i64) {
    let Some(first) = first.filter(|&t| t > default_from && t <= now) else {
        return hours_window(now, DEFAULT_HOURS, buckets);
    };
    let mut from = (first - (now - first) / 50 - 1000).max(default_from);
    let mut to = now;
    let buckets = i64::from(buckets);
    let mut bucket_ms = ((to - from + buckets - 1) / buckets).max(1);
    if bucket_ms >= MINUTE_MS {
        // Whole minutes, widened outwards so that no sample is cut off.
        bucket_ms = (bucket_ms + MINUTE_MS - 1) / MINUTE_MS * MINUTE_MS;
        from = from.div_euclid(MINUTE_MS) * MINUTE_MS;
        to = (to / MINUTE_MS + 1) * MINUTE_MS;
    }
    (from, to, bucket_ms)
}

/// When `point`'s first sample in `[from, to)` was read, to the second; `None` if none was.
async fn first_sample(
    store: &Store,
    point: &SeriesPoint,
    from: i64,
    to: i64,
) -> Result<Option<i64>, UiError> {
    // The per-minute aggregates find the first minute cheaply; that minute's samples, in
    // one-second buckets, give the second.
    let minutes = store
        .series(
            point.clone(),
            from.div_euclid(MINUTE_MS) * MINUTE_MS,
            (to / MINUTE_MS + 1) * MINUTE_MS,
            MINUTE_MS,
        )
        .await?;
    let Some(minute) = minutes.first() else {
        return Ok(None);
    };
    let seconds = store
        .series(point.clone(), minute.start, minute.start + MINUTE_MS, 1000)
        .await?;
    Ok(Some(seconds.first().map_or(minute.start, |s| s.start)))
}
