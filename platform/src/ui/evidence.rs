//! The acceptance evidence as a printable page (A4, Chinese by default, print CSS in
//! `app.css`): the file a third party keeps for the program's subsidy check. The figures
//! are [`crate::evidence`]'s, as the API answers them; times in the program's zone.

use super::format;
use super::web::{Ctx, UiError};
use crate::clock::now_ms;
use crate::evidence;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};

/// `GET /enterprises/{credit_code}/evidence`: the printable evidence.
pub async fn evidence(ctx: Ctx, Path(code): Path<String>) -> Response {
    let result = evidence_page(&ctx, &code.trim().to_ascii_uppercase()).await;
    ctx.respond(result)
}

async fn evidence_page(ctx: &Ctx, code: &str) -> Result<Response, UiError> {
    let enterprise = ctx.enterprise(code).await?;
    let offset = ctx.state.utc_offset_minutes;
    let now = now_ms();
    let ev = evidence::load(&ctx.state.store, &enterprise, now, offset).await?;
    let time = |ms: Option<i64>| ms.map(|ms| format::local_time(ms, offset));
    let gateways: Vec<Value> = ev
        .gateways
        .iter()
        .map(|g| {
            context! {
                id => g.id,
                name => g.name,
                first => time(g.first_batch_at),
                last => time(g.last_batch_at),
                devices => g.devices,
                points => g.points,
            }
        })
        .collect();
    let page = context! {
        ev => ev,
        generated => format::local_time(now, offset),
        times => context! {
            registered => time(Some(ev.registered_at)),
            assigned => time(ev.assigned_at),
            first_enrolled => time(ev.first_enrolled_at),
            on_cloud => time(ev.on_cloud_since),
        },
        completeness => ev.completeness_30d.map(|c| format!("{:.1}%", c * 100.0)),
        gateways => gateways,
    };
    Ok(ctx.render(StatusCode::OK, "evidence.html", page))
}
