//! The pages of the integrators' world: the fleet (every gateway in scope, its health and
//! its problems; the integrator's home, the bureau sees all of it, a district its own, an
//! enterprise its own gateways), the integrators'
//! ranking (bureau and districts), and an enterprise's switch for sharing its data with the
//! bureau. The data are [`crate::fleet`]'s and [`crate::ranking`]'s, as the API answers.

use super::configs;
use super::exports;
use super::format;
use super::pages::path_code;
use super::web::{Ctx, UiError, percent_encode};
use crate::clock::now_ms;
use crate::fleet::{self, FleetError, FleetQuery, Order, SortKey};
use crate::ranking;
use crate::scope;
use axum::extract::{Form, Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::Deserialize;

/// The sortable columns, in the table's order, with their message keys.
const COLUMNS: [(SortKey, &str); 7] = [
    (SortKey::Gateway, "gateway"),
    (SortKey::Enterprise, "enterprise"),
    (SortKey::Online, "state"),
    (SortKey::Version, "agent_version"),
    (SortKey::LastBatch, "last_batch"),
    (SortKey::Backlog, "backlog"),
    (SortKey::Evicted, "evicted"),
];

/// `GET /fleet?page=&per_page=&sort=&order=&problems=true&q=`: the fleet page.
pub async fn fleet(ctx: Ctx, Query(query): Query<FleetQuery>) -> Response {
    let result = fleet_page(&ctx, &query).await;
    ctx.respond(result)
}

async fn fleet_page(ctx: &Ctx, query: &FleetQuery) -> Result<Response, UiError> {
    let role = &ctx.user()?.role;
    let csv = match query.format.as_deref() {
        None | Some("html") => false,
        Some("csv") => true,
        Some(other) => return Err(UiError::BadRequest(format!("format {other:?}: use csv"))),
    };
    let now = now_ms();
    let page = fleet::load(&ctx.state.store, role, query, now, csv)
        .await
        .map_err(|e| match e {
            FleetError::Store(e) => UiError::Store(e),
            e => UiError::BadRequest(e.to_string()),
        })?;
    if csv {
        return Ok(exports::fleet_csv(ctx, &page.rows));
    }
    let sort = query.sort.unwrap_or_default();
    let order = query.order.unwrap_or_default();
    let problems = query.problems == Some(true);
    let q = query.q.clone().unwrap_or_default();
    // The query string of this selection with one thing changed, for links.
    let link = |sort: SortKey, order: Order, page: usize| {
        let mut s = format!(
            "/fleet?sort={}&order={}&page={page}&per_page={}",
            sort_name(sort),
            if order == Order::Desc { "desc" } else { "asc" },
            query.per_page.unwrap_or(fleet::DEFAULT_PER_PAGE),
        );
        if problems {
            s.push_str("&problems=true");
        }
        if !q.is_empty() {
            s.push_str(&format!("&q={}", percent_encode(&q)));
        }
        s
    };
    let columns: Vec<Value> = COLUMNS
        .iter()
        .map(|&(key, label)| {
            let next = if key == sort && order == Order::Asc {
                Order::Desc
            } else {
                Order::Asc
            };
            context! {
                label => label,
                href => link(key, next, 1),
                current => key == sort,
                desc => order == Order::Desc,
            }
        })
        .collect();
    let alarms = super::alarms::shown_counts(ctx).await?;
    let rows: Vec<Value> = page
        .rows
        .iter()
        .map(|r| {
            let up = r.devices.iter().filter(|d| d.connected).count();
            // Each device that is down or failing: its last good read, its errors, its
            // last error, for the cell's tooltip.
            let errors: Vec<String> = r
                .devices
                .iter()
                .filter(|d| !d.connected || d.errors > 0 || d.last_error.is_some())
                .map(|d| {
                    let state = ctx
                        .lang
                        .text(if d.connected { "online" } else { "offline" });
                    let last_good = d.last_good_ms.map_or_else(
                        || "—".to_owned(),
                        |t| format::local_time(t, ctx.state.utc_offset_minutes),
                    );
                    format!(
                        "{}: {state} · {} {last_good} · {} {} · {}",
                        d.name,
                        ctx.lang.text("last_good_read"),
                        ctx.lang.text("errors"),
                        d.errors,
                        d.last_error.as_deref().unwrap_or("—"),
                    )
                })
                .collect();
            let problems: Vec<String> = r
                .problems
                .iter()
                .map(|p| ctx.lang.text(&format!("problem_{}", p.code())).to_owned())
                .collect();
            context! {
                r => r,
                last_batch => r.last_batch_ms.map(|t| ctx.stamp(now, t)),
                devices_up => up,
                device_errors => errors.join("\n"),
                problems => problems,
                config => configs::standing_label(ctx.lang, r.config_standing, r.config_newest),
                alarms => alarms.active(&r.credit_code),
            }
        })
        .collect();
    let csv_path = format!("{}&format=csv", link(sort, order, 1));
    let view = context! {
        total => page.total,
        with_problems => page.with_problems,
        page => page.page,
        pages => page.pages,
        per_page => page.per_page,
        rows => rows,
        columns => columns,
        problems => problems,
        q => q,
        sort => sort_name(sort),
        order => if order == Order::Desc { "desc" } else { "asc" },
        prev => (page.page > 1).then(|| link(sort, order, page.page - 1)),
        next => (page.page < page.pages).then(|| link(sort, order, page.page + 1)),
        csv_path => csv_path,
        alarms_linked => alarms.manages,
    };
    Ok(ctx.render(StatusCode::OK, "fleet.html", view))
}

/// A sort key as the query string writes it.
fn sort_name(key: SortKey) -> String {
    serde_json::to_value(key)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `?format=csv` of the ranking page.
#[derive(Debug, Default, Deserialize)]
pub struct RankingQuery {
    format: Option<String>,
}

/// `GET /bureau/integrators`: the integrators' ranking (`?format=csv` for the table).
pub async fn integrators(ctx: Ctx, Query(query): Query<RankingQuery>) -> Response {
    let result = integrators_page(&ctx, &query).await;
    ctx.respond(result)
}

async fn integrators_page(ctx: &Ctx, query: &RankingQuery) -> Result<Response, UiError> {
    ctx.bureau_or_district()?;
    let (_, lines) = ranking::load(&ctx.state.store, &ctx.user()?.role, now_ms()).await?;
    match query.format.as_deref() {
        None | Some("html") => {}
        Some("csv") => return Ok(exports::ranking_csv(ctx, &lines)),
        Some(other) => return Err(UiError::BadRequest(format!("format {other:?}: use csv"))),
    }
    let rows: Vec<Value> = lines
        .iter()
        .map(|l| {
            context! {
                l => l,
                completeness => l.completeness_7d.map(|c| format!("{:.1}%", c * 100.0)),
            }
        })
        .collect();
    let page = context! { rows => rows };
    Ok(ctx.render(StatusCode::OK, "integrators.html", page))
}

/// The sharing form: `share` is `on` to share.
#[derive(Debug, Deserialize)]
pub struct SharingForm {
    csrf: String,
    share: Option<String>,
}

/// `POST /enterprises/{credit_code}/sharing`: the enterprise turns its data sharing with
/// the bureau on or off, and goes back to its page.
pub async fn set_sharing(
    ctx: Ctx,
    Path(code): Path<String>,
    Form(form): Form<SharingForm>,
) -> Response {
    let result = sharing(&ctx, &path_code(&code), &form).await;
    ctx.respond(result)
}

async fn sharing(ctx: &Ctx, code: &str, form: &SharingForm) -> Result<Response, UiError> {
    ctx.csrf(&form.csrf)?;
    let user = ctx.user()?;
    let enterprise = ctx.enterprise(code).await?;
    if !scope::sets_sharing_of(&user.role, &enterprise) {
        return Err(UiError::Forbidden);
    }
    let share = form.share.as_deref() == Some("on");
    ctx.state
        .store
        .set_share_data_with_bureau(code, share)
        .await?;
    tracing::info!(enterprise = %code, share, "data sharing with the bureau set");
    Ok(Redirect::to(&format!("/enterprises/{code}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_are_written_as_the_query_reads_them() {
        assert_eq!(sort_name(SortKey::LastBatch), "last_batch");
        assert_eq!(sort_name(SortKey::Gateway), "gateway");
    }
}
