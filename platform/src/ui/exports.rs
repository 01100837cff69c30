//! The CSV files the pages link to, written for the page's reader: headers, industry names
//! and yes/no in the page's language, times in the program's zone ([`format::local_time`]).
//! Numbers are left bare (no thousands separators), so spreadsheet programs read them as
//! numbers. Like the API's CSV, UTF-8 with a byte-order mark.
//!
//! The API's own CSV (`/api/v1/stats/...?format=csv`) is for programs and stays as it is:
//! column codes (`registered`, `on_cloud`, ...), industry codes, `true`/`false` and RFC
//! 3339 UTC times, the same as its JSON.

use super::configs;
use super::format;
use super::i18n::Lang;
use super::pages::GroupRow;
use super::web::{Ctx, UiError};
use crate::clock::now_ms;
use crate::fleet::FleetRow;
use crate::http::views;
use crate::program::{self, Program, Target};
use crate::ranking::IntegratorStats;
use crate::stats::{self, Counts};
use axum::extract::Path;
use axum::response::Response;

/// The days of the dashboard's daily series and of its CSV.
pub const DAILY_DAYS: u32 = 90;

/// `lang`'s headers for the message keys `columns`, then `rows`, as CSV.
fn csv(lang: Lang, columns: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<&str> = columns.iter().map(|key| lang.text(key)).collect();
    stats::to_csv(&header, rows.iter().map(Vec::as_slice))
}

/// `yes` or `no` in `lang`.
fn yes_no(lang: Lang, b: bool) -> String {
    lang.text(if b { "yes" } else { "no" }).to_owned()
}

/// A drill-down's enterprises as CSV (`?format=csv` of its page).
pub(super) fn group_csv(ctx: &Ctx, rows: &[GroupRow], file_stem: &str) -> Response {
    let (lang, offset) = (ctx.lang, ctx.state.utc_offset_minutes);
    let time = |t: Option<i64>| t.map(|t| format::local_time(t, offset)).unwrap_or_default();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let v = &r.view;
            vec![
                v.credit_code.clone(),
                v.name.clone(),
                lang.industry(v.industry).to_owned(),
                v.district.name().to_owned(),
                yes_no(lang, v.in_program),
                v.size.map(|s| lang.size(s).to_owned()).unwrap_or_default(),
                v.specialised
                    .map(|s| lang.specialised(s).to_owned())
                    .unwrap_or_default(),
                v.maturity
                    .as_ref()
                    .map(|m| m.level.to_string())
                    .unwrap_or_default(),
                v.gateways.len().to_string(),
                yes_no(lang, v.on_cloud),
                yes_no(lang, v.active),
                time(r.on_cloud_since),
                time(r.last_batch_at),
            ]
        })
        .collect();
    let text = csv(
        lang,
        &[
            "credit_code",
            "enterprise",
            "industry",
            "district",
            "in_program",
            "size",
            "specialised",
            "maturity",
            "gateways",
            "on_cloud",
            "active",
            "on_cloud_since",
            "last_batch",
        ],
        &rows,
    );
    // Non-ASCII district names stay out of the header's file name.
    let name = if file_stem.is_ascii() {
        file_stem
    } else {
        "district"
    };
    views::csv_response(&format!("enterprises-{name}.csv"), text)
}

/// `GET /bureau/csv/{table}`: the dashboard's tables as CSV, `table` being `onboarding`
/// (the counts), `daily` (the last 90 days), `silent` (enrolled, no data yet) or
/// `program` (the plan's targets).
pub async fn bureau_csv(ctx: Ctx, Path(table): Path<String>) -> Response {
    let result = bureau_table(&ctx, &table).await;
    ctx.respond(result)
}

async fn bureau_table(ctx: &Ctx, table: &str) -> Result<Response, UiError> {
    ctx.bureau()?;
    let state = &ctx.state;
    let (lang, offset) = (ctx.lang, state.utc_offset_minutes);
    let now = now_ms();
    let text = match table {
        "onboarding" => {
            let rows = state.store.onboarding(stats::active_since(now)).await?;
            onboarding_csv(lang, &stats::onboarding(&rows, state.targets))
        }
        "daily" => {
            let (from, to) = stats::last_days(now, DAILY_DAYS, offset);
            let firsts = state.store.on_cloud_since().await?;
            let active = state
                .store
                .active_days(from - stats::ACTIVE_DAYS + 1, to)
                .await?;
            let rows: Vec<Vec<String>> = stats::daily(&firsts, &active, from, to, offset)
                .into_iter()
                .map(|d| {
                    vec![
                        d.date,
                        d.on_cloud.to_string(),
                        d.in_program_on_cloud.to_string(),
                        d.new_on_cloud.to_string(),
                        d.active.to_string(),
                        d.in_program_active.to_string(),
                    ]
                })
                .collect();
            let columns = [
                "date",
                "on_cloud",
                "in_program_on_cloud",
                "new_on_cloud",
                "active",
                "in_program_active",
            ];
            csv(lang, &columns, &rows)
        }
        "program" => {
            let rows = state.store.onboarding(stats::active_since(now)).await?;
            program_csv(lang, &program::program(&rows, &state.targets, None, now))
        }
        "silent" => {
            let rows: Vec<Vec<String>> = views::silent_list(&state.store, |_| true)
                .await?
                .into_iter()
                .map(|s| {
                    vec![
                        s.name,
                        s.credit_code,
                        lang.industry(s.industry).to_owned(),
                        s.district.name().to_owned(),
                        yes_no(lang, s.in_program),
                        s.gateways.to_string(),
                        format::local_time(s.first_enrolled_ms, offset),
                    ]
                })
                .collect();
            let columns = [
                "enterprise",
                "credit_code",
                "industry",
                "district",
                "in_program",
                "gateways",
                "first_enrolled",
            ];
            csv(lang, &columns, &rows)
        }
        _ => return Err(UiError::NotFound),
    };
    Ok(views::csv_response(&format!("{table}.csv"), text))
}

