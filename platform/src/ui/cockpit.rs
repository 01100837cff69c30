//! `/bureau/cockpit`: the bureau's wall display. The page is a fixed 1920 × 1080 frame;
//! `static/cockpit.js` fills it from the same JSON API the dashboard and the bureau's
//! tools read (program targets, onboarding, its daily series, monitoring, integrators),
//! so the wall shows no figure of its own making.

use super::web::{Ctx, UiError};
use crate::catalog::{District, DistrictKind, Industry};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};

/// How often the wall display refreshes its figures, in seconds.
const REFRESH_SECONDS: u32 = 60;
/// The on-cloud trend's length, in days.
const TREND_DAYS: u32 = 30;
/// The monitoring indices' history (their small bars), in days.
const MONITORING_DAYS: u32 = 7;
/// How many integrators the ranking shows.
const TOP_INTEGRATORS: u32 = 6;

/// `GET /bureau/cockpit`: the frame of the wall display (bureau only).
pub async fn cockpit(ctx: Ctx) -> Response {
    let result = cockpit_page(&ctx);
    ctx.respond(result)
}

fn cockpit_page(ctx: &Ctx) -> Result<Response, UiError> {
    ctx.bureau()?;
    let t = |key| ctx.lang.text(key);
    let districts: Vec<Value> = District::all()
        .map(|d| {
            let tile = d.tile();
            context! {
                name => d.name(),
                short_name => d.short_name(),
                zone => d.kind() == DistrictKind::FunctionalZone,
                column => tile.column,
                row => tile.row,
            }
        })
        .collect();
    let industries: Vec<Value> = Industry::ALL
        .into_iter()
        .map(|i| context! { code => i.code(), name => ctx.lang.industry(i), pilot => i.pilot() })
        .collect();
    let kpis = [
        ("registered", t("cockpit_kpi_registered")),
        ("on_cloud", t("cockpit_kpi_on_cloud")),
        ("active", t("cockpit_kpi_active")),
        ("machines", t("cockpit_kpi_machines")),
    ];
    let indices = [
        ("running_rate", t("cockpit_running_rate"), ""),
        ("energy_kwh", t("cockpit_energy"), "kWh"),
        ("output", t("cockpit_output"), t("cockpit_unit_pieces")),
        (
            "enterprises",
            t("cockpit_enterprises_reporting"),
            t("cockpit_unit_enterprises"),
        ),
        (
            "machines",
            t("cockpit_machines_reporting"),
            t("cockpit_unit_machines"),
        ),
    ];
    let page = context! {
        districts => districts,
        industries => industries,
        kpis => kpis,
        indices => indices,
        refresh_seconds => REFRESH_SECONDS,
        trend_days => TREND_DAYS,
        monitoring_days => MONITORING_DAYS,
        top_integrators => TOP_INTEGRATORS,
    };
    Ok(ctx.render(StatusCode::OK, "cockpit.html", page))
}