/// The plan's targets as CSV, a row each: its label in `lang`, achieved, base, goal (a
/// count, or a share in percent), progress in percent (empty without a goal) and met.
fn program_csv(lang: Lang, p: &Program) -> String {
    let rows: Vec<Vec<String>> = Target::all()
        .into_iter()
        .zip(&p.targets)
        .map(|(target, t)| {
            let goal = match (t.goal_count, t.goal_share) {
                (Some(count), _) => count.to_string(),
                (None, Some(share)) => format!("{:.0}%", share * 100.0),
                (None, None) => String::new(),
            };
            vec![
                lang.target(target),
                t.achieved.to_string(),
                t.base.to_string(),
                goal,
                t.progress
                    .map(|p| format!("{:.1}", p * 100.0))
                    .unwrap_or_default(),
                yes_no(lang, t.met),
            ]
        })
        .collect();
    let columns = [
        "target",
        "achieved",
        "base",
        "goal",
        "progress_percent",
        "goal_met",
    ];
    csv(lang, &columns, &rows)
}

/// The dashboard's counts as CSV, a row per row of its tables (the totals, each industry,
/// each district), each with its progress against its target if it has one and its share
/// of registered enterprises on the cloud.
fn onboarding_csv(lang: Lang, o: &stats::Onboarding) -> String {
    let row = |scope: &str, name: &str, pilot: Option<bool>, c: &Counts, target: Option<u64>| {
        vec![
            lang.text(scope).to_owned(),
            name.to_owned(),
            pilot.map(|p| yes_no(lang, p)).unwrap_or_default(),
            c.registered.to_string(),
            c.enrolled.to_string(),
            c.on_cloud.to_string(),
            c.active.to_string(),
            c.silent.to_string(),
            target.map(|t| t.to_string()).unwrap_or_default(),
            target
                .map(|t| format::percent(c.on_cloud, t))
                .unwrap_or_default(),
            format::percent(c.on_cloud, c.registered),
        ]
    };
    let mut rows = vec![
        row(
            "totals",
            lang.text("all_enterprises"),
            None,
            &o.total,
            Some(o.targets.key_industries_on_cloud),
        ),
        row(
            "totals",
            lang.text("in_program"),
            None,
            &o.in_program,
            Some(o.targets.in_program_on_cloud),
        ),
    ];
    for i in &o.by_industry {
        rows.push(row(
            "industry",
            lang.industry(i.industry),
            Some(i.pilot),
            &i.counts,
            Some(i.target),
        ));
    }
    for d in &o.by_district {
        rows.push(row("district", d.district.name(), None, &d.counts, None));
    }
    csv(
        lang,
        &[
            "scope",
            "name",
            "pilot_industry",
            "registered",
            "enrolled",
            "on_cloud",
            "active",
            "silent",
            "target",
            "progress",
            "share_on_cloud",
        ],
        &rows,
    )
}

/// The fleet's selected rows as CSV (`/fleet?format=csv`); devices as `name:up|down`,
/// problems by their labels.
pub(super) fn fleet_csv(ctx: &Ctx, rows: &[FleetRow]) -> Response {
    let (lang, offset) = (ctx.lang, ctx.state.utc_offset_minutes);
    let optional = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let devices: Vec<String> = r
                .devices
                .iter()
                .map(|d| format!("{}:{}", d.name, if d.connected { "up" } else { "down" }))
                .collect();
            let problems: Vec<String> = r
                .problems
                .iter()
                .map(|p| lang.text(&format!("problem_{}", p.code())).to_owned())
                .collect();
            vec![
                r.gateway_id.clone(),
                r.name.clone(),
                r.enterprise.clone(),
                r.credit_code.clone(),
                lang.text(if r.online { "online" } else { "offline" })
                    .to_owned(),
                r.version.clone().unwrap_or_default(),
                r.last_batch_ms
                    .map(|t| format::local_time(t, offset))
                    .unwrap_or_default(),
                optional(r.backlog_batches),
                optional(r.evicted_batches),
                r.missing_batches.to_string(),
                optional(r.config_version),
                configs::standing_text(lang, r.config_standing, r.config_newest),
                devices.join(" "),
                problems.join(" "),
            ]
        })
        .collect();
    let text = csv(
        lang,
        &[
            "gateway_id",
            "gateway",
            "enterprise",
            "credit_code",
            "state",
            "agent_version",
            "last_batch",
            "backlog",
            "evicted",
            "missing_batches",
            "config_version",
            "config",
            "devices",
            "problems",
        ],
        &rows,
    );
    views::csv_response("gateways.csv", text)
}

/// The integrators' ranking as CSV (`/bureau/integrators?format=csv`); completeness in
/// percent.
pub(super) fn ranking_csv(ctx: &Ctx, lines: &[IntegratorStats]) -> Response {
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                l.integrator.clone(),
                l.assigned.to_string(),
                l.enrolled.to_string(),
                l.on_cloud.to_string(),
                l.active.to_string(),
                l.median_days_to_first_data
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                l.completeness_7d
                    .map(|c| format!("{:.1}", c * 100.0))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let text = csv(
        ctx.lang,
        &[
            "integrator",
            "credit_code",
            "assigned",
            "enrolled",
            "on_cloud",
            "active",
            "median_days_to_first_data",
            "completeness_7d_percent",
        ],
        &rows,
    );
    views::csv_response("integrators.csv", text)
}
